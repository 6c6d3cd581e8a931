//! What the control plane tells the admin endpoints, beside the routing
//! table itself: readiness, configuration history, ZooKeeper and discovery.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::Serialize;

/// The control plane's published facts; written by it, read by `/ready`,
/// `/api/v1/status` and `/stats`.
#[derive(Default)]
pub struct Report {
    inner: RwLock<Facts>,
}

/// A snapshot of the facts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// Why zkgate is not ready; empty when it is.
    pub not_ready: Vec<String>,
    /// What a ready zkgate serves that ZooKeeper has not confirmed yet
    /// (last-known members from `state_dir`).
    pub ready_notes: Vec<String>,
    /// Configurations applied (1 after start, +1 per successful reload).
    pub config_generation: u64,
    /// Where the configuration comes from.
    pub config_source: String,
    /// The last reload, if any.
    pub last_reload: Option<Reload>,
    /// ZooKeeper, when configured.
    pub zookeeper: Option<ZooKeeperFacts>,
    /// Per ZooKeeper-backed backend.
    pub discovery: BTreeMap<String, DiscoveryFacts>,
}

/// The outcome of a reload.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// `ok` or `error`.
    pub result: &'static str,
    /// Why it was refused.
    pub error: Option<String>,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
}

/// The ZooKeeper session as the control plane sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ZooKeeperFacts {
    /// The ensemble.
    pub connect: String,
    /// Whether the session is connected now.
    pub connected: bool,
    /// Sessions that expired.
    pub session_expirations: u64,
}

/// One ZooKeeper-backed backend's membership.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryFacts {
    /// The watched znode.
    pub path: String,
    /// The member format.
    pub format: &'static str,
    /// A full listing arrived at least once.
    pub synced: bool,
    /// Members in service.
    pub members: usize,
    /// Children skipped because they do not parse.
    pub invalid_members: usize,
    /// ZooKeeper lists none and the last set is kept.
    pub keeping_last: bool,
    /// The members are the last-known ones from `state_dir`, not yet
    /// confirmed by ZooKeeper.
    pub stale: bool,
    /// Members ZooKeeper removed that the mass-removal guard keeps serving.
    pub held: Vec<HeldMember>,
}

/// A member held in service by the mass-removal guard (`protect`).
#[derive(Debug, Clone, Serialize)]
pub struct HeldMember {
    /// Its child znode.
    pub name: String,
    /// The server that keeps serving.
    pub address: String,
    /// Why ZooKeeper no longer lists it as ready.
    pub reason: &'static str,
    /// Held since (seconds since the Unix epoch).
    pub since_unix: u64,
}

impl Report {
    /// A copy of the current facts.
    pub fn facts(&self) -> Facts {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The configuration generation, without copying the rest.
    pub fn config_generation(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config_generation
    }

    /// Changes the facts.
    pub fn update(&self, change: impl FnOnce(&mut Facts)) {
        change(&mut self.inner.write().unwrap_or_else(|e| e.into_inner()));
    }
}
