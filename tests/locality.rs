//! Zone-aware routing (`locality: prefer_local`), with members and their
//! zones from ZooKeeper: traffic stays in the instance's zone, spills over
//! by the rule when the zone is short of ready servers, and hashed keys stay
//! on their server across a change in the other zone.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

const PATH: &str = "/services/web";

fn config(zk: &str, port: u16, balance: &str) -> String {
    format!(
        "zone: a\nzookeeper:\n  connect: \"{zk}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    balance: {balance}\n    zookeeper: {{ path: {PATH} }}\n    locality: {{ mode: prefer_local, min_local_healthy: 70% }}\n"
    )
}

/// Registers `server` in `zone` with `state`, or rewrites it.
async fn put(client: &zookeeper_client::Client, server: &HttpServer, zone: &str, state: &str) {
    let node = format!("{PATH}/{}", server.addr);
    let data = format!(
        r#"{{"address":"{}","weight":1,"state":"{state}","zone":"{zone}"}}"#,
        server.addr
    );
    match client.set_data(&node, data.as_bytes(), None).await {
        Ok(_) => {}
        Err(zookeeper_client::Error::NoNode) => create(client, &node, data.as_bytes()).await,
        Err(err) => panic!("{node}: {err}"),
    }
}

/// Two zones of three servers: a1–a3 in `a` (this instance's), b1–b3 in `b`.
async fn two_zones(client: &zookeeper_client::Client) -> Vec<HttpServer> {
    mkdir(client, PATH).await;
    let mut servers = Vec::new();
    for name in ["a1", "a2", "a3", "b1", "b2", "b3"] {
        let server = HttpServer::start(name).await;
        put(client, &server, &name[..1], "ready").await;
        servers.push(server);
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_stays_local_and_spills_over_by_the_rule() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let servers = two_zones(&client).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port, "roundrobin")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // All local: the three of zone a share everything.
    wait_for_spread(addr, "/", &[("a1", 100), ("a2", 100), ("a3", 100)]).await;

    // Drain two of the three local servers: 1/3 of the zone's weight is
    // ready, under 70 %, so (1/3)/0.7 = 47.6 % stays local and the rest
    // spills over to zone b.
    put(&client, &servers[1], "a", "drain").await;
    put(&client, &servers[2], "a", "drain").await;
    wait_until("the spill-over", Duration::from_secs(10), || async {
        let seen = spread(addr, "/", 60).await;
        (!seen.contains_key("a2") && !seen.contains_key("a3") && seen.contains_key("b1"))
            .then_some(())
    })
    .await;
    let before = zkgate
        .metric(r#"zkgate_backend_zone_requests_total{backend="web",zone="local"}"#)
        .await
        .unwrap();
    let n = 2000;
    let seen = spread(addr, "/", n).await;
    let local = *seen.get("a1").unwrap_or(&0) as f64 / n as f64;
    assert!(
        (local - 0.476).abs() < 0.05,
        "local share {local:.3}: {seen:?}"
    );
    let others: Vec<usize> = ["b1", "b2", "b3"]
        .iter()
        .map(|b| *seen.get(*b).unwrap_or(&0))
        .collect();
    assert!(
        others.iter().all(|&c| c > 250),
        "spilled evenly over zone b: {seen:?}"
    );
    let after = zkgate
        .metric(r#"zkgate_backend_zone_requests_total{backend="web",zone="local"}"#)
        .await
        .unwrap();
    let counted = after - before;
    assert!(
        (counted - seen["a1"] as f64).abs() < 1.0,
        "{counted} local requests counted, {} seen",
        seen["a1"]
    );

    // Every local server drained: everything goes to zone b.
    put(&client, &servers[0], "a", "drain").await;
    wait_for_spread(addr, "/", &[("b1", 20), ("b2", 20), ("b3", 20)]).await;
}

/// Where each of `paths` lands.
async fn placement(addr: SocketAddr, paths: &[String]) -> BTreeMap<String, String> {
    let mut placed = BTreeMap::new();
    for path in paths {
        let reply = http_get(addr, path).await.unwrap();
        placed.insert(path.clone(), reply.text());
    }
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_keys_keep_their_local_server_across_a_change_in_the_other_zone() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let servers = two_zones(&client).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port, "uri")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let paths: Vec<String> = (0..60).map(|n| format!("/item/{n}")).collect();
    wait_until("all six members", Duration::from_secs(10), || async {
        let placed = placement(addr, &paths).await;
        let used: std::collections::BTreeSet<&String> = placed.values().collect();
        (used.len() == 3).then_some(placed)
    })
    .await;
    let before = placement(addr, &paths).await;
    assert!(
        before.values().all(|s| s.starts_with('a')),
        "all local: {before:?}"
    );

    // Zone b changes: one server leaves, one is drained.
    unregister(&client, PATH, servers[3].addr).await;
    put(&client, &servers[4], "b", "drain").await;
    wait_until(
        "zone b's change applied",
        Duration::from_secs(10),
        || async {
            let status = http_get(zkgate.admin, "/api/v1/status").await.ok()?.text();
            (!status.contains(&servers[3].addr.to_string())).then_some(())
        },
    )
    .await;
    assert_eq!(placement(addr, &paths).await, before, "a key moved");
}
