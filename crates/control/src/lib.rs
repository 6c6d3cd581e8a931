//! The control plane: the single owner of change. It receives every input —
//! the configuration file (SIGHUP), ZooKeeper membership updates — builds the
//! next [`RoutingTable`] off the data path, publishes it with one `ArcSwap`
//! store, and binds or unbinds listeners to match.

mod listeners;
mod members;
mod notify;
mod reload;
mod resolve;
mod succession;
mod upgrade;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::Registry;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use zkgate_admin::{Admin, DiscoveryFacts, Report, ZooKeeperFacts};
use zkgate_config::Config;
use zkgate_discovery::{Discovery, NodeText, Update, WatchSpec};
use zkgate_health::{HealthChecks, HealthEvent};
use zkgate_proxy::Proxy;
pub use zkgate_proxy::Workers;
use zkgate_routing::{Discovered, Metrics, RoutingTable, TableBuilder};
use zkgate_tls::TlsMaterial;

use listeners::Listeners;
use members::Members;
use reload::Warming;
use resolve::Resolver;
use succession::Succession;
use upgrade::{SocketsWanted, UpgradeSocket};

/// How long shutdown waits for the access log's last lines to be written.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(5);

/// How often a process holding back (see `holding_for`) checks whether it
/// is ready, or its predecessor gone.
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
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Server changes are applied by builds that use at most about 1 % of a
/// core: after a build that took `d`, the next starts no sooner than
/// `d × BUILD_COST_SHARE` later, merging what arrives meanwhile (Envoy's
/// update merge window, sized by cost instead of fixed at a second).
const BUILD_COST_SHARE: u32 = 100;
/// The longest a change waits to be merged, however costly builds are.
const MAX_MERGE_WAIT: Duration = Duration::from_millis(250);
/// Builds cheaper than this never delay the next change: small tables keep
/// their sub-millisecond change-to-traffic latency.
const MERGE_ABOVE: Duration = Duration::from_micros(200);

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
    /// The process whose sockets this one took, while this one does not
    /// accept on them yet.
    holding_for: Option<u32>,
    /// A reload waiting for its new backends' first listing.
    warming: Option<Warming>,
    signals: Signals,
}

/// The signals zkgate acts on. Their handlers are installed first thing at
/// start, so that one sent while zkgate starts is acted on once it runs,
/// instead of killing it (the default action of SIGHUP and SIGUSR2).
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
    upgrade: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            upgrade: signal(SignalKind::user_defined2())?,
        })
    }
}

/// An input that changes which servers take traffic.
enum Input {
    Membership(Update),
    Health(HealthEvent),
    /// The table went stale by itself: an ejection began or ended, a slow start stepped.
    Refresh,
}

impl ControlPlane {
    /// Binds the admin listener and every frontend (accepted on `workers`),
    /// starts ZooKeeper discovery, and publishes the first table (static
    /// servers serve at once). With an `upgrade_socket`, listening sockets
    /// are first taken over from the process serving it, and then handed on
    /// to the next one.
    pub async fn start(
        config_path: PathBuf,
        config: Config,
        tls: TlsMaterial,
        workers: Workers,
        upgrade_socket: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        let signals = Signals::install().map_err(StartError::Signals)?;
        let (mut inherited, predecessor) = match &upgrade_socket {
            Some(path) => upgrade::take_over(path).await,
            None => (zkgate_proxy::Inherited::default(), None),
        };
        // Sockets taken from a running process: it goes on accepting on
        // them while this one is not ready, and this one holds back.
        let holding_for = predecessor.filter(|_| !inherited.is_empty());
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
        // The file was just validated by the caller; keep its text for reloads with a config node.
        let file_text = std::fs::read_to_string(&config_path).unwrap_or_default();
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
            holding_for,
            warming: None,
            signals,
        };
        plane.builder.set_tls(tls);
        if let Some(pid) = holding_for {
            plane.builder.set_accepting(false);
            info!(
                pid,
                "accepting once ready; the previous process serves meanwhile"
            );
        }
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
        if self.holding_for.is_none() {
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
                _ = hold_check.tick(), if self.holding_for.is_some() => self.end_hold_if_due().await,
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

    /// Starts accepting once ready, or once the process whose sockets this
    /// one took is gone (nobody else accepts on them then); and once ready,
    /// lets that process finish.
    async fn end_hold_if_due(&mut self) {
        let Some(pid) = self.holding_for else { return };
        if self.warming.is_some() {
            // Its table goes into service first; checked again shortly.
            return;
        }
        let gone = rustix::process::Pid::from_raw(pid as i32).is_none_or(|pid| {
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        });
        if !self.ready && !gone {
            return;
        }
        if self.ready {
            info!("ready: accepting");
        } else {
            warn!(pid, "the previous process is gone: accepting before ready");
        }
        self.holding_for = None;
        self.builder.set_accepting(true);
        let config = self.config.clone();
        let table = self.build(&config).await;
        self.publish(table);
        // Only now the service's main process: had this one failed before,
        // systemd would still follow the previous one, which serves.
        announce_to_systemd();
        if self.ready {
            self.succession.ready();
        }
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

    /// Applies an input and every other one already queued, then builds
    /// once: a burst of a thousand changes costs a few builds, a single
    /// change no added delay.
    async fn servers_changed(&mut self, first: Input) {
        // Under sustained churn, changes that arrive while the previous build
        // is still "being paid for" wait and are merged into one build. An
        // isolated change, or any change to a small table (whose build takes
        // microseconds), is applied at once.
        if let Some((finished, cost)) = self.last_build.filter(|(_, cost)| *cost >= MERGE_ABOVE) {
            let spacing = (cost * BUILD_COST_SHARE).min(MAX_MERGE_WAIT);
            tokio::time::sleep_until((finished + spacing).into()).await;
        }
        let started = Instant::now();
        let (mut memberships, mut health) = (0usize, 0usize);
        let mut next = Some(first);
        while let Some(input) = next {
            match input {
                Input::Membership(update) => {
                    if let Some(members) = self.members.get_mut(&*update.backend) {
                        members.apply(update.change);
                        memberships += 1;
                    }
                }
                // The checker already wrote the server's health; the build reads it.
                Input::Refresh => {}
                Input::Health(event) => {
                    debug!(backend = %event.backend, server = %event.address, health = ?event.health, "health changed");
                    health += 1;
                }
            }
            next = self
                .updates
                .try_recv()
                .ok()
                .map(Input::Membership)
                .or_else(|| self.health_events.try_recv().ok().map(Input::Health));
        }
        debug!(memberships, health, "applying server changes");
        if self.warming.is_some() {
            // The running table stays; the warming configuration's first
            // table is built with all of this.
            self.update_readiness();
            self.go_live_once_warm(false).await;
            return;
        }
        let config = self.config.clone();
        let table = self.build(&config).await;
        self.publish(table);
        self.update_readiness();
        self.last_build = Some((Instant::now(), started.elapsed()));
    }

    /// Starts, changes or stops discovery to match `self.config`.
    fn follow_zookeeper(&mut self, previous: Option<&Config>) {
        let specs: Vec<WatchSpec> = self
            .config
            .backends
            .iter()
            .filter_map(|b| {
                Some(WatchSpec {
                    backend: b.name.as_str().into(),
                    config: b.discovery.clone()?,
                })
            })
            .collect();
        // Forget members of backends no longer watched, or watched differently.
        let old_watch = |name: &str| {
            previous
                .and_then(|c| c.backend(name))
                .and_then(|b| b.discovery.clone())
        };
        self.members.retain(|name, _| {
            specs
                .iter()
                .any(|s| &*s.backend == name && old_watch(name).as_ref() == Some(&s.config))
        });
        for spec in &specs {
            self.members.entry(spec.backend.to_string()).or_default();
        }
        for gone in previous.into_iter().flat_map(|c| &c.backends) {
            if !self.members.contains_key(&gone.name) {
                for family in [
                    &self.metrics.discovery_members,
                    &self.metrics.discovery_invalid_members,
                    &self.metrics.discovery_keeping_last,
                ] {
                    family.remove_label_values(&[&gone.name]).ok();
                }
            }
        }

        let same_ensemble = previous.is_some_and(|c| c.zookeeper == self.config.zookeeper);
        match (&self.config.zookeeper, &self.discovery) {
            (Some(_), Some(discovery)) if same_ensemble => discovery.set_specs(specs),
            (Some(zookeeper), _) => {
                info!(connect = %zookeeper.connect, backends = specs.len(), "following ZooKeeper");
                self.discovery = Some(Discovery::start(
                    zookeeper.clone(),
                    specs,
                    self.updates_tx.clone(),
                    self.metrics.clone(),
                ));
            }
            (None, _) => {
                self.discovery = None;
                self.metrics.zookeeper_connected.set(0);
            }
        }
    }

    async fn build(&mut self, config: &Config) -> RoutingTable {
        let mut discovered = Discovered::new();
        for backend in &config.backends {
            let (Some(discovery), Some(members)) =
                (&backend.discovery, self.members.get_mut(&backend.name))
            else {
                continue;
            };
            let in_service = members.in_service(&backend.name, discovery.on_empty);
            let labels = &[backend.name.as_str()];
            self.metrics
                .discovery_members
                .with_label_values(labels)
                .set(in_service.len() as i64);
            self.metrics
                .discovery_invalid_members
                .with_label_values(labels)
                .set(members.invalid() as i64);
            self.metrics
                .discovery_keeping_last
                .with_label_values(labels)
                .set(i64::from(members.keeping_last()));
            discovered.insert(backend.name.clone(), in_service);
        }
        let addresses = config
            .backends
            .iter()
            .flat_map(|b| &b.servers)
            .chain(discovered.values().flatten())
            .map(|s| &s.address);
        let resolved = self.resolver.resolve(addresses).await;
        self.builder.build(config, &discovered, &resolved)
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

    /// Ready once listeners are bound and every ZooKeeper-backed backend has
    /// synced at least once; also refreshes what the status page shows of
    /// ZooKeeper and discovery.
    fn update_readiness(&mut self) {
        // A backend a reload is warming up for is not served yet.
        let warming = |name: &str| self.warming.as_ref().is_some_and(|w| w.awaits(name));
        let mut unsynced: Vec<String> = self
            .members
            .iter()
            .filter(|(name, m)| !m.synced && !warming(name))
            .map(|(name, _)| format!("backend {name} has not synced from ZooKeeper yet"))
            .collect();
        unsynced.sort();
        let zookeeper = self.config.zookeeper.as_ref().map(|zk| ZooKeeperFacts {
            connect: zk.connect.clone(),
            connected: false,
            session_expirations: 0,
        });
        let discovery = self
            .config
            .backends
            .iter()
            .filter_map(|backend| {
                let watch = backend.discovery.as_ref()?;
                let members = self.members.get(&backend.name)?;
                let facts = DiscoveryFacts {
                    path: watch.path.clone(),
                    format: watch.format.as_str(),
                    synced: members.synced,
                    members: self
                        .metrics
                        .discovery_members
                        .with_label_values(&[&backend.name])
                        .get() as usize,
                    invalid_members: members.invalid(),
                    keeping_last: members.keeping_last(),
                };
                Some((backend.name.clone(), facts))
            })
            .collect();
        self.ready = unsynced.is_empty();
        if self.ready && self.holding_for.is_none() {
            // Everything the previous process served, this one serves too.
            self.succession.ready();
        }
        self.report.update(|facts| {
            facts.not_ready = unsynced;
            facts.zookeeper = zookeeper;
            facts.discovery = discovery;
        });
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
