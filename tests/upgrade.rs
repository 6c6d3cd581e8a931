//! Upgrading zkgate in place: a new process takes over the listening sockets
//! of the running one over the upgrade socket, or binds the same ports
//! beside it (SO_REUSEPORT).

mod common;

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixDatagram;
use zkgate_testkit::{free_port, http_get, send_signal, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::load::{listening_sockets, Load};
use common::{dead_addr, register, servers, web_config, zk_client, ZKGATE};

async fn start_upgradable(config: &str, upgrade_socket: &Path) -> Zkgate {
    start_with_workers(config, upgrade_socket, "2").await
}

async fn start_with_workers(config: &str, upgrade_socket: &Path, workers: &str) -> Zkgate {
    let path = upgrade_socket.to_str().unwrap();
    Zkgate::start_with_env(
        ZKGATE,
        config,
        &[("ZKGATE_UPGRADE_SOCKET", path), ("ZKGATE_WORKERS", workers)],
    )
    .await
}

/// Sends `old` SIGTERM and checks it finished cleanly.
async fn retire(mut old: Zkgate) {
    let status = tokio::task::spawn_blocking(move || old.terminate())
        .await
        .unwrap();
    assert!(status.success(), "old process exit: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_hand_the_listening_sockets_on_under_load_without_a_connection_error() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut old = start_upgradable(&config, &upgrade_socket).await;
    let sockets = listening_sockets(port);
    assert_eq!(sockets.len(), 2, "one socket per worker");
    let load = Load::start(port);
    load.carries_on().await;

    // Twice: the second upgrade takes the sockets from the first's new
    // process. That one has a single worker, which accepts on both sockets.
    for workers in ["1", "2"] {
        let new = start_with_workers(&config, &upgrade_socket, workers).await;
        assert_eq!(
            listening_sockets(port),
            sockets,
            "the new process listens on the old one's sockets, not new ones"
        );
        retire(old).await;
        assert!(
            upgrade_socket.exists(),
            "the old process left the new one's upgrade socket in place"
        );
        load.carries_on().await;
        assert!(
            new.metric(r#"zkgate_frontend_requests_total{frontend="web"}"#)
                .await
                > Some(0.0)
        );
        old = new;
    }
    let failed = load.stop().await;
    assert!(failed.is_empty(), "errors during the upgrades: {failed:?}");
    assert_eq!(listening_sockets(port), sockets);
    assert!(
        old.log()
            .contains("took over the previous process's listening sockets"),
        "{}",
        old.log()
    );
}

/// What systemd would receive from `NOTIFY_SOCKET`.
struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    fn listen(path: &Path) -> Self {
        Systemd {
            socket: UnixDatagram::bind(path).unwrap(),
        }
    }

    /// The next notification, its lines joined with spaces.
    async fn next(&self) -> String {
        let mut buffer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), self.socket.recv(&mut buffer))
            .await
            .expect("a notification within 20 s")
            .unwrap();
        String::from_utf8_lossy(&buffer[..n]).replace('\n', " ")
    }

    /// Nothing arrived (yet).
    fn quiet(&self) -> bool {
        let mut buffer = vec![0u8; 4096];
        self.socket.try_recv(&mut buffer).is_err()
    }
}

/// A process the test did not start itself, killed when the test ends.
struct Successor(u32);

impl Drop for Successor {
    fn drop(&mut self) {
        std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status()
            .ok();
    }
}

/// `MAINPID=` of a `READY=1` notification.
fn main_pid(notice: &str) -> u32 {
    assert!(notice.starts_with("READY=1 "), "{notice}");
    notice
        .split(' ')
        .find_map(|field| field.strip_prefix("MAINPID="))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no MAINPID in {notice:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_starts_a_successor_that_takes_over_under_load_and_systemd_follows_it() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let notify_socket = dir.path().join("notify.sock");
    let systemd = Systemd::listen(&notify_socket);
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut old = Zkgate::start_with_env(
        ZKGATE,
        &config,
        &[
            ("ZKGATE_UPGRADE_SOCKET", upgrade_socket.to_str().unwrap()),
            ("NOTIFY_SOCKET", notify_socket.to_str().unwrap()),
            ("ZKGATE_WORKERS", "2"),
        ],
    )
    .await;
    assert_eq!(main_pid(&systemd.next().await), old.pid());
    let sockets = listening_sockets(port);
    let load = Load::start(port);
    load.carries_on().await;

    old.signal("USR2");
    let successor = main_pid(&systemd.next().await);
    let _cleanup = Successor(successor);
    assert_ne!(
        successor,
        old.pid(),
        "the new process says it is the main one"
    );
    let status = old.exited(Duration::from_secs(40)).await;
    assert!(status.success(), "old process exit: {status}");
    assert!(
        systemd.quiet(),
        "the old process must not tell systemd it stops: the service goes on"
    );
    load.carries_on().await;
    let failed = load.stop().await;
    assert!(failed.is_empty(), "errors during the upgrade: {failed:?}");
    assert_eq!(
        listening_sockets(port),
        sockets,
        "the new process listens on the old one's sockets"
    );
    // The old process's admin socket is the new one's now.
    assert!(
        old.metric(r#"zkgate_frontend_requests_total{frontend="web"}"#)
            .await
            > Some(0.0)
    );
    let log = old.log();
    for line in [
        "upgrading: started a new process",
        "took over the previous process's listening sockets",
        "ready: asked the previous process to finish",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    // Stopped for good, the new process tells systemd.
    send_signal(successor, "TERM");
    assert_eq!(systemd.next().await, "STOPPING=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_that_cannot_start_leaves_the_running_process_serving() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut zkgate = start_upgradable(&config, &upgrade_socket).await;
    let good = std::fs::read_to_string(zkgate.config_path()).unwrap();
    std::fs::write(zkgate.config_path(), "frontends: [not, a, map]\n").unwrap();
    zkgate.signal("USR2");
    wait_until("the failed upgrade", Duration::from_secs(20), || async {
        zkgate.log().contains("upgrade failed").then_some(())
    })
    .await;
    assert!(zkgate.running());
    assert_eq!(http_get(addr, "/").await.unwrap().status, 200);

    // Fixed, the next SIGUSR2 goes through.
    std::fs::write(zkgate.config_path(), good).unwrap();
    zkgate.signal("USR2");
    let status = zkgate.exited(Duration::from_secs(40)).await;
    assert!(status.success(), "{status}");
    let log = zkgate.log();
    let successor = log
        .lines()
        .rev()
        .filter(|line| line.contains("upgrading: started a new process"))
        .find_map(|line| line.rsplit("pid=").next()?.trim().parse().ok())
        .expect("the successor's pid in the log");
    let _cleanup = Successor(successor);
    assert_eq!(http_get(addr, "/").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_without_an_upgrade_socket_is_refused_and_changes_nothing() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    zkgate.signal("USR2");
    wait_until("the refusal", Duration::from_secs(10), || async {
        zkgate
            .log()
            .contains("an upgrade in place needs --upgrade-socket")
            .then_some(())
    })
    .await;
    assert!(zkgate.running());
    let reply = http_get(([127, 0, 0, 1], port).into(), "/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(!zkgate.log().contains("upgrading: started"));
}

/// A frontend on `port` in front of a backend whose servers are in the
/// ZooKeeper at `connect`.
fn zk_web_config(connect: &str, port: u16) -> String {
    format!(
        "zookeeper:\n  connect: \"{connect}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: /services/web }}\n"
    )
}

/// Waits until `new`, not ready, leaves its sockets to the previous process.
async fn holds_back(new: &Zkgate) {
    wait_until(
        "the new process to hold back",
        Duration::from_secs(20),
        || async {
            new.log()
                .contains("accepting once ready; the previous process serves meanwhile")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_taking_over_holds_back_until_its_zookeeper_backends_have_synced() {
    let mut zk = ZooKeeper::standalone();
    let server = HttpServer::start("s").await;
    register(
        &zk_client(&zk).await,
        "/services/web",
        server.addr,
        1,
        "ready",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let env = [("ZKGATE_UPGRADE_SOCKET", upgrade_socket.to_str().unwrap())];
    let port = free_port();
    let config = zk_web_config(&zk.connect_string(), port);
    let old = Zkgate::start_with_env(ZKGATE, &config, &env).await;
    let load = Load::start(port);
    load.carries_on().await;

    // ZooKeeper goes away: the old process serves its last known members,
    // and a new one cannot learn them. It must leave the clients to the old
    // one rather than answer 503 for want of servers.
    zk.kill_all();
    let new = Zkgate::start_alive_with_env(ZKGATE, &config, &env).await;
    holds_back(&new).await;
    load.carries_on().await;
    assert_eq!(http_get(new.admin, "/ready").await.unwrap().status, 503);

    // ZooKeeper back: the new process syncs, and accepts.
    zk.start_all();
    wait_until(
        "the new process to accept",
        Duration::from_secs(60),
        || async { new.log().contains("ready: accepting").then_some(()) },
    )
    .await;
    retire(old).await;
    load.carries_on().await;
    let failed = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} errors during the upgrade, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        new.metric(r#"zkgate_frontend_requests_total{frontend="web"}"#)
            .await
            > Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_holding_back_accepts_once_the_previous_one_is_gone() {
    // A ZooKeeper that never answers: neither process is ever ready.
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let env = [("ZKGATE_UPGRADE_SOCKET", upgrade_socket.to_str().unwrap())];
    let port = free_port();
    let config = zk_web_config(&dead_addr().to_string(), port);
    let old = Zkgate::start_alive_with_env(ZKGATE, &config, &env).await;
    let new = Zkgate::start_alive_with_env(ZKGATE, &config, &env).await;
    holds_back(&new).await;
    retire(old).await;
    // Nobody else accepts now: the new process does, ready or not (503:
    // it knows no server yet) rather than leave clients in the queue.
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        http_get(([127, 0, 0, 1], port).into(), "/"),
    )
    .await
    .expect("an answer, not a queued connection")
    .unwrap();
    assert_eq!(reply.status, 503);
    assert!(
        new.log()
            .contains("the previous process is gone: accepting before ready"),
        "{}",
        new.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upgrade_socket_a_new_process_binds_the_port_beside_the_old_one() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let old = Zkgate::start_with_env(ZKGATE, &config, &[("ZKGATE_WORKERS", "2")]).await;
    let new = Zkgate::start_with_env(ZKGATE, &config, &[("ZKGATE_WORKERS", "2")]).await;
    assert_eq!(listening_sockets(port).len(), 4, "both processes listen");
    retire(old).await;
    assert_eq!(listening_sockets(port).len(), 2);
    for _ in 0..20 {
        assert_eq!(http_get(addr, "/").await.unwrap().status, 200);
    }
    assert_eq!(
        new.metric(r#"zkgate_frontend_requests_total{frontend="web"}"#)
            .await,
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_socket_that_is_not_zkgates_is_reported_and_ports_are_bound_afresh() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    // Something else answers on the path: it sends a line and hangs up.
    let impostor = std::os::unix::net::UnixListener::bind(&upgrade_socket).unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut stream, _)) = impostor.accept() {
            stream.write_all(b"hello\n").ok();
        }
    });
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let zkgate = start_upgradable(&config, &upgrade_socket).await;
    assert_eq!(
        http_get(([127, 0, 0, 1], port).into(), "/")
            .await
            .unwrap()
            .status,
        200
    );
    let log = zkgate.log();
    assert!(
        log.contains("could not take over the previous process's listening sockets")
            && log.contains("not a zkgate hand-over"),
        "{log}"
    );
    // It serves the path itself now, for the next upgrade.
    let next = start_upgradable(&config, &upgrade_socket).await;
    assert!(next.log().contains("took over"), "{}", next.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_signalled_while_zkgate_starts_is_carried_out_once_it_runs() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    // Something on the upgrade socket keeps the new process waiting in its
    // start (for sockets that never come) until the test lets go.
    let holder = std::os::unix::net::UnixListener::bind(&upgrade_socket).unwrap();
    let (connected_tx, connected) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Ok((stream, _)) = holder.accept() {
            connected_tx.send(()).ok();
            released.recv().ok();
            drop(stream);
        }
    });
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let path = upgrade_socket.to_str().unwrap();
    let mut zkgate = Zkgate::spawn_with_env(ZKGATE, &config, &[("ZKGATE_UPGRADE_SOCKET", path)]);
    tokio::task::spawn_blocking(move || connected.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("zkgate to ask the upgrade socket for sockets");

    zkgate.signal("HUP");
    release.send(()).unwrap();
    zkgate.wait_ready().await;
    wait_until(
        "the reload, once zkgate runs",
        Duration::from_secs(10),
        || async {
            zkgate
                .log()
                .contains("configuration reloaded")
                .then_some(())
        },
    )
    .await;
    let reply = http_get(([127, 0, 0, 1], port).into(), "/").await.unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn an_upgrade_socket_path_held_by_another_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    std::fs::write(&upgrade_socket, "not a socket").unwrap();
    let config = dir.path().join("zkgate.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{ bind: \"127.0.0.1:{}\" }}\n{}",
            free_port(),
            web_config(free_port(), "[]")
        ),
    )
    .unwrap();
    let output = std::process::Command::new(ZKGATE)
        .args(["run", "-c"])
        .arg(&config)
        .arg("--upgrade-socket")
        .arg(&upgrade_socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "zkgate: cannot serve the upgrade socket {}: exists and is not a socket",
            upgrade_socket.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&upgrade_socket).unwrap(),
        "not a socket",
        "the file is left alone"
    );
}
