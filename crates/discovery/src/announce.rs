//! This instance's announcement to its fleet (`zookeeper.fleet`): an
//! ephemeral znode `<path>/<name>` on the discovery session, whose data the
//! control plane keeps current (at most one write a second, and only on
//! change). A name held by another live session is not taken over.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use zkgate_metrics::Metrics;
use zookeeper_client::{Acls, Client, CreateMode, Error};

/// What to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The fleet's znode.
    pub path: String,
    /// This instance's name: its znode under `path`.
    pub name: String,
    /// The JSON to keep there.
    pub data: Vec<u8>,
}

/// How the announcement stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    /// Not written yet (no session, or nothing to announce).
    Pending,
    /// The znode is ours and current.
    Yes,
    /// Another live session holds the name.
    Taken(String),
}

/// Writes at most this often.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How often a taken name or a failed write is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps the announcement on `client`'s session until the session ends.
pub(crate) async fn run(
    client: Client,
    mut wanted: watch::Receiver<Option<Announcement>>,
    state: watch::Sender<Announced>,
    metrics: Metrics,
) {
    let mut written: Option<Announcement> = None;
    loop {
        let current = wanted.borrow_and_update().clone();
        if let Some(announcement) = current.filter(|a| written.as_ref() != Some(a)) {
            match write(&client, &announcement, written.is_some()).await {
                Ok(()) => {
                    if written.is_none() {
                        info!(znode = %format!("{}/{}", announcement.path, announcement.name), "announced to the fleet");
                    }
                    written = Some(announcement);
                    metrics.fleet_announced.set(1);
                    state.send_replace(Announced::Yes);
                }
                Err(Failure::Taken(owner)) => {
                    metrics.fleet_announced.set(0);
                    state.send_replace(Announced::Taken(owner));
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(Failure::Other(err)) => {
                    warn!(error = %err, "cannot write the fleet announcement; trying again");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            tokio::time::sleep(MIN_INTERVAL).await;
            continue;
        }
        if wanted.changed().await.is_err() {
            return;
        }
    }
}

enum Failure {
    Taken(String),
    Other(Error),
}

/// Creates the ephemeral znode (and the fleet path), or rewrites it.
async fn write(client: &Client, announcement: &Announcement, ours: bool) -> Result<(), Failure> {
    let node = format!("{}/{}", announcement.path, announcement.name);
    if ours {
        return match client.set_data(&node, &announcement.data, None).await {
            Ok(_) => Ok(()),
            // Gone (the session was replaced): created anew below.
            Err(Error::NoNode) => create(client, &node, announcement).await,
            Err(err) => Err(Failure::Other(err)),
        };
    }
    create(client, &node, announcement).await
}

async fn create(client: &Client, node: &str, announcement: &Announcement) -> Result<(), Failure> {
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client.mkdir(&announcement.path, &persistent).await {
        Ok(()) | Err(Error::NodeExists) => {}
        Err(err) => return Err(Failure::Other(err)),
    }
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    match client.create(node, &announcement.data, &ephemeral).await {
        Ok(_) => Ok(()),
        Err(Error::NodeExists) => match client.check_stat(node).await {
            // Ours from before a reconnect of this same session.
            Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => client
                .set_data(node, &announcement.data, None)
                .await
                .map(|_| ())
                .map_err(Failure::Other),
            Ok(Some(stat)) if stat.ephemeral_owner != 0 => Err(Failure::Taken(format!(
                "{node} is held by another live instance (session {:#x})",
                stat.ephemeral_owner
            ))),
            Ok(Some(_)) => Err(Failure::Taken(format!(
                "{node} exists and is not an instance's (a persistent znode)"
            ))),
            Ok(None) => Err(Failure::Other(Error::NoNode)),
            Err(err) => Err(Failure::Other(err)),
        },
        Err(err) => Err(Failure::Other(err)),
    }
}
