//! The control plane: the single owner of change. It receives every input —
//! the configuration file (SIGHUP), ZooKeeper membership updates — builds the
//! next [`RoutingTable`] off the data path, publishes it with one `ArcSwap`
//! store, and binds or unbinds listeners to match.

mod listeners;
mod members;
mod notify;
mod readiness;
mod reload;
mod resolve;
mod servers;
mod signals;
mod succession;
mod upgrade;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::Registry;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use zkgate_admin::{Admin, Report};
use zkgate_config::Config;
use zkgate_discovery::{Discovery, NodeText, Update};
use zkgate_health::{HealthChecks, HealthEvent};
use zkgate_proxy::Proxy;
pub use zkgate_proxy::Workers;
use zkgate_routing::{Metrics, RoutingTable, TableBuilder};
use zkgate_tls::TlsMaterial;

use listeners::Listeners;
use members::Members;
use readiness::Hold;
use reload::Warming;
use resolve::Resolver;
use servers::Input;
pub use signals::Signals;
use succession::Succession;
use upgrade::{SocketsWanted, UpgradeSocket};

/// How long shutdown waits for the access log's last lines to be written.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(5);

/// How often a process holding back (see `Hold`) checks whether it is
/// ready, or its predecessor gone.
const HOLD_CHECK: Duration = Duration::from_millis(20);

/// How long SIGTERM waits for in-flight requests before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Discovery updates buffered between the watchers and the control plane.
const UPDATE_QUEUE: usize = 4096;

/// Why zkgate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The upgrade socket could not be served.
    #[error("cannot serve the upgrade socket {path}: {source}")]
    UpgradeSocket {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Metrics could not be registered (a bug: names are fixed).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The access log could not be opened.
    #[error("cannot open the access log {path}: {source}")]
    AccessLog {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The configuration zkgate starts with: read and validated, with its TLS
/// material loaded.
pub struct LoadedConfig {
    /// The file, re-read at every SIGHUP.
    pub path: PathBuf,
    /// The file's text, which a config node's sections are merged into.
    pub text: String,
    /// The configuration.
    pub config: Config,
    /// Its certificates and keys.
    pub tls: TlsMaterial,
}

/// The running control plane.
pub struct ControlPlane {
    config_path: PathBuf,
    config: Config,
    builder: TableBuilder,
    metrics: Metrics,
    table: Arc<ArcSwap<RoutingTable>>,
    proxy: Proxy,
    listeners: Listeners,
    report: Arc<Report>,
    resolver: Resolver,
    members: Members,
    discovery: Option<Discovery>,
    updates_tx: mpsc::Sender<Update>,
    updates: mpsc::Receiver<Update>,
    health: HealthChecks,
    health_events: mpsc::Receiver<HealthEvent>,
    /// The configuration file's text as last read.
    file_text: String,
    /// The config node's text, when one is configured and exists.
    node_text: Option<String>,
    config_node: Option<tokio::task::JoinHandle<()>>,
    node_tx: mpsc::Sender<NodeText>,
    node_updates: mpsc::Receiver<NodeText>,
    /// When the last server-change build finished and what it cost: the
    /// next one waits so that builds use a bounded share of a core.
    last_build: Option<(Instant, Duration)>,
    /// The admin listener's socket (a second descriptor), to hand over.
    admin_socket: Option<OwnedFd>,
    upgrade: Option<UpgradeSocket>,
    sockets_wanted: mpsc::Receiver<SocketsWanted>,
    /// The processes before and after this one in upgrades (SIGUSR2).
    succession: Succession,
    /// Whether `/ready` answers 200.
    ready: bool,
    /// Why this process does not accept new connections yet.
    hold: Option<Hold>,
    /// A reload waiting for its new backends' first listing.
    warming: Option<Warming>,
    signals: Signals,
}

impl ControlPlane {
    /// Binds the admin listener and every frontend (accepted on `workers`),
    /// starts ZooKeeper discovery, and publishes the first table (static
    /// servers serve at once). With an `upgrade_socket`, listening sockets
    /// are first taken over from the process serving it, and then handed on
    /// to the next one.
    pub async fn start(
        loaded: LoadedConfig,
        workers: Workers,
        upgrade_socket: Option<PathBuf>,
        signals: Signals,
    ) -> Result<Self, StartError> {
        let LoadedConfig {
            path: config_path,
            text: file_text,
            config,
            tls,
        } = loaded;
        let (mut inherited, predecessor) = match &upgrade_socket {
            Some(path) => upgrade::take_over(path).await,
            None => (zkgate_proxy::Inherited::default(), None),
        };
        // Sockets taken from a running process: it goes on accepting on
        // them while this one is not ready, and this one holds back. A fresh
        // start holds back briefly for ZooKeeper's first listings.
        let watches_zookeeper = config.backends.iter().any(|b| b.discovery.is_some());
        let hold = match predecessor.filter(|_| !inherited.is_empty()) {
            Some(pid) => Some(Hold::Predecessor(pid)),
            None if watches_zookeeper => Some(Hold::FirstListing(Instant::now())),
            None => None,
        };
        // Served from now on, for the next process; it is answered once `run` begins.
        let (wanted_tx, sockets_wanted) = mpsc::channel(1);
        let upgrade = match &upgrade_socket {
            Some(path) => Some(UpgradeSocket::serve(path, wanted_tx).map_err(|source| {
                StartError::UpgradeSocket {
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
            facts.config_source = config_path.display().to_string();
        });
        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::empty()));
        let admin_socket = match inherited.take(config.admin.bind).pop() {
            Some(socket) => Ok(socket),
            None => zkgate_proxy::bind(config.admin.bind),
        }
        .map_err(|source| StartError::Bind {
            address: config.admin.bind,
            source,
        })?;
        let admin_dup = admin_socket.try_clone().map(OwnedFd::from).ok();
        let admin = Admin {
            registry,
            report: Arc::clone(&report),
            table: Arc::clone(&table),
            metrics: metrics.clone(),
        };
        tokio::spawn(async move {
            if let Err(err) = admin.serve(admin_socket).await {
                error!(error = %err, "admin listener failed");
            }
        });

        let mut proxy = Proxy::new(Arc::clone(&table));
        if let Some(access_log) = &config.access_log {
            let log = zkgate_proxy::AccessLog::start(access_log)
                .await
                .map_err(|source| StartError::AccessLog {
                    path: access_log.path.clone(),
                    source,
                })?;
            proxy.access_log = Some(log);
        }
        let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
        let (health_tx, health_events) = mpsc::channel(UPDATE_QUEUE);
        let (node_tx, node_updates) = mpsc::channel(16);
        let mut plane = ControlPlane {
            config_path,
            config: config.clone(),
            builder: TableBuilder::new(metrics.clone()),
            metrics,
            table,
            proxy,
            listeners: Listeners::new(workers),
            report,
            resolver: Resolver::default(),
            members: Members::new(),
            discovery: None,
            updates_tx,
            updates,
            health: HealthChecks::new(health_tx),
            health_events,
            file_text,
            node_text: None,
            config_node: None,
            node_tx,
            node_updates,
            last_build: None,
            admin_socket: admin_dup,
            upgrade,
            sockets_wanted,
            succession: Succession::from_env(),
            ready: false,
            hold,
            warming: None,
            signals,
        };
        plane.builder.set_tls(tls);
        match hold {
            Some(Hold::Predecessor(pid)) => info!(
                pid,
                "accepting once ready; the previous process serves meanwhile"
            ),
            Some(Hold::FirstListing(_)) => info!(
                "new connections wait for the ZooKeeper-backed backends' first listing (at most {:?} for ZooKeeper to answer, {:?} in all)",
                readiness::FIRST_LISTING_UNANSWERED,
                readiness::FIRST_LISTING_MAX
            ),
            None => {}
        }
        plane.builder.set_accepting(hold.is_none());
        let next = plane.build(&config).await;
        let bound = plane
            .listeners
            .bind_new(&config, &mut plane.builder, &mut inherited)
            .map_err(|(address, source)| StartError::Bind { address, source })?;
        plane.publish(next);
        plane.listeners.commit(bound, &plane.proxy);
        if !inherited.is_empty() {
            // Closed here; they stay open in the previous process until it exits.
            info!(addresses = ?inherited.addresses(), "handed sockets this configuration does not listen on; not taking them");
        }
        plane.follow_zookeeper(None);
        plane.follow_config_node(None);
        plane.report.update(|facts| facts.config_generation = 1);
        plane.update_readiness();
        Ok(plane)
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
            tokio::select! {
                _ = self.signals.hangup.recv() => self.reload().await,
                Some(text) = self.node_updates.recv() => self.config_node_changed(text).await,
                Some(update) = self.updates.recv() => self.servers_changed(Input::Membership(update)).await,
                Some(event) = self.health_events.recv() => self.servers_changed(Input::Health(event)).await,
                _ = self.proxy.changed.notified() => self.servers_changed(Input::Refresh).await,
                // While a reload warms up, the running table is left as it is.
                _ = refresh_at(self.table.load().refresh_at_ms()), if self.warming.is_none() => self.servers_changed(Input::Refresh).await,
                _ = sleep_until(self.warming.as_ref().map(Warming::until)) => self.go_live_once_warm(false).await,
                Some(wanted) = self.sockets_wanted.recv() => {
                    // The receiver gone means its process gave up: nothing to do.
                    let _ = wanted.send(self.sockets_to_hand_over());
                }
                _ = self.signals.upgrade.recv() => self.succession.start_successor(self.upgrade.is_some()),
                _ = hold_check.tick(), if self.hold.is_some() => self.end_hold_if_due().await,
                _ = self.signals.terminate.recv() => break,
                _ = self.signals.interrupt.recv() => break,
            }
        }
        // A successor is the service now: systemd must not think it stops.
        if !self.succession.handed_over() {
            notify::send("STOPPING=1");
        }
        info!(
            connections = self.proxy.connections.count(),
            "shutting down: no longer accepting"
        );
        self.discovery = None;
        // No process takes over from one shutting down.
        self.upgrade = None;
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
        Ok(())
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

    fn publish(&mut self, table: RoutingTable) {
        let generation = table.generation;
        let started = Instant::now();
        let table = Arc::new(table);
        self.table.store(Arc::clone(&table));
        // New servers get checked; removed ones stop being checked.
        self.health.reconcile(&table, &self.config);
        self.metrics.table_generation.set(generation as i64);
        self.metrics.table_swaps.inc();
        debug!(
            generation,
            swap_us = started.elapsed().as_micros() as u64,
            "routing table published"
        );
    }

    /// The addresses being listened on.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listeners.addresses()
    }
}

/// Sleeps until `at`, or forever if `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at_ms` (in `clock::now_ms` time), or forever if `None`.
async fn refresh_at(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => tokio::time::sleep_until(zkgate_routing::clock::instant_of(at).into()).await,
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
