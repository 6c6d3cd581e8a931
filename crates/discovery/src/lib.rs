//! zkgate's ZooKeeper discovery. One session per process; for each backend
//! with a `zookeeper:` block, a persistent recursive watch on its path. Every
//! change is pushed to the control plane as an [`Update`]: a `Reset` with the
//! whole member list after each (re)sync — never a diff on top of state that
//! may have missed events across a reconnect — then `Upsert`/`Remove` per
//! changed child.

pub mod announce;
mod config_node;
pub mod directives;
pub mod format;
pub mod ops;
mod reader;
mod resync;
mod session;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zkgate_config::{DiscoveryConfig, ServerConfig, ZookeeperConfig};
use zkgate_metrics::Metrics;

pub use config_node::{watch_config_node, NodeText};
pub use session::{connect, connect_with};

/// One backend to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The backend's name.
    pub backend: Arc<str>,
    /// Its `zookeeper:` block.
    pub config: DiscoveryConfig,
}

/// A child znode decoded: a server, or why its data was refused.
pub type Decoded = Result<ServerConfig, String>;

/// A change in one backend's membership.
#[derive(Debug)]
pub struct Update {
    /// The backend.
    pub backend: Arc<str>,
    /// What changed.
    pub change: Change,
}

/// A child znode as read: its name, what it decodes to, and the zxid of
/// its last change (its `mzxid`).
#[derive(Debug)]
pub struct Listed {
    /// The child's name.
    pub name: String,
    /// A server, or why its data was refused.
    pub decoded: Decoded,
    /// The ZooKeeper transaction that last wrote it.
    pub zxid: i64,
}

/// What changed, by child znode name.
#[derive(Debug)]
pub enum Change {
    /// The complete member list, after the first sync and every resync.
    Reset(Vec<Listed>),
    /// A child was created or its data changed.
    Upsert(Listed),
    /// A child was deleted (or is no longer a member).
    Remove(String),
    /// The directives on the backend path, read at every (re)sync, just
    /// before its `Reset`.
    Directives(directives::Directives),
    /// Every change of the backend up to this zxid has been sent.
    CaughtUp(i64),
}

/// How long to wait before retrying a failed ZooKeeper read.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// `wait` spread over half to one and a half of itself: a fleet refused at
/// the same moment does not come back at the same moment.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.5 + fastrand::f64())
}

/// The running discovery; stops when dropped.
pub struct Discovery {
    specs: watch::Sender<Vec<WatchSpec>>,
    announcement: watch::Sender<Option<announce::Announcement>>,
    announced: watch::Receiver<announce::Announced>,
    task: JoinHandle<()>,
}

impl Discovery {
    /// Connects to `zookeeper` (retrying with backoff for as long as it
    /// takes) and watches `specs`, sending updates on `updates`.
    pub fn start(
        zookeeper: ZookeeperConfig,
        specs: Vec<WatchSpec>,
        updates: mpsc::Sender<Update>,
        metrics: Metrics,
    ) -> Self {
        let (specs_tx, specs_rx) = watch::channel(specs);
        let (announcement, wanted) = watch::channel(None);
        let (state, announced) = watch::channel(announce::Announced::Pending);
        let announcing = session::Announcing { wanted, state };
        let task = tokio::spawn(session::run(
            zookeeper, specs_rx, updates, metrics, announcing,
        ));
        Discovery {
            specs: specs_tx,
            announcement,
            announced,
            task,
        }
    }

    /// Keeps `announcement` announced to the fleet (`None`: nothing).
    pub fn announce(&self, announcement: Option<announce::Announcement>) {
        self.announcement.send_if_modified(|current| {
            let changed = *current != announcement;
            *current = announcement;
            changed
        });
    }

    /// How the announcement stands, as it changes.
    pub fn announced(&self) -> watch::Receiver<announce::Announced> {
        self.announced.clone()
    }

    /// Replaces the set of watched backends (after a reload).
    pub fn set_specs(&self, specs: Vec<WatchSpec>) {
        self.specs.send_if_modified(|current| {
            let changed = *current != specs;
            *current = specs;
            changed
        });
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}
