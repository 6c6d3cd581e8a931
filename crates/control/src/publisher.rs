//! The table publisher: from the configuration in service, what ZooKeeper
//! says each backend's members are, and what health checks found, it builds
//! the next [`RoutingTable`] off the data path and publishes it with one
//! `ArcSwap` store. Server changes are merged into as few builds as keep up
//! with them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};
use zkgate_config::Config;
use zkgate_discovery::{Discovery, Update, WatchSpec};
use zkgate_health::{HealthChecks, HealthEvent};
use zkgate_metrics::Metrics;
use zkgate_routing::{Changed, Discovered, FrontendId, RoutingTable, TableBuilder};
use zkgate_tls::TlsMaterial;

use crate::build_budget::BuildBudget;
use crate::last_known::{self, LastKnown};
use crate::members::{BackendMembers, Members};
use crate::on_cpu::OnCpu;
use crate::resolve::Resolver;

/// Discovery updates and health events buffered for the publisher.
const INPUT_QUEUE: usize = 4096;

/// An input that changes which servers take traffic.
pub(crate) enum Input {
    Membership(Update),
    Health(HealthEvent),
    /// The table went stale by itself: an ejection began or ended, a slow start stepped.
    Refresh,
}

/// Builds and publishes routing tables; the only writer of the table the
/// data plane reads.
pub(crate) struct TablePublisher {
    config: Config,
    builder: TableBuilder,
    metrics: Metrics,
    table: Arc<ArcSwap<RoutingTable>>,
    resolver: Resolver,
    members: Members,
    discovery: Option<Discovery>,
    updates_tx: mpsc::Sender<Update>,
    updates: mpsc::Receiver<Update>,
    health: HealthChecks,
    health_events: mpsc::Receiver<HealthEvent>,
    /// The data plane's word that the table went stale (a server was ejected).
    stale: Arc<Notify>,
    /// The CPU time server-change builds may spend: past a burst, the next
    /// build waits, merging the changes that come meanwhile.
    budget: BuildBudget,
    /// The CPU time spent so far on the changes being applied.
    cost: Duration,
    /// The writer of the last-known members, with `state_dir`.
    last_known: Option<LastKnown>,
    /// The backends the next build must build anew (`None`: all of them):
    /// those server changes touched since the last build.
    changed: Option<HashSet<String>>,
}

impl TablePublisher {
    /// A publisher of `table` for `config`, not yet following ZooKeeper;
    /// `stale` is how the data plane asks for a rebuild.
    pub(crate) fn new(
        config: Config,
        tls: TlsMaterial,
        metrics: Metrics,
        table: Arc<ArcSwap<RoutingTable>>,
        stale: Arc<Notify>,
    ) -> Self {
        let (updates_tx, updates) = mpsc::channel(INPUT_QUEUE);
        let (health_tx, health_events) = mpsc::channel(INPUT_QUEUE);
        let mut builder = TableBuilder::new(metrics.clone());
        builder.set_tls(tls);
        TablePublisher {
            config,
            builder,
            metrics,
            table,
            resolver: Resolver::default(),
            members: Members::new(),
            discovery: None,
            updates_tx,
            updates,
            health: HealthChecks::new(health_tx),
            health_events,
            stale,
            budget: BuildBudget::new(Instant::now()),
            cost: Duration::ZERO,
            last_known: None,
            changed: None,
        }
    }

    /// The configuration tables are built from.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The published table.
    pub(crate) fn table(&self) -> &Arc<ArcSwap<RoutingTable>> {
        &self.table
    }

    /// The registered metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The membership of a ZooKeeper-backed backend.
    pub(crate) fn members_of(&self, backend: &str) -> Option<&BackendMembers> {
        self.members.get(backend)
    }

    /// Every ZooKeeper-backed backend's membership.
    pub(crate) fn members(&self) -> impl Iterator<Item = (&String, &BackendMembers)> {
        self.members.iter()
    }

    /// Whether ZooKeeper answers.
    pub(crate) fn zookeeper_connected(&self) -> bool {
        self.metrics.zookeeper_connected.get() == 1
    }

    /// The stable id of frontend `name`, for its listeners.
    pub(crate) fn frontend_id(&mut self, name: &str) -> FrontendId {
        self.builder.frontend_id(name)
    }

    /// Whether tables say listeners take new connections.
    pub(crate) fn set_accepting(&mut self, accepting: bool) {
        self.builder.set_accepting(accepting);
    }

    /// Builds from `config` from now on (and follows its ZooKeeper
    /// backends); returns the previous one.
    pub(crate) fn replace_config(&mut self, config: Config, tls: TlsMaterial) -> Config {
        self.changed = None;
        let previous = std::mem::replace(&mut self.config, config);
        self.builder.set_tls(tls);
        self.resolver.forget();
        self.follow_zookeeper(Some(&previous));
        previous
    }

    /// The next server change, once one arrives; `refresh` allows the
    /// table's own timed refresh (ejections ending, slow starts stepping).
    /// Meanwhile, writes the last-known members that are due.
    pub(crate) async fn next_input(&mut self, refresh: bool) -> Input {
        loop {
            let refresh_at = self.table.load().refresh_at_ms().filter(|_| refresh);
            let write_at = self.last_known.as_ref().and_then(LastKnown::next_due);
            let release_at = self.next_release();
            tokio::select! {
                Some(update) = self.updates.recv() => return Input::Membership(update),
                Some(event) = self.health_events.recv() => return Input::Health(event),
                () = self.stale.notified() => return Input::Refresh,
                () = sleep_until_ms(refresh_at) => return Input::Refresh,
                () = sleep_until(write_at) => self.write_last_known(),
                () = sleep_until(release_at) => {
                    if self.release_held_members() {
                        return Input::Refresh;
                    }
                }
            }
        }
    }

    /// When the next backend's held members may go (see `protect`).
    fn next_release(&self) -> Option<Instant> {
        self.config
            .backends
            .iter()
            .filter_map(|b| {
                let protect = b.discovery.as_ref()?.protect.as_ref();
                self.members.get(&b.name)?.release_at(protect)
            })
            .min()
    }

    /// Lets the held members go of each backend whose window after its
    /// last removal passed with ZooKeeper connected; one whose window
    /// passed without ZooKeeper starts its window again. Whether any went.
    fn release_held_members(&mut self) -> bool {
        let now = Instant::now();
        let connected = self.zookeeper_connected();
        let mut released = false;
        for backend in &self.config.backends {
            let protect = backend.discovery.as_ref().and_then(|d| d.protect.as_ref());
            let Some(members) = self.members.get_mut(&backend.name) else {
                continue;
            };
            if members.release_at(protect).is_none_or(|at| at > now) {
                continue;
            }
            if connected {
                released |= members
                    .release_all(&backend.name, "the window after the last removal passed")
                    > 0;
            } else {
                members.postpone_release();
            }
        }
        released
    }

    /// Writes the last-known members of the backends whose turn it is.
    fn write_last_known(&mut self) {
        let Some(last_known) = &mut self.last_known else {
            return;
        };
        let (config, members) = (&self.config, &self.members);
        last_known.write_due(|backend| {
            let watch = config.backend(backend)?.discovery.as_ref()?;
            let members = members.get(backend).filter(|m| m.synced)?;
            Some((watch, members.current()))
        });
    }

    /// At a start whose ZooKeeper has not answered, serves each backend
    /// that has not synced its last-known members from `state_dir`, marked
    /// stale until ZooKeeper's first listing replaces them; returns those
    /// backends.
    pub(crate) fn serve_last_known(&mut self) -> Vec<String> {
        let Some(dir) = self.config.state_dir.clone() else {
            return Vec::new();
        };
        let mut served = Vec::new();
        for backend in &self.config.backends {
            let (Some(watch), Some(members)) =
                (&backend.discovery, self.members.get_mut(&backend.name))
            else {
                continue;
            };
            if members.synced {
                continue;
            }
            if let Some(last) = last_known::read(&dir, &backend.name, watch) {
                warn!(
                    backend = %backend.name,
                    members = last.len(),
                    "ZooKeeper has not answered: serving the last-known members from state_dir until it does"
                );
                members.serve_last_known(last);
                served.push(backend.name.clone());
            }
        }
        served
    }

    /// Applies `first` and every other server change already queued. Under
    /// sustained churn, once builds have spent their burst, changes wait
    /// and are merged into one build; a lone change, or one to a small
    /// table (whose build takes microseconds), is applied at once.
    pub(crate) async fn absorb(&mut self, first: Input) {
        if let Some(next) = self.budget.next_build() {
            tokio::time::sleep_until(next.into()).await;
        }
        let on_cpu = OnCpu::start();
        let (mut memberships, mut health) = (0usize, 0usize);
        let mut next = Some(first);
        while let Some(input) = next {
            match input {
                Input::Membership(update) => {
                    self.touched(&update.backend);
                    let protect = self
                        .config
                        .backend(&update.backend)
                        .and_then(|b| b.discovery.as_ref())
                        .and_then(|d| d.protect.as_ref());
                    if let Some(members) = self.members.get_mut(&*update.backend) {
                        members.apply(&update.backend, update.change, protect);
                        memberships += 1;
                        if let Some(last_known) = &mut self.last_known {
                            last_known.changed(&update.backend);
                        }
                    }
                }
                // The checker already wrote the server's health; the build reads it.
                Input::Refresh => self.changed = None,
                Input::Health(event) => {
                    self.touched(&event.backend);
                    debug!(backend = %event.backend, server = %event.address, health = ?event.health, "health changed");
                    health += 1;
                    if event.health == zkgate_routing::Health::Down {
                        if let Some(members) = self.members.get_mut(&*event.backend) {
                            members.release_failing(&event.backend, event.address);
                        }
                    }
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
        self.cost = on_cpu.elapsed();
    }

    /// Notes that `backend` must be built anew at the next build.
    fn touched(&mut self, backend: &str) {
        if let Some(changed) = &mut self.changed {
            if !changed.contains(backend) {
                changed.insert(backend.to_owned());
            }
        }
    }

    /// Builds and publishes the changes absorbed (only the backends they
    /// touched are built anew), and notes their cost for the next merge.
    pub(crate) async fn publish_changes(&mut self) {
        let changed = self.changed.take();
        let table = self.build_changed(changed.as_ref()).await;
        let on_cpu = OnCpu::start();
        self.publish(table);
        self.budget
            .spent(self.cost + on_cpu.elapsed(), Instant::now());
    }

    /// Builds a table from the configuration and what is known of its
    /// servers, and publishes it.
    pub(crate) async fn rebuild(&mut self) {
        let table = self.build().await;
        self.publish(table);
    }

    /// Builds a table from the configuration and what is known of its
    /// servers, without publishing it.
    pub(crate) async fn build(&mut self) -> RoutingTable {
        self.changed = None;
        self.build_changed(None).await
    }

    /// Builds a table in which only the backends `changed` names (every
    /// backend if `None`) are built anew.
    async fn build_changed(&mut self, changed: Option<&HashSet<String>>) -> RoutingTable {
        let on_cpu = OnCpu::start();
        let rebuilt = |name: &String| changed.is_none_or(|c| c.contains(name));
        for backend in self.config.backends.iter().filter(|b| rebuilt(&b.name)) {
            let (Some(discovery), Some(members)) =
                (&backend.discovery, self.members.get_mut(&backend.name))
            else {
                continue;
            };
            members.settle(&backend.name, discovery.on_empty);
        }
        // The members are read where they are kept, not copied.
        let mut discovered = Discovered::new();
        for backend in self.config.backends.iter().filter(|b| rebuilt(&b.name)) {
            let Some(members) = self.members.get(&backend.name) else {
                continue;
            };
            let in_service = members.in_service();
            export_members(&self.metrics, &backend.name, members, in_service.len());
            discovered.insert(backend.name.clone(), in_service);
        }
        let addresses = self
            .config
            .backends
            .iter()
            .flat_map(|b| &b.servers)
            .chain(discovered.values().flatten().copied())
            .map(|s| &s.address);
        self.cost += on_cpu.elapsed();
        let resolved = self.resolver.resolve(addresses).await;
        let on_cpu = OnCpu::start();
        let table = match changed {
            None => self.builder.build(&self.config, &discovered, &resolved),
            Some(changed) => {
                let changed = Changed::Backends(changed);
                self.builder
                    .build_changed(&self.config, &discovered, &resolved, changed)
            }
        };
        // What comes next is built on this table.
        self.changed = Some(HashSet::new());
        self.cost += on_cpu.elapsed();
        table
    }

    /// Puts `table` in service.
    pub(crate) fn publish(&mut self, table: RoutingTable) {
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

    /// Keeps this instance's fleet announcement current (if the fleet is on).
    pub(crate) fn announce(&self, config_generation: u64, started: u64) {
        if let Some(discovery) = &self.discovery {
            let announcement =
                crate::fleet::announcement(&self.config, &self.members, config_generation, started);
            discovery.announce(announcement);
        }
    }

    /// How the fleet announcement stands, when following ZooKeeper.
    pub(crate) fn announced(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<zkgate_discovery::announce::Announced>> {
        self.discovery.as_ref().map(Discovery::announced)
    }

    /// Stops following ZooKeeper (at shutdown).
    pub(crate) fn stop_discovery(&mut self) {
        self.discovery = None;
    }

    /// Starts, changes or stops discovery to match the configuration;
    /// `previous` is the one it replaced, if any.
    pub(crate) fn follow_zookeeper(&mut self, previous: Option<&Config>) {
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
        self.keep_members_of(&specs, previous);
        let state_dir = self.config.state_dir.as_ref();
        if self.last_known.as_ref().map(LastKnown::dir) != state_dir.map(|d| d.as_path()) {
            self.last_known = state_dir.map(|dir| LastKnown::new(dir.clone()));
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

    /// Forgets members of backends no longer watched, or watched
    /// differently, and their metrics; starts empty for new ones.
    fn keep_members_of(&mut self, specs: &[WatchSpec], previous: Option<&Config>) {
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
        for spec in specs {
            self.members.entry(spec.backend.to_string()).or_default();
        }
        for gone in previous.into_iter().flat_map(|c| &c.backends) {
            if !self.members.contains_key(&gone.name) {
                for family in [
                    &self.metrics.discovery_members,
                    &self.metrics.discovery_invalid_members,
                    &self.metrics.discovery_keeping_last,
                    &self.metrics.discovery_stale,
                    &self.metrics.discovery_held_members,
                    &self.metrics.discovery_applied_zxid,
                ] {
                    family.remove_label_values(&[&gone.name]).ok();
                }
            }
        }
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
async fn sleep_until_ms(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => tokio::time::sleep_until(zkgate_routing::clock::instant_of(at).into()).await,
        None => std::future::pending().await,
    }
}

/// The gauges of `backend`'s membership, `serving` of them in service.
fn export_members(metrics: &Metrics, backend: &str, members: &BackendMembers, serving: usize) {
    let labels = &[backend];
    let gauge = |vec: &prometheus::IntGaugeVec, value: i64| {
        vec.with_label_values(labels).set(value);
    };
    gauge(&metrics.discovery_members, serving as i64);
    gauge(&metrics.discovery_invalid_members, members.invalid() as i64);
    gauge(
        &metrics.discovery_keeping_last,
        i64::from(members.keeping_last()),
    );
    gauge(&metrics.discovery_stale, i64::from(members.stale()));
    gauge(&metrics.discovery_held_members, members.held().len() as i64);
    gauge(&metrics.discovery_applied_zxid, members.applied_zxid());
}
