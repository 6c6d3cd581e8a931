//! What one instance asks of ZooKeeper to read many backends, counted by
//! a real ZooKeeper (`mntr`'s `zk_packets_received`): the backends'
//! listings in one multi-read and their members packed across backends,
//! at start and again after a reconnect, when the backends re-read
//! together.

mod common;

use std::time::Duration;

use tokio::sync::mpsc;
use zkgate_config::{DiscoveryConfig, MemberFormat, OnEmpty, ZookeeperConfig};
use zkgate_discovery::{Change, Discovery, WatchSpec};
use zkgate_testkit::zookeeper::four_letter;
use zkgate_testkit::{wait_until, ZooKeeper};
use zookeeper_client::{Acls, CreateMode};

use common::*;

const BACKENDS: usize = 30;
const MEMBERS: usize = 40;

/// Requests the (standalone) ZooKeeper received since it started.
fn requests(zk: &ZooKeeper) -> u64 {
    let mntr = four_letter(zk.client_addr(0).port(), "mntr").expect("mntr");
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_packets_received"))
        .and_then(|n| n.trim().parse().ok())
        .expect("zk_packets_received in mntr")
}

fn spec(b: usize) -> WatchSpec {
    WatchSpec {
        backend: format!("b{b}").into(),
        config: DiscoveryConfig {
            path: format!("/services/b{b}"),
            format: MemberFormat::Zkgate,
            endpoint: None,
            on_empty: OnEmpty::Apply,
            protect: None,
        },
    }
}

/// Waits until every backend has sent `round` full listings of all its
/// members.
async fn synced(received: &mut mpsc::Receiver<zkgate_discovery::Update>, resets: &mut usize) {
    let want = *resets + BACKENDS;
    while *resets < want {
        let update = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("every backend read within 20 s")
            .expect("discovery running");
        if let Change::Reset(members) = update.change {
            assert_eq!(members.len(), MEMBERS, "{}", update.backend);
            *resets += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_backends_are_read_in_few_requests_at_start_and_after_a_reconnect() {
    let mut zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for b in 0..BACKENDS {
        mkdir(&client, &format!("/services/b{b}")).await;
        let mut writer = client.new_multi_writer();
        for m in 0..MEMBERS {
            let data = format!(r#"{{"address":"10.0.{b}.{m}:80"}}"#);
            writer
                .add_create(&format!("/services/b{b}/m{m}"), data.as_bytes(), &open)
                .unwrap();
        }
        writer.commit().await.unwrap();
    }
    let (updates, mut received) = mpsc::channel(4096);
    let metrics = zkgate_metrics::Metrics::register(&prometheus::Registry::new()).unwrap();
    let zookeeper = ZookeeperConfig {
        connect: zk.connect_string(),
        chroot: None,
        config_node: None,
        session_timeout: Duration::from_secs(30),
        auth: None,
        fleet: None,
    };
    let specs = (0..BACKENDS).map(spec).collect();
    let before = requests(&zk);
    let _discovery = Discovery::start(zookeeper, specs, updates, metrics);
    let mut resets = 0;
    synced(&mut received, &mut resets).await;
    // A watch per backend, then the listings (60 znodes: one multi-read,
    // or two if the first watcher asks alone) and the 1,230 members and
    // paths (five multi-reads of 256), and the sessions' own few requests.
    // Read one request per backend each, it would be 90 and more.
    let at_start = requests(&zk) - before;
    assert!(
        at_start <= (BACKENDS + 20) as u64,
        "{at_start} requests to read {BACKENDS} backends"
    );

    // The same session back after ZooKeeper restarts: every backend reads
    // again, at one time drawn for all of them.
    zk.restart(0);
    // Its counters start again (the restart's own probes counted).
    let restarted = requests(&zk);
    synced(&mut received, &mut resets).await;
    let again = requests(&zk) - restarted;
    assert!(
        again <= (BACKENDS + 20) as u64,
        "{again} requests after the restart, to read {BACKENDS} backends again"
    );
    // Still following changes.
    client
        .set_data(
            "/services/b7/m3",
            br#"{"address":"10.0.7.3:80","weight":5}"#,
            None,
        )
        .await
        .unwrap();
    wait_until("the change read", Duration::from_secs(10), || {
        let update = received.try_recv().ok();
        async move {
            update.and_then(|u| match u.change {
                Change::Upsert(listed) if listed.name == "m3" && &*u.backend == "b7" => {
                    Some(listed.decoded.unwrap().weight)
                }
                _ => None,
            })
        }
    })
    .await;
}
