//! The `applied_zxid` rule (docs/znodes.md), checked against a real
//! ZooKeeper: random bursts of creates, data changes and deletes (one
//! writer, so every write's zxid is known), read by the real discovery
//! code. Whenever discovery says it caught up with a zxid, the members it
//! sent so far must be exactly ZooKeeper's as of that zxid — never a
//! change missing, never one from after it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use zkgate_config::{DiscoveryConfig, MemberFormat, OnEmpty, ZookeeperConfig};
use zkgate_discovery::{Change, Discovery, WatchSpec};
use zkgate_testkit::ZooKeeper;
use zookeeper_client::{Acls, CreateMode};

use common::*;

const PATH: &str = "/services/web";

/// A member's data, by its weight.
fn data(name: &str, weight: u32) -> String {
    let port = 20_000 + name[1..].parse::<u16>().unwrap();
    format!(r#"{{"address":"10.0.0.1:{port}","weight":{weight}}}"#)
}

/// Applies one change to the reader's `members`; a caught-up zxid is
/// `seen` with the members as they are then.
fn apply(
    change: Change,
    members: &mut BTreeMap<String, u32>,
    seen: &mut Vec<(i64, BTreeMap<String, u32>)>,
) {
    match change {
        Change::Reset(listing) => {
            *members = listing
                .into_iter()
                .map(|l| (l.name, l.decoded.unwrap().weight))
                .collect();
        }
        Change::Upsert(listed) => {
            members.insert(listed.name, listed.decoded.unwrap().weight);
        }
        Change::Remove(name) => {
            members.remove(&name);
        }
        Change::CaughtUp(zxid) => seen.push((zxid, members.clone())),
        Change::Directives(_) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_zxids_are_exact_under_bursts_of_changes() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    mkdir(&client, PATH).await;
    let (updates, mut received) = mpsc::channel(4096);
    let registry = prometheus::Registry::new();
    let metrics = zkgate_metrics::Metrics::register(&registry).unwrap();
    let spec = WatchSpec {
        backend: "web".into(),
        config: DiscoveryConfig {
            path: PATH.into(),
            format: MemberFormat::Zkgate,
            endpoint: None,
            on_empty: OnEmpty::Apply,
            protect: None,
        },
    };
    let zookeeper = ZookeeperConfig {
        connect: zk.connect_string(),
        chroot: None,
        config_node: None,
        session_timeout: Duration::from_secs(10),
        auth: None,
        fleet: None,
    };
    let _discovery = Discovery::start(zookeeper, vec![spec], updates, metrics);

    // The writer: its history of (zxid, members and weights after it).
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut state: BTreeMap<String, u32> = BTreeMap::new();
    let mut history: Vec<(i64, BTreeMap<String, u32>)> = Vec::new();
    fastrand::seed(7);
    let writer = async {
        for _burst in 0..30 {
            for _ in 0..fastrand::usize(1..12) {
                let name = format!("m{}", fastrand::u16(0..20));
                let zxid = match state.get(&name) {
                    None => {
                        let weight = fastrand::u32(1..9);
                        let node = format!("{PATH}/{name}");
                        let (stat, _) = client
                            .create(&node, data(&name, weight).as_bytes(), &open)
                            .await
                            .unwrap();
                        state.insert(name, weight);
                        stat.czxid
                    }
                    Some(_) if fastrand::bool() => {
                        client
                            .delete(&format!("{PATH}/{name}"), None)
                            .await
                            .unwrap();
                        state.remove(&name);
                        // The only writer: the path's last child change is this one.
                        client.check_stat(PATH).await.unwrap().unwrap().pzxid
                    }
                    Some(_) => {
                        let weight = fastrand::u32(1..9);
                        let node = format!("{PATH}/{name}");
                        let stat = client
                            .set_data(&node, data(&name, weight).as_bytes(), None)
                            .await
                            .unwrap();
                        state.insert(name, weight);
                        stat.mzxid
                    }
                };
                history.push((zxid, state.clone()));
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
        }
        history.last().map(|(zxid, _)| *zxid).unwrap()
    };

    // The reader: discovery's members, checked at every caught-up zxid.
    let mut members: BTreeMap<String, u32> = BTreeMap::new();
    let mut checked = 0;
    let mut seen: Vec<(i64, BTreeMap<String, u32>)> = Vec::new();
    let reader = async {
        while let Some(update) = received.recv().await {
            apply(update.change, &mut members, &mut seen);
        }
    };
    let last = tokio::select! {
        last = writer => last,
        () = reader => unreachable!("discovery stopped"),
    };
    // Drain until discovery caught up with the last write.
    while seen.last().is_none_or(|(zxid, _)| *zxid < last) {
        let update = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("caught up in time")
            .unwrap();
        apply(update.change, &mut members, &mut seen);
    }
    for (zxid, members) in &seen {
        // ZooKeeper's members as of `zxid`: after the newest write at or before it.
        let expected = history
            .iter()
            .rev()
            .find(|(at, _)| at <= zxid)
            .map(|(_, state)| state.clone())
            .unwrap_or_default();
        assert_eq!(members, &expected, "at zxid {zxid:#x}");
        checked += 1;
    }
    assert!(checked > 10, "only {checked} caught-up points");
}
