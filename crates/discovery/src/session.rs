//! The ZooKeeper session: connect with backoff, keep the backend watchers
//! running while it lives, and start over with a new session when it expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use zkgate_config::{DiscoveryConfig, ZookeeperConfig};
use zkgate_metrics::Metrics;
use zookeeper_client::{Client, SessionState};

use crate::announce::{self, Announced, Announcement};
use crate::reader::Reader;
use crate::resync::{self, KnownChildren};
use crate::watcher::{self, Shared};
use crate::{jittered, Update, WatchSpec};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// How often the session looks for a watcher that ended.
const WATCHER_CHECK: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Opens a session to `zookeeper` (digest auth from its `password_env`, and chroot applied).
pub async fn connect(zookeeper: &ZookeeperConfig, timeout: Duration) -> Result<Client, String> {
    let credentials = zookeeper
        .auth
        .as_ref()
        .map(|auth| auth.credentials())
        .transpose()?;
    connect_with(zookeeper, credentials.as_deref(), timeout).await
}

/// Opens a session to `zookeeper` with explicit digest `user:password` credentials.
pub async fn connect_with(
    zookeeper: &ZookeeperConfig,
    credentials: Option<&str>,
    timeout: Duration,
) -> Result<Client, String> {
    let mut connector = Client::connector()
        .with_session_timeout(zookeeper.session_timeout)
        .with_connection_timeout(timeout);
    if let Some(credentials) = credentials {
        connector = connector.with_auth("digest", credentials.as_bytes());
    }
    let client = connector.connect(&zookeeper.connect).await.map_err(|err| {
        format!(
            "cannot connect to ZooKeeper at {}: {err}",
            zookeeper.connect
        )
    })?;
    match &zookeeper.chroot {
        Some(chroot) => client
            .chroot(chroot.as_str())
            .map_err(|_| format!("invalid chroot {chroot}")),
        None => Ok(client),
    }
}

enum SessionEnd {
    Expired,
    Failed,
    Shutdown,
}

/// What the session keeps announced, and where it says how that stands.
pub(crate) struct Announcing {
    pub wanted: watch::Receiver<Option<Announcement>>,
    pub state: watch::Sender<Announced>,
}

/// Runs sessions one after another until the discovery is dropped.
pub(crate) async fn run(
    zookeeper: ZookeeperConfig,
    mut specs: watch::Receiver<Vec<WatchSpec>>,
    updates: mpsc::Sender<Update>,
    metrics: Metrics,
    announcing: Announcing,
) {
    // Each instance tries the ensemble's servers in an order of its own, so
    // that a fleet starting together does not land on the first one.
    let zookeeper = shuffled(zookeeper);
    let mut backoff = MIN_BACKOFF;
    let known = KnownChildren::default();
    loop {
        let connect_timeout = zookeeper
            .session_timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let client = match connect(&zookeeper, connect_timeout).await {
            Ok(client) => client,
            Err(why) => {
                let wait = jittered(backoff);
                warn!(retry_in_ms = wait.as_millis() as u64, "{why}");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        info!(session = %client.session_id(), timeout_ms = client.session_timeout().as_millis() as u64, "ZooKeeper session established");
        metrics.zookeeper_connected.set(1);
        let announcer = Owned(tokio::spawn(announce::run(
            client.clone(),
            announcing.wanted.clone(),
            announcing.state.clone(),
            metrics.clone(),
        )));
        let end = serve(&client, &mut specs, &updates, &metrics, &known).await;
        drop(announcer);
        announcing.state.send_replace(Announced::Pending);
        metrics.fleet_announced.set(0);
        metrics.zookeeper_connected.set(0);
        match end {
            SessionEnd::Expired => {
                metrics.zookeeper_session_expirations.inc();
                // A partition expires a whole fleet's sessions at once:
                // the new ones open spread out, as re-reads do.
                let wait = resync::resync_wait(resync::children(&known));
                warn!(in_ms = wait.as_millis() as u64, "ZooKeeper session expired: opening a new one; serving the last known members meanwhile");
                tokio::time::sleep(wait).await;
            }
            SessionEnd::Failed => tokio::time::sleep(jittered(backoff)).await,
            SessionEnd::Shutdown => return,
        }
    }
}

/// A task of the session's, aborted when dropped: the session's watchers
/// and announcer (each holding the session's client) end with it, also
/// when the discovery that runs it is dropped mid-session (a reload that
/// changes the `zookeeper` section), rather than keeping the old session
/// alive and feeding its members in.
struct Owned(JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Owned {
    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// `zookeeper` with its servers in a random order.
fn shuffled(mut zookeeper: ZookeeperConfig) -> ZookeeperConfig {
    let mut hosts: Vec<&str> = zookeeper.connect.split(',').collect();
    fastrand::shuffle(&mut hosts);
    zookeeper.connect = hosts.join(",");
    zookeeper
}

/// Keeps one watcher per spec alive for the session's lifetime.
async fn serve(
    client: &Client,
    specs: &mut watch::Receiver<Vec<WatchSpec>>,
    updates: &mpsc::Sender<Update>,
    metrics: &Metrics,
    known: &KnownChildren,
) -> SessionEnd {
    let mut watchers: HashMap<Arc<str>, (DiscoveryConfig, Owned)> = HashMap::new();
    // Every read of the session's, of every backend, goes through one reader.
    let (reader, reading) = Reader::new(client.clone());
    let _reading = Owned(tokio::spawn(reading));
    let session = Arc::new(Shared::new(
        client.clone(),
        updates.clone(),
        metrics.clone(),
        reader,
        Arc::clone(known),
    ));
    let current = specs.borrow_and_update().clone();
    reconcile(&mut watchers, &current, &session);
    let mut state = client.state_watcher();
    // A watcher that ended while the session lives (the client library
    // panics on a closed watch channel) is started again.
    let mut check = tokio::time::interval(WATCHER_CHECK);
    let end = loop {
        tokio::select! {
            _ = check.tick() => {
                watchers.retain(|_, (_, task)| !task.is_finished());
                let current = specs.borrow().clone();
                reconcile(&mut watchers, &current, &session);
            }
            changed = state.changed() => match changed {
                SessionState::Disconnected => {
                    metrics.zookeeper_connected.set(0);
                    warn!("ZooKeeper connection lost; reconnecting, serving the last known members meanwhile");
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    metrics.zookeeper_connected.set(1);
                    info!("ZooKeeper connection re-established");
                }
                SessionState::Expired => break SessionEnd::Expired,
                other => {
                    error!(state = ?other, "ZooKeeper session ended");
                    break SessionEnd::Failed;
                }
            },
            changed = specs.changed() => {
                if changed.is_err() {
                    break SessionEnd::Shutdown;
                }
                let current = specs.borrow_and_update().clone();
                reconcile(&mut watchers, &current, &session);
            }
        }
    };
    // Dropping the watchers ends them.
    end
}

fn reconcile(
    watchers: &mut HashMap<Arc<str>, (DiscoveryConfig, Owned)>,
    specs: &[WatchSpec],
    session: &Arc<Shared>,
) {
    // A watcher dropped here is aborted.
    watchers.retain(|backend, (config, _)| {
        specs
            .iter()
            .any(|s| &s.backend == backend && &s.config == config)
    });
    for spec in specs {
        if !watchers.contains_key(&spec.backend) {
            let task = Owned(tokio::spawn(watcher::watch_backend(
                spec.clone(),
                Arc::clone(session),
            )));
            watchers.insert(Arc::clone(&spec.backend), (spec.config.clone(), task));
        }
    }
}
