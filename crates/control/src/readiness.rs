//! When this process is ready, and how long it leaves new connections in
//! the kernel's queue before that: while the process whose sockets it took
//! still serves, or, on a fresh start, briefly for its ZooKeeper-backed
//! backends' first listing.

use std::time::{Duration, Instant};

use tracing::{info, warn};
use zkgate_admin::{DiscoveryFacts, ZooKeeperFacts};

use crate::{announce_to_systemd, ControlPlane};

/// On a fresh start, how long new connections wait for ZooKeeper to answer
/// at all: with ZooKeeper away, static servers serve after this.
pub(crate) const FIRST_LISTING_UNANSWERED: Duration = Duration::from_millis(250);
/// On a fresh start with ZooKeeper answering, the longest new connections
/// wait for the ZooKeeper-backed backends' first listing.
pub(crate) const FIRST_LISTING_MAX: Duration = Duration::from_secs(5);

/// Why this process does not accept new connections yet (they wait in the
/// kernel's queue, not refused).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hold {
    /// It took its sockets from this running process, which accepts on
    /// them until this one is ready (or gone).
    Predecessor(u32),
    /// A fresh start: ZooKeeper-backed backends have no members before their
    /// first listing, and a request for one would be answered 503 (Envoy
    /// likewise waits for its clusters before its listeners take traffic).
    FirstListing(Instant),
}

impl ControlPlane {
    /// Starts accepting once the hold is over: ready, or the previous
    /// process gone (nobody else accepts on its sockets then), or, on a
    /// fresh start, ZooKeeper not answering or too slow; and once ready, lets the
    /// previous process finish.
    pub(crate) async fn end_hold_if_due(&mut self) {
        let Some(hold) = self.hold else { return };
        if self.warming.is_some() {
            // Its table goes into service first; checked again shortly.
            return;
        }
        match hold {
            Hold::Predecessor(pid) => {
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
            }
            Hold::FirstListing(since) => {
                let waited = since.elapsed();
                let answering = self.metrics.zookeeper_connected.get() == 1;
                let limit = if answering {
                    FIRST_LISTING_MAX
                } else {
                    FIRST_LISTING_UNANSWERED
                };
                if !self.ready && waited < limit {
                    return;
                }
                let waited_ms = waited.as_millis() as u64;
                if self.ready {
                    info!(waited_ms, "ZooKeeper-backed backends synced: accepting");
                } else {
                    warn!(
                        waited_ms,
                        "accepting before the ZooKeeper-backed backends have synced; they answer 503 until they do"
                    );
                }
            }
        }
        self.hold = None;
        self.builder.set_accepting(true);
        let config = self.config.clone();
        let table = self.build(&config).await;
        self.publish(table);
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
    pub(crate) fn update_readiness(&mut self) {
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
        if self.ready && self.hold.is_none() {
            // Everything the previous process served, this one serves too.
            self.succession.ready();
        }
        self.report.update(|facts| {
            facts.not_ready = unsynced;
            facts.zookeeper = zookeeper;
            facts.discovery = discovery;
        });
    }
}
