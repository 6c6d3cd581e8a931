//! Admin endpoints and shutdown.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use zkgate_testkit::{
    free_port, http_get, read_until_ending, send_signal, wait_until, HttpServer, Zkgate,
};

use common::load::Load;
use common::{servers, web_config, ZKGATE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_health_readiness_and_metrics() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 7)]));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    assert_eq!(
        http_get(zkgate.admin, "/healthz").await.unwrap().status,
        200
    );
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (200, "ready\n")
    );
    assert_eq!(http_get(zkgate.admin, "/nope").await.unwrap().status, 404);
    let metrics = zkgate.metrics().await;
    assert!(
        metrics.contains(&format!(
            "zkgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    let server_label = format!("backend=\"web\",server=\"{}\"", server.addr);
    assert!(
        metrics.contains(&format!("zkgate_server_weight{{{server_label}}} 7")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("zkgate_server_up{{{server_label}}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkgate_backend_servers{backend=\"web\",state=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkgate_routing_table_generation 1"),
        "{metrics}"
    );

    http_get(([127, 0, 0, 1], port).into(), "/").await.unwrap();
    let requests = format!("zkgate_server_requests_total{{{server_label}}}");
    assert_eq!(zkgate.metric(&requests).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_finishes_200_requests_in_flight_and_exits_0() {
    let server = HttpServer::start("slow").await;
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    let in_flight: Vec<_> = (0..200)
        .map(|_| tokio::spawn(async move { http_get(addr, "/delay/800").await }))
        .collect();
    wait_until(
        "200 requests in flight",
        Duration::from_secs(20),
        || async { (server.requests() == 200).then_some(()) },
    )
    .await;

    let exit = tokio::task::spawn_blocking(move || {
        let status = zkgate.terminate();
        (status, zkgate)
    });
    for request in in_flight {
        let reply = request.await.unwrap().unwrap();
        assert_eq!(reply.status, 200);
    }
    let (status, _zkgate) = exit.await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_websocket_carry_on_until_it_closes() {
    let ws = zkgate_testkit::websocket::WebSocketServer::start("ws").await;
    let port = free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut zkgate = Zkgate::start(ZKGATE, &web_config(port, &servers(&[(ws.addr, 1)]))).await;
    let mut client = zkgate_testkit::websocket::WebSocketClient::connect(addr, "/chat")
        .await
        .unwrap();
    assert_eq!(
        client.exchange("before").await.unwrap().as_deref(),
        Some("ws: before")
    );

    let exit = tokio::task::spawn_blocking(move || {
        let status = zkgate.terminate();
        (status, zkgate)
    });
    wait_until(
        "zkgate to stop accepting",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(!exit.is_finished(), "zkgate exited with a tunnel open");
    // The tunnel still works while zkgate drains.
    assert_eq!(
        client.exchange("during").await.unwrap().as_deref(),
        Some("ws: during")
    );
    drop(client);
    let (status, _zkgate) = tokio::time::timeout(Duration::from_secs(10), exit)
        .await
        .expect("zkgate exits once the tunnel closed, well before the grace period")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = HttpServer::start("kept").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        read_until_ending(&mut client, b"kept").await.unwrap();
        clients.push(client);
    }

    // Idle between requests: nothing to finish, so no reason to wait for
    // them (the grace period is 30 s by default).
    let started = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || zkgate.terminate());
    for mut client in clients {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed");
        assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    }
    let status = exit.await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        started.elapsed()
    );
}

/// Each worker thread's time on a CPU so far, by thread name.
fn worker_cpu_times(pid: u32) -> Vec<(String, u64)> {
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if let Some(name) = name.trim().strip_prefix("zkgate-worker-") {
            let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap();
            let ns = schedstat
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            workers.push((name.to_owned(), ns));
        }
    }
    workers.sort();
    workers
}

/// zkgate with `workers` worker threads in front of `server`, and its frontend.
async fn start_with_workers(server: &HttpServer, workers: &str) -> (Zkgate, SocketAddr) {
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let zkgate = Zkgate::start_with_env(ZKGATE, &config, &[("ZKGATE_WORKERS", workers)]).await;
    (zkgate, ([127, 0, 0, 1], port).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_thread_accepts_connections() {
    let server = HttpServer::start("s").await;
    let (zkgate, addr) = start_with_workers(&server, "3").await;
    let before = worker_cpu_times(zkgate.pid());
    let names: Vec<&str> = before.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2"]);
    // The kernel spreads connections over the workers' sockets by their
    // addresses: 60 connections leave a worker without one once in ~10^10.
    for _ in 0..60 {
        let reply = http_get(addr, "/").await.unwrap();
        assert_eq!(reply.status, 200);
    }
    let after = worker_cpu_times(zkgate.pid());
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        assert!(now > was, "worker {name} served no connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_shares_the_control_planes_thread() {
    let server = HttpServer::start("s").await;
    let (zkgate, addr) = start_with_workers(&server, "1").await;
    let reply = http_get(addr, "/").await.unwrap();
    assert_eq!(reply.text(), "s");
    // The allocator's own thread, which hands freed memory back to the
    // system, runs no proxy work.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", zkgate.pid()))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .filter(|name| name.trim() != "jemalloc_bg_thd")
        .collect();
    assert_eq!(
        threads.len(),
        1,
        "a process with one worker has one thread: {threads:?}"
    );
}

#[test]
fn a_worker_count_out_of_range_is_refused_with_a_clear_error() {
    for bad in ["0", "many"] {
        let output = std::process::Command::new(ZKGATE)
            .args(["run", "--workers", bad, "-c", "/nonexistent.yaml"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--workers {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("invalid value") && stderr.contains("--workers"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_out_every_access_log_line_before_exiting() {
    let server = HttpServer::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let port = free_port();
    let config = format!(
        "access_log: {{ format: text, path: {} }}\n{}",
        log_path.display(),
        web_config(port, &servers(&[(server.addr, 1)]))
    );
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    let load = Load::start(port);
    wait_until("traffic", Duration::from_secs(10), || async {
        (load.answered() >= 200).then_some(())
    })
    .await;
    // Stopped with requests in flight, so their lines are the last queued.
    let status = tokio::task::spawn_blocking(move || zkgate.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // The process is gone: nothing is answered any more.
    let answered = load.answered();
    // Refused connections once zkgate stopped accepting are expected here.
    load.stop().await;
    let lines = std::fs::read_to_string(&log_path).unwrap().lines().count();
    assert!(
        lines >= answered,
        "{lines} access log lines for {answered} answered requests"
    );
}

#[test]
fn a_sigterm_sent_while_the_configuration_is_read_drains_once_zkgate_runs() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // The configuration is a named pipe, so zkgate's start waits on the test.
    let config_path = dir.path().join("zkgate.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&config_path)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let config = format!(
        "admin:\n  bind: 127.0.0.1:{}\n{}",
        free_port(),
        web_config(free_port(), "[{ address: \"127.0.0.1:9\" }]")
    );
    let log = std::fs::File::create(dir.path().join("zkgate.log")).unwrap();
    let mut child = std::process::Command::new(ZKGATE)
        .args(["run", "-c"])
        .arg(&config_path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Opening the pipe to write returns once zkgate opened it to read.
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(&config_path)
        .unwrap();
    send_signal(child.id(), "TERM");
    // zkgate reads the file once. One the signal ended has closed its end of
    // the pipe: the status below says so.
    let _ = pipe.write_all(config.as_bytes());
    drop(pipe);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "zkgate still runs");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(dir.path().join("zkgate.log")).unwrap();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
}
