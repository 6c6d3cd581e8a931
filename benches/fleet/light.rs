//! One light instance: the real discovery code (its own session, watch,
//! reads and member map) without the table build, optionally announcing
//! itself to the fleet as zkgate does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use zkgate_config::{DiscoveryConfig, MemberFormat, OnEmpty, ZookeeperConfig};
use zkgate_discovery::announce::Announcement;
use zkgate_discovery::{Change, Discovery, WatchSpec};

use crate::path;

/// One light instance: the zxid it caught up with, and how many full
/// listings it read, as they move.
pub struct Light {
    _discovery: Arc<Discovery>,
    /// How far each backend's watcher caught up (zxid), by backend index.
    pub caught_up: watch::Receiver<Vec<i64>>,
    /// When it last caught up with a newer zxid (the bench's own clock
    /// reading of a waiter may come later on a busy machine).
    pub caught_up_at: watch::Receiver<Instant>,
    pub listings: watch::Receiver<u64>,
    /// How many backends it follows: a full read of them all moves
    /// `listings` by that much.
    pub backends: u64,
}

pub fn light(zookeeper: &ZookeeperConfig, backends: usize) -> Light {
    announcing(zookeeper, backends, None)
}

/// A light instance that announces itself as `name` under
/// [`FLEET`], with the zxid each backend caught up with
/// as its applied one, if `name` is given.
pub fn announcing(zookeeper: &ZookeeperConfig, backends: usize, name: Option<String>) -> Light {
    let (updates, mut received) = mpsc::channel(4096);
    let registry = prometheus::Registry::new();
    let metrics = zkgate_metrics::Metrics::register(&registry).expect("metrics");
    let specs = (0..backends)
        .map(|b| WatchSpec {
            backend: format!("b{b}").into(),
            config: DiscoveryConfig {
                path: path(b),
                format: MemberFormat::Zkgate,
                endpoint: None,
                on_empty: OnEmpty::KeepLast,
                protect: None,
            },
        })
        .collect();
    let discovery = Arc::new(Discovery::start(zookeeper.clone(), specs, updates, metrics));
    let (tell, caught_up) = watch::channel(vec![0i64; backends]);
    let (count, listings) = watch::channel(0u64);
    let (at, caught_up_at) = watch::channel(Instant::now());
    // Weak: the instance ends when its `Light` is dropped.
    let announcer = Arc::downgrade(&discovery);
    tokio::spawn(async move {
        // The member map an instance keeps, without the table build.
        let mut members = std::collections::HashMap::new();
        while let Some(update) = received.recv().await {
            match update.change {
                Change::Reset(listing) => {
                    for l in listing {
                        members.insert((update.backend.clone(), l.name), l.decoded);
                    }
                    count.send_modify(|n| *n += 1);
                }
                Change::Upsert(listed) => {
                    members.insert((update.backend.clone(), listed.name), listed.decoded);
                }
                Change::Remove(name) => {
                    members.remove(&(update.backend.clone(), name));
                }
                Change::CaughtUp(zxid) => {
                    let index: usize = update.backend[1..].parse().expect("b<index>");
                    let newer = tell.send_if_modified(|by| {
                        let newer = zxid > by[index];
                        by[index] = by[index].max(zxid);
                        newer
                    });
                    if newer {
                        at.send_replace(Instant::now());
                    }
                    if let (Some(name), Some(announcer)) = (&name, announcer.upgrade()) {
                        let applied = tell.borrow().clone();
                        announcer.announce(Some(announcement(name, &applied)));
                    }
                }
                Change::Directives(_) => {}
            }
        }
    });
    Light {
        _discovery: discovery,
        caught_up,
        caught_up_at,
        listings,
        backends: backends as u64,
    }
}

/// How long until each instance caught up with `zxids` (per backend; 0:
/// any), at most `limit`.
pub async fn until_all(
    fleet: &[Light],
    zxids: &[i64],
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut waits = Vec::with_capacity(fleet.len());
    for instance in fleet {
        let mut caught_up = instance.caught_up.clone();
        let reached = tokio::time::timeout_at(
            (since + limit).into(),
            caught_up.wait_for(|by| by.iter().zip(zxids).all(|(have, want)| have >= want)),
        )
        .await;
        assert!(
            reached.is_ok(),
            "an instance did not catch up within {limit:?}"
        );
        waits.push(since.elapsed());
    }
    waits
}

/// Per backend, `zxid` for backend `b` and 0 (any) for the others.
pub fn only(backends: usize, b: usize, zxid: i64) -> Vec<i64> {
    (0..backends)
        .map(|i| if i == b { zxid } else { 0 })
        .collect()
}

/// The fleet's znode.
pub const FLEET: &str = "/zkgate/fleet";

/// What instance `name` announces: each backend's zxid as applied.
pub fn announcement(name: &str, applied: &[i64]) -> Announcement {
    let backends: Vec<String> = applied
        .iter()
        .enumerate()
        .map(|(b, zxid)| format!(r#""b{b}":{{"path":"{}","applied_zxid":{zxid}}}"#, path(b)))
        .collect();
    let data = format!(
        r#"{{"name":"{name}","zone":null,"version":"bench","started":0,"config_generation":1,"backends":{{{}}}}}"#,
        backends.join(",")
    );
    Announcement {
        path: FLEET.to_owned(),
        name: name.to_owned(),
        data: data.into_bytes(),
    }
}
