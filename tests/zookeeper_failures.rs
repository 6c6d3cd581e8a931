//! ZooKeeper failing under a running zkgate: a node dies, the session
//! expires, the whole ensemble goes away. Traffic never stops, and zkgate
//! converges to the truth once ZooKeeper is back.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Relay, Zkgate, ZooKeeper};

use common::*;

fn config(zk_connect: &str, port: u16, session_timeout: &str) -> String {
    format!(
        "zookeeper:\n  connect: \"{zk_connect}\"\n  session_timeout: {session_timeout}\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: /services/web }}\n"
    )
}

/// Requests in a loop until stopped; counts failures.
struct Load {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Self {
        let (stop, failed, ok) = (Arc::default(), Arc::default(), Arc::default());
        let tasks = (0..4)
            .map(|_| {
                let (stop, failed, ok): (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>) =
                    (Arc::clone(&stop), Arc::clone(&failed), Arc::clone(&ok));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match http_get(addr, "/").await {
                            Ok(reply) if reply.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            failed,
            ok,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_ensemble_node_never_stops_traffic_and_later_changes_still_arrive() {
    let mut zk = ZooKeeper::ensemble();
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&zk.connect_string())
        .await
        .unwrap();
    let first = HttpServer::start("first").await;
    register(&client, "/services/web", first.addr, 1, "ready").await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port, "6s")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let load = Load::start(addr);

    // zkgate is attached to one of the three: killing each in turn hits it.
    let mut added = Vec::new();
    for node in 0..3 {
        zk.kill(node);
        let server = HttpServer::start(&format!("after-kill-{node}")).await;
        wait_until(
            "a write with one node down",
            Duration::from_secs(30),
            || async {
                let data = format!(r#"{{"address":"{}"}}"#, server.addr);
                let options = zookeeper_client::CreateMode::Persistent
                    .with_acls(zookeeper_client::Acls::anyone_all());
                match client
                    .create(
                        &format!("/services/web/{}", server.addr),
                        data.as_bytes(),
                        &options,
                    )
                    .await
                {
                    Ok(_) | Err(zookeeper_client::Error::NodeExists) => Some(()),
                    Err(_) => None,
                }
            },
        )
        .await;
        let routed = tokio::time::timeout(Duration::from_secs(30), async {
            while server.requests() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            routed.is_ok(),
            "{} never received traffic; zkgate's log:\n{}",
            server.name,
            zkgate.log()
        );
        added.push(server);
        zk.restart(node);
    }
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "{failed} requests failed ({ok} succeeded)");
    assert!(
        zkgate
            .metric("zkgate_zookeeper_session_expirations_total")
            .await
            == Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_replaced_and_members_added_meanwhile_are_routed_to() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let before = HttpServer::start("before").await;
    register(&client, "/services/web", before.addr, 1, "ready").await;
    // zkgate reaches ZooKeeper through a relay the test can partition.
    let relay = Relay::start(zk.client_addr(0)).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&relay.addr.to_string(), port, "2s")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    relay.pause();
    wait_until(
        "zkgate to notice the partition",
        Duration::from_secs(10),
        || async { (zkgate.metric("zkgate_zookeeper_connected").await == Some(0.0)).then_some(()) },
    )
    .await;
    // While partitioned: the session times out on the server, and a member is added.
    let during = HttpServer::start("during").await;
    register(&client, "/services/web", during.addr, 1, "ready").await;
    assert_eq!(
        spread(addr, "/", 4).await.get("before"),
        Some(&4),
        "last members still serve"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await; // longer than the 2 s session: the server expires it
    relay.resume();

    wait_until("a new session", Duration::from_secs(20), || async {
        (zkgate
            .metric("zkgate_zookeeper_session_expirations_total")
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    wait_for_spread(addr, "/", &[("before", 5), ("during", 5)]).await;
    assert_eq!(zkgate.metric("zkgate_zookeeper_connected").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_whole_ensemble_down_the_last_members_serve_and_zkgate_converges_after() {
    let mut zk = ZooKeeper::ensemble();
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    {
        let client = zk_client(&zk).await;
        register(&client, "/services/web", a.addr, 1, "ready").await;
    }
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port, "4s")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    zk.kill_all();
    wait_until("zkgate to notice", Duration::from_secs(15), || async {
        (zkgate.metric("zkgate_zookeeper_connected").await == Some(0.0)).then_some(())
    })
    .await;
    // Longer than the session timeout: still serving the last known members.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(spread(addr, "/", 5).await.get("a"), Some(&5));

    zk.start_all();
    let client = zk_client(&zk).await;
    register(&client, "/services/web", b.addr, 1, "ready").await;
    unregister(&client, "/services/web", a.addr).await;
    wait_for_spread(addr, "/", &[("b", 5)]).await;
}
