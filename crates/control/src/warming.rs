//! A reload's configuration waiting for the ZooKeeper-backed backends it
//! adds (Envoy's cluster warming): the running table serves meanwhile, so
//! no route to such a backend answers 503 for want of servers ZooKeeper has.

use std::time::{Duration, Instant};

use zkgate_config::Config;

use crate::listeners::Bound;
use crate::publisher::TablePublisher;

/// The longest a reload waits for the ZooKeeper-backed backends it adds to
/// sync before it goes into service without their servers.
pub(crate) const WARM_UP: Duration = Duration::from_secs(5);

/// A valid configuration, its new listeners bound, waiting for the first
/// listing of the ZooKeeper-backed backends it adds or points elsewhere.
pub(crate) struct Warming {
    pub bound: Bound,
    /// The backends whose first listing is awaited.
    awaiting: Vec<String>,
    until: Instant,
}

impl Warming {
    /// Waits for the backends `publisher` (now building from the new
    /// configuration) watches anew compared with `previous`, and have not
    /// synced. Only those: one that has not synced for another reason (say,
    /// a path it may not read) is no reason to hold back every reload; and
    /// nothing is waited for from an ensemble known to be away.
    pub(crate) fn begin(bound: Bound, publisher: &TablePublisher, previous: &Config) -> Self {
        let config = publisher.config();
        let zookeeper_away =
            previous.zookeeper == config.zookeeper && !publisher.zookeeper_connected();
        let watch = |config: &Config, name: &str| {
            config
                .backend(name)
                .and_then(|backend| backend.discovery.clone())
        };
        let awaiting = if zookeeper_away {
            Vec::new()
        } else {
            publisher
                .members()
                .filter(|(name, members)| {
                    !members.synced && watch(previous, name) != watch(config, name)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        Warming {
            bound,
            awaiting,
            until: Instant::now() + WARM_UP,
        }
    }

    /// When the configuration goes into service even if not synced.
    pub(crate) fn until(&self) -> Instant {
        self.until
    }

    /// Whether `backend`'s first listing is being waited for.
    pub(crate) fn awaits(&self, backend: &str) -> bool {
        self.awaiting.iter().any(|name| name == backend)
    }

    /// The backends still awaited.
    pub(crate) fn unsynced<'a>(&'a self, publisher: &TablePublisher) -> Vec<&'a String> {
        self.awaiting
            .iter()
            .filter(|name| publisher.members_of(name).is_some_and(|m| !m.synced))
            .collect()
    }

    /// The backends awaited when it began.
    pub(crate) fn awaiting(&self) -> &[String] {
        &self.awaiting
    }
}
