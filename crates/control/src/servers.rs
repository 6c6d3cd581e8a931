//! Server changes: membership from ZooKeeper, health, ejections and slow
//! starts, merged into as few table builds as keep up with them.

use std::time::{Duration, Instant};

use tracing::{debug, info};
use zkgate_config::Config;
use zkgate_discovery::{Discovery, Update, WatchSpec};
use zkgate_health::HealthEvent;
use zkgate_routing::{Discovered, RoutingTable};

use crate::ControlPlane;

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

/// An input that changes which servers take traffic.
pub(crate) enum Input {
    Membership(Update),
    Health(HealthEvent),
    /// The table went stale by itself: an ejection began or ended, a slow start stepped.
    Refresh,
}

impl ControlPlane {
    /// Applies an input and every other one already queued, then builds
    /// once: a burst of a thousand changes costs a few builds, a single
    /// change no added delay.
    pub(crate) async fn servers_changed(&mut self, first: Input) {
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
        if self.ready && self.hold.is_some() {
            // Held connections need not wait for the next check.
            self.end_hold_if_due().await;
        }
    }

    /// Starts, changes or stops discovery to match `self.config`.
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

    pub(crate) async fn build(&mut self, config: &Config) -> RoutingTable {
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
}
