//! The process around the table publisher: listeners, the admin endpoint,
//! signals, reloads, readiness and the start hold, and the hand-over of
//! listening sockets to a successor (SIGUSR2). It owns the
//! [`TablePublisher`] and tells it what to build from; it never builds a
//! table itself.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::Registry;
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use zkgate_admin::{Admin, Reload, Report};
use zkgate_config::Config;
use zkgate_metrics::Metrics;
use zkgate_proxy::{Inherited, Proxy, Workers};
use zkgate_routing::RoutingTable;
use zkgate_tls::TlsMaterial;

use crate::handover::{self, HandoverSocket, SocketsWanted};
use crate::listeners::Listeners;
use crate::publisher::{Input, TablePublisher};
use crate::readiness::{Hold, Readiness};
use crate::signals::Signals;
use crate::sources::Sources;
use crate::succession::Succession;
use crate::warming::Warming;
use crate::{notify, LoadedConfig, StartError};
use zkgate_discovery::announce::Announced;

/// How long shutdown waits for the access log's last lines to be written.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(5);

/// How often a process holding back (see `Hold`) checks whether it is
/// ready, or its predecessor gone.
const HOLD_CHECK: Duration = Duration::from_millis(20);

/// How long SIGTERM waits for in-flight requests before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The running control plane.
pub struct ControlPlane {
    publisher: TablePublisher,
    sources: Sources,
    proxy: Proxy,
    listeners: Listeners,
    report: Arc<Report>,
    /// The admin listener's socket (a second descriptor), to hand over.
    admin_socket: Option<OwnedFd>,
    handover: Option<HandoverSocket>,
    sockets_wanted: mpsc::Receiver<SocketsWanted>,
    /// The processes before and after this one in upgrades (SIGUSR2).
    succession: Succession,
    /// Whether `/ready` answers 200.
    ready: bool,
    /// Why this process does not accept new connections yet.
    hold: Option<Hold>,
    /// When this process started (seconds since the Unix epoch), for the fleet.
    started: u64,
    /// A reload waiting for its new backends' first listing.
    warming: Option<Warming>,
    signals: Signals,
}

impl ControlPlane {
    /// Binds the admin listener and every frontend (accepted on `workers`),
    /// starts ZooKeeper discovery, and publishes the first table (static
    /// servers serve at once). With a `handover_socket`, listening sockets
    /// are first taken over from the process serving it, and then handed on
    /// to the next one.
    pub async fn start(
        loaded: LoadedConfig,
        workers: Workers,
        handover_socket: Option<PathBuf>,
        signals: Signals,
    ) -> Result<Self, StartError> {
        let LoadedConfig {
            path,
            text,
            config,
            tls,
        } = loaded;
        let (mut inherited, predecessor) = match &handover_socket {
            Some(path) => handover::take_over(path).await,
            None => (Inherited::default(), None),
        };
        let hold = start_hold(&config, predecessor.filter(|_| !inherited.is_empty()));
        // Served from now on, for the next process; it is answered once `run` begins.
        let (wanted_tx, sockets_wanted) = mpsc::channel(1);
        let handover = match &handover_socket {
            Some(path) => Some(HandoverSocket::serve(path, wanted_tx).map_err(|source| {
                StartError::HandoverSocket {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let registry = Registry::new();
        let metrics = Metrics::register(&registry)?;
        let report = Arc::new(Report::default());
        report.update(|facts| {
            facts.not_ready = vec!["listeners are not bound yet".to_owned()];
            facts.config_source = path.display().to_string();
        });
        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::empty()));
        let admin = Admin {
            registry,
            report: Arc::clone(&report),
            table: Arc::clone(&table),
            metrics: metrics.clone(),
        };
        let admin_socket = serve_admin(admin, config.admin.bind, &mut inherited)?;
        let proxy = data_plane(&config, Arc::clone(&table)).await?;
        let publisher =
            TablePublisher::new(config, tls, metrics, table, Arc::clone(&proxy.changed));
        let mut plane = ControlPlane {
            publisher,
            sources: Sources::new(path, text),
            proxy,
            listeners: Listeners::new(workers),
            report,
            admin_socket,
            handover,
            sockets_wanted,
            succession: Succession::from_env(),
            ready: false,
            hold,
            warming: None,
            signals,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        plane.first_table(&mut inherited).await?;
        Ok(plane)
    }

    /// Publishes the first table and starts the listeners and the watches.
    async fn first_table(&mut self, inherited: &mut Inherited) -> Result<(), StartError> {
        if let Some(hold) = self.hold {
            hold.announce();
        }
        self.publisher.set_accepting(self.hold.is_none());
        let next = self.publisher.build().await;
        let config = self.publisher.config().clone();
        let publisher = &mut self.publisher;
        let bound = self
            .listeners
            .bind_new(&config, inherited, |name| publisher.frontend_id(name))
            .map_err(|(address, source)| StartError::Bind { address, source })?;
        self.publisher.publish(next);
        self.listeners.commit(bound, &self.proxy);
        if !inherited.is_empty() {
            // Closed here; they stay open in the previous process until it exits.
            info!(addresses = ?inherited.addresses(), "handed sockets this configuration does not listen on; not taking them");
        }
        self.publisher.follow_zookeeper(None);
        self.follow_config_node(None);
        self.report.update(|facts| facts.config_generation = 1);
        self.update_readiness();
        self.fleet_name_is_ours().await
    }

    /// With `zookeeper.fleet`, waits (at most [`FIRST_LISTING_MAX`]) for the
    /// announcement: a name another live instance holds is a start error.
    /// A ZooKeeper that does not answer meanwhile is no error: zkgate
    /// announces itself once it does.
    async fn fleet_name_is_ours(&self) -> Result<(), StartError> {
        let fleet = self
            .publisher
            .config()
            .zookeeper
            .as_ref()
            .and_then(|z| z.fleet.as_ref());
        let (Some(_), Some(mut announced)) = (fleet, self.publisher.announced()) else {
            return Ok(());
        };
        let settled = async {
            let state = announced
                .wait_for(|state| *state != Announced::Pending)
                .await;
            state.map(|state| state.clone())
        };
        let outcome = tokio::time::timeout(crate::readiness::FIRST_LISTING_MAX, settled).await;
        match outcome {
            Ok(Ok(Announced::Taken(why))) => Err(StartError::FleetName(why)),
            Ok(Ok(_)) => Ok(()),
            _ => {
                warn!("ZooKeeper has not taken the fleet announcement yet; it is written once ZooKeeper answers");
                Ok(())
            }
        }
    }

    /// Handles signals and discovery updates until SIGTERM or SIGINT, then drains and returns.
    pub async fn run(mut self) -> Result<(), StartError> {
        let mut hold_check = tokio::time::interval(HOLD_CHECK);
        if !matches!(self.hold, Some(Hold::Predecessor(_))) {
            // Listening and routing: serving. (Ready, as `/ready` means it,
            // may wait for ZooKeeper; systemd need not.)
            announce_to_systemd();
        }
        loop {
            // While a reload warms up, the running table is left as it is.
            let refresh = self.warming.is_none();
            tokio::select! {
                _ = self.signals.hangup.recv() => self.reload().await,
                text = self.sources.node_changed() => {
                    self.sources.set_node_text(text);
                    self.apply_sources().await;
                }
                input = self.publisher.next_input(refresh) => self.servers_changed(input).await,
                _ = sleep_until(self.warming.as_ref().map(Warming::until)) => self.go_live_once_warm(false).await,
                Some(wanted) = self.sockets_wanted.recv() => {
                    // The receiver gone means its process gave up: nothing to do.
                    let _ = wanted.send(self.sockets_to_hand_over());
                }
                _ = self.signals.successor.recv() => self.succession.start_successor(self.handover.is_some()),
                _ = hold_check.tick(), if self.hold.is_some() => self.end_hold_if_due().await,
                _ = self.signals.terminate.recv() => break,
                _ = self.signals.interrupt.recv() => break,
            }
        }
        self.shut_down().await;
        Ok(())
    }

    /// Stops accepting, drains open connections (at most
    /// [`SHUTDOWN_GRACE`]) and writes out the access log.
    async fn shut_down(mut self) {
        // A successor is the service now: systemd must not think it stops.
        if !self.succession.handed_over() {
            notify::send("STOPPING=1");
        }
        info!(
            connections = self.proxy.connections.count(),
            "shutting down: no longer accepting"
        );
        self.publisher.stop_discovery();
        // No process takes over from one shutting down.
        self.handover = None;
        // Only once no accept loop can take another connection is the count
        // of open ones final enough to drain.
        self.listeners.stop_all().await;
        let left = self.proxy.connections.drain(SHUTDOWN_GRACE).await;
        if left > 0 {
            warn!(
                connections = left,
                "grace period over; closing remaining connections"
            );
        }
        // The last requests' lines may still be queued for the writer.
        if let Some(log) = &self.proxy.access_log {
            if tokio::time::timeout(ACCESS_LOG_FLUSH, log.flush())
                .await
                .is_err()
            {
                warn!("access log not written out within {ACCESS_LOG_FLUSH:?}; exiting anyway");
            }
        }
    }

    /// Applies a server change (and every other one queued) to the table in
    /// service, or, while a reload warms up, to the table it will publish.
    async fn servers_changed(&mut self, first: Input) {
        self.publisher.absorb(first).await;
        if self.warming.is_some() {
            // The running table stays; the warming configuration's first
            // table is built with all of this.
            self.update_readiness();
            self.go_live_once_warm(false).await;
            return;
        }
        self.publisher.publish_changes().await;
        self.update_readiness();
        if self.ready && self.hold.is_some() {
            // Held connections need not wait for the next check.
            self.end_hold_if_due().await;
        }
    }

    /// Re-reads the configuration file; an invalid one leaves everything as it was.
    async fn reload(&mut self) {
        info!(path = %self.sources.path().display(), "reloading configuration");
        match self.sources.reread_file().await {
            Ok(()) => self.apply_sources().await,
            Err(error) => {
                error!("reload refused: {error}");
                self.reload_failed(error);
            }
        }
    }

    /// Validates the file plus the config node (when there is one) and, if
    /// valid, puts the result in service.
    async fn apply_sources(&mut self) {
        match self.sources.load(self.publisher.config()).await {
            Ok((config, tls)) => self.apply(config, tls).await,
            Err(errors) => {
                error!("reload refused, the running configuration stays in service:\n{errors}");
                self.reload_failed(errors);
            }
        }
    }

    /// Puts a valid configuration in service once the backends it adds have
    /// synced (see [`Warming`]); one whose listeners cannot be bound leaves
    /// everything as it was.
    async fn apply(&mut self, config: Config, tls: TlsMaterial) {
        // A newer configuration: the one warming up goes into service first,
        // so that this one is compared with (and binds beside) what runs.
        self.go_live_once_warm(true).await;
        let running = self.publisher.config();
        if config.admin.bind != running.admin.bind {
            warn!("admin.bind changed: it takes effect at the next restart");
        }
        if config.access_log != running.access_log {
            warn!("access_log changed: it takes effect at the next restart");
        }
        let publisher = &mut self.publisher;
        let bound = match self
            .listeners
            .bind_new(&config, &mut Inherited::default(), |name| {
                publisher.frontend_id(name)
            }) {
            Ok(bound) => bound,
            Err((address, err)) => {
                error!(%address, error = %err, "reload refused: cannot listen; the running configuration stays in service");
                self.reload_failed(format!("cannot listen on {address}: {err}"));
                return;
            }
        };
        let previous = self.publisher.replace_config(config, tls);
        self.follow_config_node(Some(&previous));
        let warming = Warming::begin(bound, &self.publisher, &previous);
        if !warming.awaiting().is_empty() {
            info!(
                backends = ?warming.awaiting(),
                "configuration valid; in service once these backends have synced from ZooKeeper (at most {:?})",
                crate::warming::WARM_UP
            );
        }
        self.warming = Some(warming);
        self.go_live_once_warm(false).await;
    }

    /// Puts the configuration warming up in service once the backends it
    /// waits for have synced, or its time is up, or at once if `now`.
    async fn go_live_once_warm(&mut self, now: bool) {
        let Some(warming) = &self.warming else { return };
        let unsynced = warming.unsynced(&self.publisher);
        if !unsynced.is_empty() {
            if !now && Instant::now() < warming.until() {
                return;
            }
            warn!(
                backends = ?unsynced,
                "configuration going into service before these backends synced from ZooKeeper; they have no servers until they do"
            );
        }
        let Some(Warming { bound, .. }) = self.warming.take() else {
            return;
        };
        let next = self.publisher.build().await;
        self.listeners.stop_moved(&bound).await;
        self.publisher.publish(next);
        self.listeners.commit(bound, &self.proxy);
        self.update_readiness();
        self.publisher.metrics().count_reload("ok");
        self.report.update(|facts| {
            facts.config_generation += 1;
            facts.last_reload = Some(Reload {
                result: "ok",
                error: None,
                at_unix: unix_now(),
            });
        });
        info!(
            generation = self.publisher.table().load().generation,
            "configuration reloaded"
        );
    }

    /// Follows the config node the configuration in service names.
    fn follow_config_node(&mut self, previous: Option<&Config>) {
        let config = self.publisher.config();
        if self.sources.follow_node(config, previous) {
            let source = self.sources.describe(config);
            self.report.update(|facts| facts.config_source = source);
        }
    }

    fn reload_failed(&self, error: String) {
        self.publisher.metrics().count_reload("error");
        self.report.update(|facts| {
            facts.last_reload = Some(Reload {
                result: "error",
                error: Some(error),
                at_unix: unix_now(),
            });
        });
    }

    /// Starts accepting once the hold is over (see [`Hold::over`]), and
    /// once ready, lets the previous process finish.
    async fn end_hold_if_due(&mut self) {
        let Some(hold) = self.hold else { return };
        if self.warming.is_some() {
            // Its table goes into service first; checked again shortly.
            return;
        }
        if !hold.over(self.ready, self.publisher.zookeeper_connected()) {
            return;
        }
        self.hold = None;
        if matches!(hold, Hold::FirstListing(_)) && !self.ready {
            // ZooKeeper did not answer in time: what was served before
            // serves again, until it does.
            if !self.publisher.serve_last_known().is_empty() {
                self.update_readiness();
            }
        }
        self.publisher.set_accepting(true);
        self.publisher.rebuild().await;
        if let Hold::Predecessor(_) = hold {
            // Only now the service's main process: had this one failed
            // before, systemd would still follow the previous one, which serves.
            announce_to_systemd();
        }
        if self.ready {
            self.succession.ready();
        }
    }

    /// Ready once listeners are bound and every ZooKeeper-backed backend has
    /// synced at least once; also refreshes what the status page shows of
    /// ZooKeeper and discovery.
    fn update_readiness(&mut self) {
        let readiness = Readiness::assess(&self.publisher, self.warming.as_ref());
        self.ready = readiness.ready();
        if self.ready && self.hold.is_none() {
            // Everything the previous process served, this one serves too.
            self.succession.ready();
        }
        let generation = self.report.config_generation();
        self.publisher.announce(generation, self.started);
        self.report.update(|facts| {
            facts.not_ready = readiness.not_ready;
            facts.ready_notes = readiness.notes;
            facts.zookeeper = readiness.zookeeper;
            facts.discovery = readiness.discovery;
        });
    }

    /// Second descriptors of every listening socket, admin's included, for
    /// a process taking over.
    fn sockets_to_hand_over(&self) -> Vec<OwnedFd> {
        self.listeners
            .sockets()
            .chain(self.admin_socket.as_ref().map(AsFd::as_fd))
            .filter_map(|fd| match fd.try_clone_to_owned() {
                Ok(owned) => Some(owned),
                Err(err) => {
                    warn!(error = %err, "cannot duplicate a listening socket to hand over");
                    None
                }
            })
            .collect()
    }

    /// The addresses being listened on.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listeners.addresses()
    }
}

/// Why a new process holds new connections back at start, if it does:
/// sockets taken from a running `predecessor` (it goes on accepting on them
/// while this one is not ready), or, on a fresh start, briefly for
/// ZooKeeper's first listings.
fn start_hold(config: &Config, predecessor: Option<u32>) -> Option<Hold> {
    let watches_zookeeper = config.backends.iter().any(|b| b.discovery.is_some());
    match predecessor {
        Some(pid) => Some(Hold::Predecessor(pid)),
        None if watches_zookeeper => Some(Hold::FirstListing(Instant::now())),
        None => None,
    }
}

/// Serves the admin endpoint on `bind` (an inherited socket if there is
/// one); returns a second descriptor of its socket, to hand over.
fn serve_admin(
    admin: Admin,
    bind: SocketAddr,
    inherited: &mut Inherited,
) -> Result<Option<OwnedFd>, StartError> {
    let socket = match inherited.take(bind).pop() {
        Some(socket) => Ok(socket),
        None => zkgate_proxy::bind(bind),
    }
    .map_err(|source| StartError::Bind {
        address: bind,
        source,
    })?;
    let duplicate = socket.try_clone().map(OwnedFd::from).ok();
    tokio::spawn(async move {
        if let Err(err) = admin.serve(socket).await {
            error!(error = %err, "admin listener failed");
        }
    });
    Ok(duplicate)
}

/// The data plane reading `table`, with its access log if configured.
async fn data_plane(
    config: &Config,
    table: Arc<ArcSwap<RoutingTable>>,
) -> Result<Proxy, StartError> {
    let access_log = match &config.access_log {
        Some(access_log) => Some(zkgate_proxy::AccessLog::start(access_log).await.map_err(
            |source| StartError::AccessLog {
                path: access_log.path.clone(),
                source,
            },
        )?),
        None => None,
    };
    Ok(Proxy::new(table, access_log))
}

/// Sleeps until `at`, or forever if `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tells systemd this process serves, and is the service's main one.
fn announce_to_systemd() {
    notify::send(&format!("READY=1\nMAINPID={}", std::process::id()));
}
