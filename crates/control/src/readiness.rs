//! When this process is ready, and how long it leaves new connections in
//! the kernel's queue before that: while the process whose sockets it took
//! still serves, or, on a fresh start, briefly for its ZooKeeper-backed
//! backends' first listing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use zkgate_admin::{DiscoveryFacts, HeldMember, ZooKeeperFacts};

use crate::publisher::TablePublisher;
use crate::warming::Warming;

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

impl Hold {
    /// Whether the hold is over: this process is `ready`, or the previous
    /// process is gone (nobody else accepts on its sockets then), or, on a
    /// fresh start, ZooKeeper is not answering or too slow. Says why in the
    /// log when it is.
    pub(crate) fn over(self, ready: bool, zookeeper_connected: bool) -> bool {
        match self {
            Hold::Predecessor(pid) => {
                let gone = rustix::process::Pid::from_raw(pid as i32).is_none_or(|pid| {
                    rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
                });
                if ready {
                    info!("ready: accepting");
                } else if gone {
                    warn!(pid, "the previous process is gone: accepting before ready");
                }
                ready || gone
            }
            Hold::FirstListing(since) => {
                let waited = since.elapsed();
                let limit = if zookeeper_connected {
                    FIRST_LISTING_MAX
                } else {
                    FIRST_LISTING_UNANSWERED
                };
                let waited_ms = waited.as_millis() as u64;
                if ready {
                    info!(waited_ms, "ZooKeeper-backed backends synced: accepting");
                } else if waited >= limit {
                    warn!(
                        waited_ms,
                        "accepting before the ZooKeeper-backed backends have synced; they answer 503 until they do"
                    );
                }
                ready || waited >= limit
            }
        }
    }

    /// Logs what the hold waits for, as it begins.
    pub(crate) fn announce(self) {
        match self {
            Hold::Predecessor(pid) => info!(
                pid,
                "accepting once ready; the previous process serves meanwhile"
            ),
            Hold::FirstListing(_) => info!(
                "new connections wait for the ZooKeeper-backed backends' first listing (at most {FIRST_LISTING_UNANSWERED:?} for ZooKeeper to answer, {FIRST_LISTING_MAX:?} in all)"
            ),
        }
    }
}

/// Whether zkgate is ready, and what the status page shows of ZooKeeper
/// and discovery.
pub(crate) struct Readiness {
    /// Why not ready; empty when ready.
    pub not_ready: Vec<String>,
    /// What a ready zkgate serves that is not what ZooKeeper says yet.
    pub notes: Vec<String>,
    pub zookeeper: Option<ZooKeeperFacts>,
    pub discovery: BTreeMap<String, DiscoveryFacts>,
}

impl Readiness {
    /// Ready once every ZooKeeper-backed backend has synced at least once;
    /// a backend a reload is `warming` up for is not served yet, so not
    /// waited for.
    pub(crate) fn assess(publisher: &TablePublisher, warming: Option<&Warming>) -> Self {
        let warming = |name: &str| warming.is_some_and(|w| w.awaits(name));
        // A backend serving its last-known members (`state_dir`) is ready:
        // it serves what it served before, and says so.
        let mut not_ready: Vec<String> = publisher
            .members()
            .filter(|(name, m)| !m.synced && !m.stale() && !warming(name))
            .map(|(name, _)| format!("backend {name} has not synced from ZooKeeper yet"))
            .collect();
        not_ready.sort();
        let mut notes: Vec<String> = publisher
            .members()
            .filter(|(_, m)| m.stale())
            .map(|(name, _)| {
                format!("backend {name} serves its last-known members from state_dir until ZooKeeper answers")
            })
            .collect();
        notes.sort();
        let config = publisher.config();
        let zookeeper = config.zookeeper.as_ref().map(|zk| ZooKeeperFacts {
            connect: zk.connect.clone(),
            connected: false,
            session_expirations: 0,
        });
        let discovery = config
            .backends
            .iter()
            .filter_map(|backend| {
                let watch = backend.discovery.as_ref()?;
                let members = publisher.members_of(&backend.name)?;
                let facts = DiscoveryFacts {
                    path: watch.path.clone(),
                    format: watch.format.as_str(),
                    synced: members.synced,
                    members: publisher
                        .metrics()
                        .discovery_members
                        .with_label_values(&[&backend.name])
                        .get() as usize,
                    invalid_members: members.invalid(),
                    keeping_last: members.keeping_last(),
                    stale: members.stale(),
                    held: members
                        .held()
                        .iter()
                        .map(|(name, held)| HeldMember {
                            name: name.clone(),
                            address: held.member.server.address.to_string(),
                            reason: held.why.as_str(),
                            since_unix: held.since_unix,
                        })
                        .collect(),
                };
                Some((backend.name.clone(), facts))
            })
            .collect();
        Readiness {
            not_ready,
            notes,
            zookeeper,
            discovery,
        }
    }

    /// Whether zkgate is ready.
    pub(crate) fn ready(&self) -> bool {
        self.not_ready.is_empty()
    }
}
