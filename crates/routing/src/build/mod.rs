//! Config (+ resolved addresses) → `RoutingTable`. Runs in the control plane,
//! off the data path; carries per-server state over from the previous table.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

mod frontend;
mod servers;
use frontend::build_frontend;
use servers::servers_of;
use zkgate_config::{AdminState, BackendConfig, Config, ServerAddress, ServerConfig};

use crate::backend::Backend;
use crate::balance::Balancer;
use crate::clock;
use crate::server::Server;
use crate::server::{Health, RegistryGeneration, ServerRegistry};
use crate::table::{Frontend, FrontendId, RoutingTable};
use zkgate_metrics::{BackendMetrics, Metrics};

use crate::locality::{Sides, Zoned};
use zkgate_tls::{ClientTls, TlsMaterial};

/// Host names already resolved by the control plane (IP literals are read
/// directly and need not be there).
pub type Resolved = HashMap<ServerAddress, SocketAddr>;

/// Servers found in ZooKeeper, by backend name, as the control plane decided
/// to use them (after `on_empty`). Borrowed from the control plane's
/// members: a build only reads them, and copying them all at every
/// change cost two thirds as much as the build itself.
pub type Discovered<'a> = HashMap<String, Vec<&'a ServerConfig>>;

/// Builds successive routing tables; owned by the control plane.
pub struct TableBuilder {
    metrics: Metrics,
    servers: ServerRegistry,
    frontend_ids: HashMap<String, FrontendId>,
    /// The frontends of the last table built, and those retired (see
    /// [`RoutingTable::retired`]).
    served: Vec<Arc<Frontend>>,
    retired: Vec<Arc<Frontend>>,
    backend_names: HashSet<Arc<str>>,
    generation: u64,
    tls: TlsMaterial,
    accepting: bool,
    /// The backends of the last table, by name, for `build_changed`.
    previous: HashMap<String, Built>,
}

impl TableBuilder {
    /// A builder whose first table has generation 1.
    pub fn new(metrics: Metrics) -> Self {
        TableBuilder {
            metrics,
            servers: ServerRegistry::default(),
            frontend_ids: HashMap::new(),
            served: Vec::new(),
            retired: Vec::new(),
            backend_names: HashSet::new(),
            generation: 0,
            tls: TlsMaterial::default(),
            accepting: true,
            previous: HashMap::new(),
        }
    }

    /// Whether the tables built from now on let listeners accept (see
    /// [`RoutingTable::accepting`]).
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// The TLS material of the configuration being built from; set when a
    /// configuration is put in service (files are read then, not per build).
    pub fn set_tls(&mut self, tls: TlsMaterial) {
        self.tls = tls;
    }

    /// The stable id of frontend `name` (assigned on first sight, never reused).
    pub fn frontend_id(&mut self, name: &str) -> FrontendId {
        let next = FrontendId(self.frontend_ids.len() as u32);
        *self.frontend_ids.entry(name.to_owned()).or_insert(next)
    }

    /// Builds the next table. Servers whose host name is missing from
    /// `resolved` are left out (and logged); the rest of the backend still serves.
    pub fn build(
        &mut self,
        config: &Config,
        discovered: &Discovered<'_>,
        resolved: &Resolved,
    ) -> RoutingTable {
        self.build_changed(config, discovered, resolved, Changed::All)
    }

    /// Builds the next table where only the backends `changed` names may
    /// differ from the last one: the others (same configuration, TLS and
    /// zone) are carried over as they were, so a change to one backend
    /// costs that backend's build, not every backend's. `discovered` and
    /// `resolved` need only hold what the changed backends use.
    pub fn build_changed(
        &mut self,
        config: &Config,
        discovered: &Discovered<'_>,
        resolved: &Resolved,
        changed: Changed<'_>,
    ) -> RoutingTable {
        let started = Instant::now();
        self.generation += 1;
        let generation = self.generation;
        let mut servers = self.servers.generation(&self.metrics);
        let mut previous = std::mem::take(&mut self.previous);
        let mut kept = HashMap::with_capacity(config.backends.len());
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|b| {
                let tls = self.tls.backend(&b.name).cloned();
                let zone = config.zone.clone();
                let prior = previous.remove(b.name.as_str());
                let backend = match prior {
                    Some(built)
                        if changed.keeps(&b.name)
                            && built.same_as(b, tls.as_ref(), zone.as_ref()) =>
                    {
                        servers.keep(&built.backend.name);
                        built.backend
                    }
                    prior => {
                        let found = discovered.get(&b.name).map_or(&[][..], Vec::as_slice);
                        let shared = Shared {
                            resolved,
                            metrics: &self.metrics,
                            generation,
                            zone: config.zone.as_deref(),
                        };
                        // The last table's servers of this backend, in order:
                        // where the new list follows them, their states are
                        // taken from there.
                        let before = prior.as_ref().map_or(&[][..], |p| &p.backend.servers[..]);
                        let built =
                            build_backend(b, tls.clone(), found, before, &mut servers, &shared);
                        Arc::new(built)
                    }
                };
                let built = Built {
                    backend: Arc::clone(&backend),
                    config: b.clone(),
                    tls,
                    zone,
                };
                kept.insert(b.name.clone(), built);
                backend
            })
            .collect();
        self.previous = kept;
        servers.finish();

        let by_name: HashMap<&str, &Arc<Backend>> =
            backends.iter().map(|b| (&*b.name, b)).collect();
        let mut frontends: Vec<Option<Arc<Frontend>>> = Vec::new();
        for fe in &config.frontends {
            let id = self.frontend_id(&fe.name);
            let index = id.0 as usize;
            if frontends.len() <= index {
                frontends.resize(index + 1, None);
            }
            let tls = self.tls.frontend(&fe.name).cloned();
            frontends[index] = Some(Arc::new(build_frontend(
                id,
                fe,
                tls,
                &by_name,
                &self.metrics,
            )));
        }

        // A frontend gone from the configuration stays, frozen, for the
        // connections it accepted, until they have all closed.
        let live = |id: FrontendId| frontends.get(id.0 as usize).is_some_and(Option::is_some);
        let open = |fe: &Arc<Frontend>| fe.metrics.active_connections.get();
        let mut retired: Vec<Arc<Frontend>> = Vec::new();
        for fe in self.served.drain(..) {
            if !live(fe.id) && open(&fe) > 0 {
                info!(frontend = %fe.name, connections = open(&fe), "frontend removed: its open connections close after their next request");
                retired.push(fe);
            }
        }
        retired.extend(
            self.retired
                .drain(..)
                .filter(|fe| !live(fe.id) && open(fe) > 0),
        );
        self.served = frontends.iter().flatten().cloned().collect();
        self.retired.clone_from(&retired);

        let names: HashSet<Arc<str>> = backends.iter().map(|b| Arc::clone(&b.name)).collect();
        for gone in self.backend_names.difference(&names) {
            for state in [AdminState::Ready, AdminState::Drain, AdminState::Maint] {
                self.metrics
                    .backend_servers
                    .remove_label_values(&[gone, state.as_str()])
                    .ok();
            }
        }
        self.backend_names = names;

        self.metrics
            .table_build_seconds
            .observe(started.elapsed().as_secs_f64());
        RoutingTable::new(generation, frontends, backends, retired, self.accepting)
    }
}

/// Which backends a build must build anew.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// Every one (a reload, a timed refresh, the first table).
    All,
    /// Only these; the others are carried over if their configuration is
    /// the same.
    Backends(&'a HashSet<String>),
}

impl Changed<'_> {
    /// Whether `backend` may be carried over.
    fn keeps(&self, backend: &str) -> bool {
        match self {
            Changed::All => false,
            Changed::Backends(changed) => !changed.contains(backend),
        }
    }
}

/// A backend of the last table, with what it was built from.
struct Built {
    backend: Arc<Backend>,
    config: BackendConfig,
    tls: Option<Arc<ClientTls>>,
    zone: Option<Arc<str>>,
}

impl Built {
    /// Whether it was built from the same configuration, TLS and zone.
    fn same_as(
        &self,
        config: &BackendConfig,
        tls: Option<&Arc<ClientTls>>,
        zone: Option<&Arc<str>>,
    ) -> bool {
        let same_tls = match (&self.tls, tls) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.config == *config && same_tls && self.zone.as_ref() == zone
    }
}

/// What every backend of one build shares.
struct Shared<'a> {
    resolved: &'a Resolved,
    metrics: &'a Metrics,
    generation: u64,
    /// This instance's zone, for `locality`.
    zone: Option<&'a str>,
}

fn build_backend(
    config: &BackendConfig,
    tls: Option<Arc<ClientTls>>,
    discovered: &[&ServerConfig],
    previous: &[Server],
    registry: &mut RegistryGeneration<'_>,
    shared: &Shared<'_>,
) -> Backend {
    let Shared {
        resolved,
        metrics,
        generation,
        zone,
    } = *shared;
    let name: Arc<str> = config.name.as_str().into();
    let servers = servers_of(&name, config, discovered, resolved, previous, registry);
    let now = clock::now_ms();
    let traffic = Eligibility::of(config, &servers, now);
    export_states(&name, &servers, &traffic, metrics);

    // Only servers taking new traffic are in the balancer; drain and maint
    // (and failing ones) finish what they have.
    // An ejected server comes back when its ejection ends: rebuild then.
    let mut refresh_at_ms: Option<u64> = traffic.first_return_ms;
    let mut refresh = |at: u64| refresh_at_ms = Some(refresh_at_ms.map_or(at, |r| r.min(at)));
    // Sized once: collecting through a filter would grow it step by step.
    let mut eligible: Vec<(u32, u32, &str)> = Vec::with_capacity(servers.len());
    for (i, s) in servers.iter().enumerate().filter(|(_, s)| traffic.takes(s)) {
        let (weight, ramping) = slow_start_weight(s, config.slow_start, now);
        if ramping {
            refresh(
                now + (config.slow_start.as_millis() as u64 / SLOW_START_STEPS).max(MIN_REFRESH_MS),
            );
        }
        eligible.push((i as u32, weight, &*s.state.label));
    }
    // Spread where each generation's rotation starts (Fibonacci hashing).
    let start = generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize;
    let balancer = Balancer::new(&config.balance, config.hash_method, &eligible, start);
    let zoned = zone.zip(config.locality.as_ref()).map(|(zone, locality)| {
        let sides = Sides {
            balance: &config.balance,
            method: config.hash_method,
            eligible: &eligible,
            start,
        };
        let requests = ["local", "other"].map(|side| {
            metrics
                .backend_zone_requests
                .with_label_values(&[&name, side])
        });
        Zoned::new(locality, zone, &servers, sides, requests)
    });
    let eligible: Box<[u32]> = eligible.iter().map(|&(i, _, _)| i).collect();
    let sticky_ids = config
        .sticky_cookie
        .as_ref()
        .map(|_| {
            servers
                .iter()
                .enumerate()
                .map(|(i, s)| (crate::backend::sticky_id(&s.state.label), i as u32))
                .collect()
        })
        .unwrap_or_default();
    Backend {
        metrics: BackendMetrics::resolve(metrics, &name),
        name,
        mode: config.mode,
        timeouts: config.timeouts,
        retries: config.retries,
        servers: servers.into_boxed_slice(),
        protocol: config.protocol,
        send_proxy: config.send_proxy,
        tls,
        balance: config.balance.clone(),
        balancer,
        zoned,
        eligible,
        retry_cursor: AtomicUsize::new(start),
        health_checked: config.health_check.is_some(),
        outlier: config.outlier_detection,
        panic: traffic.panic,
        sticky_cookie: config.sticky_cookie.as_deref().map(Into::into),
        sticky_ids,
        max_connections_per_server: config.max_connections_per_server,
        refresh_at_ms,
    }
}

/// Each server's up and weight gauges, and the backend's servers by state.
fn export_states(name: &str, servers: &[Server], traffic: &Eligibility, metrics: &Metrics) {
    let mut by_state = [0i64; 3];
    for server in servers {
        server.state.export(traffic.takes(server), server.weight);
        by_state[server.admin as usize] += 1;
    }
    for state in [AdminState::Ready, AdminState::Drain, AdminState::Maint] {
        metrics
            .backend_servers
            .with_label_values(&[name, state.as_str()])
            .set(by_state[state as usize]);
    }
}

/// Slow start moves a ramping server's weight this many times.
const SLOW_START_STEPS: u64 = 10;
/// Never rebuild for slow start more often than this.
const MIN_REFRESH_MS: u64 = 100;

/// The weight a server gets now, and whether it is still ramping up.
fn slow_start_weight(server: &Server, slow_start: std::time::Duration, now: u64) -> (u32, bool) {
    if slow_start.is_zero() {
        return (server.weight, false);
    }
    let since = server
        .state
        .ready_since_ms
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(server.state.outlier.ejected_until_ms());
    if since == 0 {
        // In service since the process started: nothing to ramp.
        return (server.weight, false);
    }
    let elapsed = now.saturating_sub(since);
    let ramp = slow_start.as_millis() as u64;
    if elapsed >= ramp {
        return (server.weight, false);
    }
    let weight = (u64::from(server.weight) * elapsed / ramp).max(1) as u32;
    (weight, true)
}

/// Which servers of a backend take new traffic in this table.
struct Eligibility {
    checked: bool,
    now: u64,
    /// Too few usable servers: send traffic to every ready one.
    panic: bool,
    /// When the first ejected server's ejection ends, if one is ejected.
    first_return_ms: Option<u64>,
}

impl Eligibility {
    fn of(config: &BackendConfig, servers: &[Server], now: u64) -> Self {
        let mut traffic = Eligibility {
            checked: config.health_check.is_some(),
            now,
            panic: false,
            first_return_ms: None,
        };
        // One pass: a large backend's server states are far apart in memory.
        let (mut candidates, mut usable) = (0, 0);
        for server in servers {
            let until = server.state.outlier.ejected_until_ms();
            if until > now {
                traffic.first_return_ms =
                    Some(traffic.first_return_ms.map_or(until, |r| r.min(until)));
            }
            if candidate(server) {
                candidates += 1;
                usable += usize::from(traffic.usable(server));
            }
        }
        let threshold = config.panic_threshold as usize;
        traffic.panic = threshold > 0 && candidates > 0 && usable * 100 < threshold * candidates;
        if traffic.panic {
            debug!(backend = %config.name, usable, candidates, "panic: too few usable servers, routing to all of them");
        }
        traffic
    }

    /// Passing its checks (when checked) and not ejected.
    fn usable(&self, server: &Server) -> bool {
        (!self.checked || server.state.health.get() == Health::Up)
            && !server.state.outlier.is_ejected(self.now)
    }

    fn takes(&self, server: &Server) -> bool {
        candidate(server) && (self.panic || self.usable(server))
    }
}

/// Ready with a weight: would take traffic if healthy.
fn candidate(server: &Server) -> bool {
    server.admin == AdminState::Ready && server.weight > 0
}
