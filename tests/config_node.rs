//! Configuration kept in ZooKeeper: `zkgate config push|pull`, and every
//! zkgate watching the node converging on it without dropping a request.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

fn push(connect: &str, document: &str) -> (bool, String) {
    let mut child = Command::new(ZKGATE)
        .args([
            "config",
            "push",
            "--zk",
            connect,
            "--node",
            "/zkgate/config",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn document(port: u16, server: std::net::SocketAddr) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: [{{ address: \"{server}\" }}]\n"
    )
}

async fn status(zkgate: &Zkgate) -> serde_json::Value {
    serde_json::from_str(
        &http_get(zkgate.admin, "/api/v1/status")
            .await
            .unwrap()
            .text(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_config_node_converge_and_bad_documents_change_nothing() {
    let zk = ZooKeeper::standalone();
    let connect = zk.connect_string();
    let (first, second) = (
        HttpServer::start("first").await,
        HttpServer::start("second").await,
    );
    let port = free_port();
    let (ok, out) = push(&connect, &document(port, first.addr));
    assert!(ok, "{out}");
    assert!(
        out.contains("pushed") && out.contains("/zkgate/config"),
        "{out}"
    );

    // Two instances (SO_REUSEPORT: they share the port) following the node.
    let base = format!("zookeeper:\n  connect: \"{connect}\"\n  config_node: /zkgate/config\n");
    let a = Zkgate::start(ZKGATE, &base).await;
    let b = Zkgate::start(ZKGATE, &base).await;
    let addr = ([127, 0, 0, 1], port).into();
    for zkgate in [&a, &b] {
        wait_until(
            "the node's configuration",
            Duration::from_secs(10),
            || async {
                (status(zkgate).await["backends"][0]["servers"][0]["address"]
                    == first.addr.to_string())
                .then_some(())
            },
        )
        .await;
    }
    assert_eq!(http_get(addr, "/").await.unwrap().text(), "first");

    // A change under load: no request fails, both instances move.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failed) = (stop.clone(), failed.clone());
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
    let (ok, out) = push(&connect, &document(port, second.addr));
    assert!(ok, "{out}");
    for zkgate in [&a, &b] {
        wait_until("the new configuration", Duration::from_secs(10), || async {
            (status(zkgate).await["backends"][0]["servers"][0]["address"]
                == second.addr.to_string())
            .then_some(())
        })
        .await;
        assert!(status(zkgate).await["config_source"]
            .as_str()
            .unwrap()
            .ends_with("zookeeper:/zkgate/config"));
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0);

    // An invalid document is refused by `config push`…
    let broken =
        document(port, second.addr).replace("default_backend: web", "default_backend: nope");
    let (ok, out) = push(&connect, &broken);
    assert!(!ok);
    assert!(
        out.contains("backend `nope` is not defined") && out.contains("nothing was pushed"),
        "{out}"
    );
    let pulled = Command::new(ZKGATE)
        .args([
            "config",
            "pull",
            "--zk",
            &connect,
            "--node",
            "/zkgate/config",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pulled.stdout),
        document(port, second.addr)
    );

    // …and one written behind its back is rejected by zkgate, the old one serving on.
    let client = zk_client(&zk).await;
    client
        .set_data("/zkgate/config", broken.as_bytes(), None)
        .await
        .unwrap();
    wait_until("the rejection", Duration::from_secs(10), || async {
        (a.metric(r#"zkgate_config_reloads_total{result="error"}"#)
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    let report = status(&a).await;
    assert!(
        report["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("zookeeper:/zkgate/config:4:5"),
        "{report}"
    );
    assert_eq!(http_get(addr, "/").await.unwrap().text(), "second");
}
