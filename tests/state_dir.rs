//! `state_dir`: a zkgate that starts while ZooKeeper is down serves each
//! backend's last-known members, marked stale, until ZooKeeper answers and
//! its listing replaces them; a file it cannot trust is ignored with a
//! warning, never a crash.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

const PATH: &str = "/services/web";

fn config(zk: &str, state_dir: &Path, port: u16, static_port: u16, fixed: SocketAddr) -> String {
    format!(
        "state_dir: {}\nzookeeper:\n  connect: \"{zk}\"\n  session_timeout: 4s\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n  fixed:\n    bind: [\"127.0.0.1:{static_port}\"]\n    default_backend: fixed\nbackends:\n  web:\n    zookeeper: {{ path: {PATH} }}\n  fixed:\n    servers: [{{ address: \"{fixed}\" }}]\n",
        state_dir.display()
    )
}

/// The backend's file under `dir`, once it exists.
fn state_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("backend-web-") && n.ends_with(".json"))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_zookeeper_serves_the_last_known_members_until_zookeeper_answers() {
    let mut zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (a, b, c) = (
        HttpServer::start("a").await,
        HttpServer::start("b").await,
        HttpServer::start("c").await,
    );
    let fixed = HttpServer::start("fixed").await;
    register(&client, PATH, a.addr, 1, "ready").await;
    register(&client, PATH, b.addr, 1, "ready").await;
    let state = tempfile::tempdir().unwrap();
    let (port, static_port) = (free_port(), free_port());
    let yaml = config(
        &zk.connect_string(),
        state.path(),
        port,
        static_port,
        fixed.addr,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // Fill the state: the file names both members once they are live.
    let mut first = Zkgate::start(ZKGATE, &yaml).await;
    wait_for_spread(addr, "/", &[("a", 10), ("b", 10)]).await;
    let file = wait_until(
        "the state file with both members",
        Duration::from_secs(10),
        || async {
            let file = state_file(state.path())?;
            let text = std::fs::read_to_string(&file).ok()?;
            (text.contains(&a.addr.to_string()) && text.contains(&b.addr.to_string()))
                .then_some(file)
        },
    )
    .await;
    assert!(first.terminate().success());

    // Meanwhile the membership changes (b leaves, c joins), then the
    // whole ensemble goes down.
    unregister(&client, PATH, b.addr).await;
    register(&client, PATH, c.addr, 1, "ready").await;
    drop(client);
    zk.kill_all();

    // A start without ZooKeeper: ready, serving a and b, marked stale.
    let zkgate = Zkgate::start(ZKGATE, &yaml).await;
    wait_for_spread(addr, "/", &[("a", 10), ("b", 10)]).await;
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_stale{backend="web"}"#)
            .await,
        Some(1.0)
    );
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().contains("last-known members"),
        "{}",
        ready.text()
    );
    let status = http_get(zkgate.admin, "/api/v1/status")
        .await
        .unwrap()
        .text();
    assert!(status.contains(r#""stale": true"#), "{status}");
    let stats = http_get(zkgate.admin, "/stats").await.unwrap().text();
    assert!(stats.contains("stale: last-known members"), "{stats}");

    // ZooKeeper comes back with the changed membership: the new set
    // replaces the stale one, with no failed request in between.
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (failed, stop) = (Arc::clone(&failed), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match http_get(addr, "/").await {
                    Ok(reply) if reply.status == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    zk.start_all();
    wait_for_spread(addr, "/", &[("a", 10), ("c", 10)]).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed while ZooKeeper came back"
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_discovery_stale{backend="web"}"#)
            .await,
        Some(0.0)
    );
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(ready.text(), "ready\n");
    drop(zkgate);

    // A corrupt file: zkgate starts, names it in a warning, and serves
    // its static servers only.
    std::fs::write(&file, b"{\"kind\": \"zkgate last-known members\", \"vers").unwrap();
    zk.kill_all();
    let zkgate = Zkgate::start_alive(ZKGATE, &yaml).await;
    let fixed_addr: SocketAddr = ([127, 0, 0, 1], static_port).into();
    wait_until(
        "the static backend served",
        Duration::from_secs(10),
        || async {
            http_get(fixed_addr, "/")
                .await
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(http_get(addr, "/").await.unwrap().status, 503);
    let log = zkgate.log();
    assert!(
        log.contains("ignoring the last-known members")
            && log.contains(&file.display().to_string()),
        "{log}"
    );
}
