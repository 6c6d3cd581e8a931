//! The mass-removal guard (`protect`): removals beyond `max_removed` of a
//! backend's members within `window` are held, the servers serving on,
//! until health checks fail them, `zkgate server release` lets them go, or
//! they come back; small removals and `--force` pass at once.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use zkgate_testkit::{free_port, wait_until, HttpServer, Zkgate, ZooKeeper};
use zookeeper_client::{Acls, Client, CreateMode};

use common::*;

const PATH: &str = "/services/web";
const WAIT: Duration = Duration::from_secs(15);

fn config(zk: &str, port: u16) -> String {
    config_with_window(zk, port, "1h")
}

/// With `on_empty: apply`, so that a backend ZooKeeper empties has no servers.
fn config_with_window(zk: &str, port: u16, window: &str) -> String {
    format!(
        "zookeeper:\n  connect: \"{zk}\"\n  session_timeout: 4s\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: {PATH}, on_empty: apply, protect: {{ max_removed: 50%, window: {window} }} }}\n    health_check: {{ kind: http, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }}\n"
    )
}

fn native(addr: SocketAddr) -> String {
    format!(r#"{{"address":"{addr}","weight":1,"state":"ready"}}"#)
}

/// Ten servers, registered with `client` (ephemeral or not).
async fn ten(client: &Client, ephemeral: bool) -> Vec<HttpServer> {
    mkdir(client, PATH).await;
    let mut servers = Vec::new();
    for n in 0..10 {
        let server = HttpServer::start(&format!("s{n}")).await;
        let mode = if ephemeral {
            CreateMode::Ephemeral
        } else {
            CreateMode::Persistent
        };
        client
            .create(
                &format!("{PATH}/{}", server.addr),
                native(server.addr).as_bytes(),
                &mode.with_acls(Acls::anyone_all()),
            )
            .await
            .unwrap();
        servers.push(server);
    }
    servers
}

/// The servers (by name) that answer `n` requests.
async fn answering(addr: SocketAddr, n: usize) -> BTreeSet<String> {
    spread(addr, "/", n).await.into_keys().collect()
}

async fn wait_for_held(zkgate: &Zkgate, held: f64) {
    wait_until(&format!("{held} held members"), WAIT, || async {
        let now = zkgate
            .metric(r#"zkgate_discovery_held_members{backend="web"}"#)
            .await;
        (now == Some(held)).then_some(())
    })
    .await;
}

async fn wait_for_answering(addr: SocketAddr, want: &BTreeSet<String>) {
    wait_until(&format!("answers from {want:?}"), WAIT, || async {
        (answering(addr, 200).await == *want).then_some(())
    })
    .await;
}

fn names(servers: &[HttpServer], pick: impl Fn(usize) -> bool) -> BTreeSet<String> {
    (0..servers.len())
        .filter(|n| pick(*n))
        .map(|n| format!("s{n}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_removal_is_held_until_health_checks_or_release_let_it_go() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let mut servers = ten(&client, false).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port)).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_answering(addr, &names(&servers, |_| true)).await;

    // Eight removed at once (one transaction): five are applied, three held.
    let mut writer = client.new_multi_writer();
    for server in &servers[..8] {
        writer
            .add_delete(&format!("{PATH}/{}", server.addr), None)
            .unwrap();
    }
    writer.commit().await.unwrap();
    wait_for_held(&zkgate, 3.0).await;
    let status = zkgate_testkit::http_get(zkgate.admin, "/api/v1/status")
        .await
        .unwrap()
        .text();
    let held: Vec<usize> = (0..8)
        .filter(|n| status.contains(&format!("\"address\": \"{}\"", servers[*n].addr)))
        .collect();
    assert_eq!(held.len(), 3, "{status}");
    assert!(status.contains("removed from ZooKeeper"), "{status}");
    let serving = names(&servers, |n| n >= 8 || held.contains(&n));
    wait_for_answering(addr, &serving).await;
    let log = zkgate.log();
    assert_eq!(log.matches("holding a member").count(), 3, "{log}");

    // A held server whose process dies is let go by its health check.
    let dead = held[0];
    servers[dead] = HttpServer::start("replacement").await; // drops (kills) the old one
    wait_for_held(&zkgate, 2.0).await;
    wait_for_answering(addr, &names(&servers, |n| n >= 8 || held[1..].contains(&n))).await;

    // `zkgate server release` lets the rest go.
    let connect = zk.connect_string();
    let output = Command::new(ZKGATE)
        .args(["server", "release", "--zk", &connect, "--path", PATH])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for_held(&zkgate, 0.0).await;
    wait_for_answering(addr, &names(&servers, |n| n >= 8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_removals_and_forced_ones_pass_and_a_held_member_that_comes_back_is_served() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let servers = ten(&client, false).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(&zk.connect_string(), port)).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_answering(addr, &names(&servers, |_| true)).await;

    // Two of ten: applied at once.
    for server in &servers[..2] {
        unregister(&client, PATH, server.addr).await;
    }
    wait_for_answering(addr, &names(&servers, |n| n >= 2)).await;
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_held_members{backend="web"}"#)
            .await,
        Some(0.0)
    );

    // Three more fill the window's share (5 of 10); a sixth is held …
    for server in &servers[2..6] {
        unregister(&client, PATH, server.addr).await;
    }
    wait_for_held(&zkgate, 1.0).await;
    // … and served again as a member when it comes back.
    let status = zkgate_testkit::http_get(zkgate.admin, "/api/v1/status")
        .await
        .unwrap()
        .text();
    let back = (2..6)
        .find(|n| status.contains(&format!("\"address\": \"{}\"", servers[*n].addr)))
        .unwrap();
    register(&client, PATH, servers[back].addr, 1, "ready").await;
    wait_for_held(&zkgate, 0.0).await;
    wait_for_answering(addr, &names(&servers, |n| n >= 6 || n == back)).await;

    // Beyond the share, `--force` takes a member out at once.
    let connect = zk.connect_string();
    let forced = servers[6].addr.to_string();
    let output = Command::new(ZKGATE)
        .args([
            "server", "remove", "--zk", &connect, "--path", PATH, &forced, "--force",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for_answering(addr, &names(&servers, |n| n >= 7 || n == back)).await;
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_held_members{backend="web"}"#)
            .await,
        Some(0.0)
    );
}

/// An expired registrar session (every ephemeral member gone at once) is
/// held the same way; with ZooKeeper connected, the held members go when
/// the window after the last removal has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_registrar_session_is_held_the_same_way_until_the_window_passes() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    mkdir(&client, PATH).await;
    let registrar = zk_client(&zk).await;
    let servers = ten(&registrar, true).await;
    let port = free_port();
    let yaml = config_with_window(&zk.connect_string(), port, "3s");
    let zkgate = Zkgate::start(ZKGATE, &yaml).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_answering(addr, &names(&servers, |_| true)).await;

    zk.expire_session(registrar.session().clone()).await;
    wait_for_held(&zkgate, 5.0).await;
    assert_eq!(answering(addr, 200).await.len(), 5);
    let stats = zkgate_testkit::http_get(zkgate.admin, "/stats")
        .await
        .unwrap()
        .text();
    assert!(stats.contains("5 held by protect"), "{stats}");

    // 3 s after the last removal, ZooKeeper connected: they go.
    wait_for_held(&zkgate, 0.0).await;
    assert_eq!(spread(addr, "/", 5).await.get("503"), Some(&5));
}
