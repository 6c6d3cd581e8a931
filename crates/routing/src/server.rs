//! Per-server live state that outlives any one routing table.
//!
//! A server is identified by (backend, address). Its counters are created the
//! first time a table contains it and handed to every later table that still
//! contains it, so a swap loses no counter and no in-flight request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};

use crate::ewma::PeakEwma;
use crate::outlier::Outlier;
use zkgate_config::AdminState;
use zkgate_metrics::Metrics;

/// Live, shared state of one server.
#[derive(Debug)]
pub struct ServerState {
    /// Where the server listens.
    pub address: SocketAddr,
    /// `address` as text, used in labels and logs.
    pub label: Arc<str>,
    /// Requests (http) or connections (tcp) in flight.
    pub active: IntGauge,
    /// Requests or connections sent, ever.
    pub requests: IntCounter,
    /// `zkgate_server_up`, set by table builds.
    pub up: IntGauge,
    /// `zkgate_server_weight`, set by table builds.
    pub weight: IntGauge,
    /// What `up` and `weight` were last set to (see [`ServerState::export`]).
    exported: AtomicU64,
    /// Peak-EWMA response time, for `balance: ewma`.
    pub latency: PeakEwma,
    /// What active health checks last concluded.
    pub health: HealthState,
    /// `zkgate_server_health_check_failures_total`.
    pub health_check_failures: IntCounter,
    /// Passive outlier detection.
    pub outlier: Outlier,
    /// When the server last became usable (first seen, or health back up),
    /// in [`crate::clock::now_ms`] time: where slow start ramps from.
    pub ready_since_ms: AtomicU64,
}

/// A server's health as active checks see it; shared by the checker (which
/// writes it) and every table (which reads it when built).
#[derive(Debug, Default)]
pub struct HealthState(AtomicU8);

/// See [`HealthState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet: takes no traffic until its first check passes.
    Unknown,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

impl HealthState {
    /// The current health.
    pub fn get(&self) -> Health {
        match self.0.load(Ordering::Acquire) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }

    /// Records a conclusion.
    pub fn set(&self, health: Health) {
        let value = match health {
            Health::Unknown => 0,
            Health::Up => 1,
            Health::Down => 2,
        };
        self.0.store(value, Ordering::Release);
    }
}

impl ServerState {
    /// Marks one request in flight until the returned guard drops.
    pub fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.requests.inc();
        self.active.inc();
        ActiveRequest(Arc::clone(self))
    }

    /// Sets the `up` and `weight` gauges, unless they hold these values
    /// already: each is a cache line of its own, and a change to a large
    /// backend, built at every change, leaves almost every server as it was.
    pub(crate) fn export(&self, up: bool, weight: u32) {
        // The top bit tells a value set from the initial "never set".
        let value = 1 << 63 | u64::from(up) << 32 | u64::from(weight);
        if self.exported.load(Ordering::Relaxed) != value {
            self.exported.store(value, Ordering::Relaxed);
            self.up.set(i64::from(up));
            self.weight.set(i64::from(weight));
        }
    }
}

/// Keeps a server's `active` count raised while alive.
#[derive(Debug)]
pub struct ActiveRequest(Arc<ServerState>);

impl ActiveRequest {
    /// The server this request went to.
    pub fn server(&self) -> &Arc<ServerState> {
        &self.0
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}

/// A fast, unkeyed hash for maps keyed by servers. Their keys come from the
/// configuration and ZooKeeper, which zkgate trusts, never from clients, so
/// a keyed hash (SipHash, the default) would only cost time: a 1,000-server
/// table build hashes every server several times, and a request looks up its
/// server's pooled connections.
pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// FxHash-style: one rotate-xor-multiply per word.
#[derive(Default)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u16(&mut self, word: u16) {
        self.write_u64(u64::from(word));
    }

    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One backend's server states, by address.
type BackendStates = HashMap<SocketAddr, Arc<ServerState>, FastHash>;

/// Owned by the control plane: the states of every server in the table in
/// service, by backend.
#[derive(Default)]
pub struct ServerRegistry {
    states: HashMap<Arc<str>, BackendStates>,
    /// Generations finished; servers of the very first one count as long
    /// ready (nothing to slow-start against when the process starts).
    generations: u64,
}

impl ServerRegistry {
    /// Starts a new generation: servers claimed during it are kept by `finish`.
    pub fn generation(&mut self, metrics: &Metrics) -> RegistryGeneration<'_> {
        let capacity = self.states.len();
        RegistryGeneration {
            registry: self,
            metrics: metrics.clone(),
            claimed: HashMap::with_capacity(capacity),
        }
    }
}

/// The servers of the table being built.
pub struct RegistryGeneration<'a> {
    registry: &'a mut ServerRegistry,
    metrics: Metrics,
    claimed: HashMap<Arc<str>, BackendStates>,
}

impl RegistryGeneration<'_> {
    /// Keeps every server of `backend` as it was: the backend is carried
    /// over unchanged into the new table.
    pub fn keep(&mut self, backend: &Arc<str>) {
        if let Some(states) = self.registry.states.remove(backend) {
            self.claimed.insert(Arc::clone(backend), states);
        }
    }

    /// Claims the servers of `backend` for this generation: the states of
    /// the last one are carried over as a whole (a backend of 10,000
    /// servers with one change costs one lookup per server, not a move).
    pub fn claims(&mut self, backend: &Arc<str>) -> BackendClaims<'_> {
        let previous = self.registry.states.remove(backend).unwrap_or_default();
        let first = self.registry.generations == 0;
        let claimed = self.claimed.entry(Arc::clone(backend)).or_default();
        // A backend is claimed once per generation; a second time only adds.
        if claimed.is_empty() {
            *claimed = previous;
        } else {
            for (address, state) in previous {
                claimed.entry(address).or_insert(state);
            }
        }
        BackendClaims {
            backend: Arc::clone(backend),
            claimed,
            unlisted: &mut self.registry.states,
            metrics: &self.metrics,
            first,
        }
    }

    /// Replaces the registry's contents with the claimed servers and drops the
    /// metric series of servers no table contains any more.
    pub fn finish(self) {
        for (backend, states) in &self.registry.states {
            for state in states.values() {
                let labels = &[&**backend, &*state.label];
                for family in [
                    &self.metrics.server_active_requests,
                    &self.metrics.server_up,
                    &self.metrics.server_weight,
                ] {
                    // A series that was never set is simply absent.
                    family.remove_label_values(labels).ok();
                }
                for family in [
                    &self.metrics.server_requests,
                    &self.metrics.server_health_check_failures,
                ] {
                    family.remove_label_values(labels).ok();
                }
            }
        }
        self.registry.states = self.claimed;
        self.registry.generations += 1;
    }
}

/// The servers of one backend being claimed (see [`RegistryGeneration::claims`]).
pub struct BackendClaims<'a> {
    backend: Arc<str>,
    claimed: &'a mut BackendStates,
    /// Where the states of servers no longer listed go, for `finish` to
    /// drop their metric series.
    unlisted: &'a mut HashMap<Arc<str>, BackendStates>,
    metrics: &'a Metrics,
    first: bool,
}

impl BackendClaims<'_> {
    /// The state of `address`, carried over or new.
    pub fn claim(&mut self, address: SocketAddr) -> Arc<ServerState> {
        if let Some(state) = self.claimed.get(&address) {
            return Arc::clone(state);
        }
        let state = new_state(self.metrics, &self.backend, address, self.first);
        self.claimed.insert(address, Arc::clone(&state));
        state
    }

    /// Whether `address` has no state yet (neither carried over nor claimed).
    pub fn is_new(&self, address: SocketAddr) -> bool {
        !self.claimed.contains_key(&address)
    }

    /// Lets go of the servers at `addresses`, no longer listed.
    pub fn release(&mut self, addresses: &[SocketAddr]) {
        if addresses.is_empty() {
            return;
        }
        let gone: BackendStates = addresses
            .iter()
            .filter_map(|address| Some((*address, self.claimed.remove(address)?)))
            .collect();
        self.unlisted.insert(Arc::clone(&self.backend), gone);
    }

    /// Lets go of the servers not in `listed` (the addresses claimed).
    pub fn release_unlisted(self, listed: &HashSet<SocketAddr, FastHash>) {
        if self.claimed.len() <= listed.len() {
            return;
        }
        let mut gone = BackendStates::default();
        self.claimed.retain(|address, state| {
            let keep = listed.contains(address);
            if !keep {
                gone.insert(*address, Arc::clone(state));
            }
            keep
        });
        self.unlisted.insert(self.backend, gone);
    }
}

/// A server seen for the first time; `first`: in the process's first table.
fn new_state(
    metrics: &Metrics,
    backend: &str,
    address: SocketAddr,
    first: bool,
) -> Arc<ServerState> {
    let label: Arc<str> = address.to_string().into();
    let labels = &[backend, &*label];
    Arc::new(ServerState {
        address,
        label: Arc::clone(&label),
        active: metrics.server_active_requests.with_label_values(labels),
        requests: metrics.server_requests.with_label_values(labels),
        up: metrics.server_up.with_label_values(labels),
        weight: metrics.server_weight.with_label_values(labels),
        latency: PeakEwma::default(),
        health: HealthState::default(),
        health_check_failures: metrics
            .server_health_check_failures
            .with_label_values(labels),
        outlier: Outlier::default(),
        ready_since_ms: AtomicU64::new(if first { 0 } else { crate::clock::now_ms() }),
        exported: AtomicU64::new(0),
    })
}

/// Where a server came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSource {
    /// The configuration's `servers:` list.
    Static,
    /// A child znode of the backend's ZooKeeper path.
    ZooKeeper,
}

/// One server as a routing table sees it.
pub struct Server {
    /// Live state shared across tables.
    pub state: Arc<ServerState>,
    /// Weight 0–256.
    pub weight: u32,
    /// ready / drain / maint.
    pub admin: AdminState,
    /// Configuration or ZooKeeper.
    pub source: ServerSource,
    /// The zone it runs in, if known.
    pub zone: Option<Arc<str>>,
}

impl Server {
    /// A server as the configuration or ZooKeeper lists it, with its state.
    pub(crate) fn listed(
        config: &zkgate_config::ServerConfig,
        source: ServerSource,
        state: Arc<ServerState>,
    ) -> Server {
        Server {
            state,
            weight: config.weight,
            admin: config.state,
            source,
            zone: config.zone.clone(),
        }
    }

    /// Where to connect.
    pub fn address(&self) -> SocketAddr {
        self.state.address
    }
}
