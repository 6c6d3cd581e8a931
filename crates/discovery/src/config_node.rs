//! Watching `zookeeper.config_node`: the control plane gets the node's text
//! each time it changes (and `None` while the node does not exist), on a
//! session of its own that is reopened whenever it ends.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zkgate_config::ZookeeperConfig;
use zookeeper_client::Error;

use crate::session::connect;

const RETRY: Duration = Duration::from_millis(500);

/// The node's text, or `None` when it does not exist.
pub type NodeText = Option<String>;

/// Starts watching; the task ends when `updates` is closed or it is aborted.
pub fn watch_config_node(
    zookeeper: ZookeeperConfig,
    node: String,
    updates: mpsc::Sender<NodeText>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<NodeText> = None;
        loop {
            let client = match connect(&zookeeper, Duration::from_secs(5)).await {
                Ok(client) => client,
                Err(why) => {
                    warn!(%node, "config node: {why}");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            loop {
                // Read and re-arm the watch in one call; a missing node is watched for creation.
                let (text, watcher) = match client.get_and_watch_data(&node).await {
                    Ok((data, _, watcher)) => (
                        Some(String::from_utf8_lossy(&data).into_owned()),
                        Some(watcher),
                    ),
                    Err(Error::NoNode) => match client.check_and_watch_stat(&node).await {
                        Ok((None, watcher)) => {
                            if last.as_ref().is_some_and(Option::is_some) {
                                info!(%node, "config node deleted: the file's frontends and backends apply");
                                if updates.send(None).await.is_err() {
                                    return;
                                }
                                last = Some(None);
                            }
                            match watcher.changed().await {
                                event if event.session_state.is_terminated() => break,
                                _ => continue,
                            }
                        }
                        // Created in between: read it.
                        Ok((Some(_), _)) => continue,
                        Err(err) => {
                            warn!(%node, error = %err, "config node: cannot watch");
                            break;
                        }
                    },
                    Err(err) => {
                        warn!(%node, error = %err, "config node: cannot read");
                        if client.state().is_terminated() {
                            break;
                        }
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                };
                if last.as_ref() != Some(&text) {
                    info!(%node, bytes = text.as_ref().map_or(0, String::len), "config node changed");
                    if updates.send(text.clone()).await.is_err() {
                        return;
                    }
                    last = Some(text);
                }
                let Some(watcher) = watcher else { continue };
                let event = watcher.changed().await;
                if event.session_state.is_terminated() {
                    break;
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    })
}
