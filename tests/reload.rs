//! SIGHUP reloads: a valid file swaps the table and the listeners without
//! touching requests in flight; an invalid one changes nothing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::{free_port, http_get, read_until_ending, HttpServer, Zkgate};

use common::load::{listening_sockets, Load};
use common::{servers, web_config, ZKGATE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_new_requests_while_a_long_request_completes() {
    let (old, new) = (
        HttpServer::start("old").await,
        HttpServer::start("new").await,
    );
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let zkgate = Zkgate::start(ZKGATE, &web_config(port, &servers(&[(old.addr, 1)]))).await;

    let long = tokio::spawn(async move { http_get(addr, "/delay/1500").await });
    zkgate_testkit::wait_until(
        "the long request to reach the old server",
        Duration::from_secs(5),
        || async { (old.requests() == 1).then_some(()) },
    )
    .await;

    // Steady load across the reload: nothing may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(addr, "/").await {
                    Ok(reply) if reply.status == 200 => {}
                    _ => failures += 1,
                }
            }
            failures
        })
    };
    zkgate
        .reload(&web_config(port, &servers(&[(new.addr, 1)])))
        .await;
    for _ in 0..5 {
        assert_eq!(http_get(addr, "/").await.unwrap().text(), "new");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load.await.unwrap(), 0, "requests failed across the reload");
    let long = long.await.unwrap().unwrap();
    assert_eq!((long.status.as_u16(), long.text().as_str()), (200, "old"));
    assert_eq!(
        zkgate.metric("zkgate_routing_table_generation").await,
        Some(2.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_config_reloads_total{result="ok"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_leaves_the_running_configuration_untouched() {
    let server = HttpServer::start("kept").await;
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let zkgate = Zkgate::start(ZKGATE, &web_config(port, &servers(&[(server.addr, 1)]))).await;

    let broken = web_config(port, &servers(&[(server.addr, 1)]))
        .replace("default_backend: web", "default_backend: nope");
    zkgate.reload(&broken).await;
    let log = zkgate.log();
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("backend `nope` is not defined"), "{log}");
    assert_eq!(http_get(addr, "/").await.unwrap().text(), "kept");

    zkgate.reload("frontends: [this is not a mapping").await;
    assert_eq!(http_get(addr, "/").await.unwrap().text(), "kept");
    assert_eq!(
        zkgate
            .metric(r#"zkgate_config_reloads_total{result="error"}"#)
            .await,
        Some(2.0)
    );
    assert_eq!(
        zkgate.metric("zkgate_routing_table_generation").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_binds_added_listeners_and_unbinds_removed_ones_without_cutting_requests() {
    let server = HttpServer::start("s").await;
    let (first, second) = (free_port(), free_port());
    let first_addr = ([127, 0, 0, 1], first).into();
    let second_addr = ([127, 0, 0, 1], second).into();
    let zkgate = Zkgate::start(ZKGATE, &web_config(first, &servers(&[(server.addr, 1)]))).await;

    let in_flight = tokio::spawn(async move { http_get(first_addr, "/delay/1000").await });
    zkgate_testkit::wait_until(
        "the request to be in flight",
        Duration::from_secs(5),
        || async { (server.requests() == 1).then_some(()) },
    )
    .await;

    zkgate
        .reload(&web_config(second, &servers(&[(server.addr, 1)])))
        .await;
    assert_eq!(http_get(second_addr, "/").await.unwrap().text(), "s");
    zkgate_testkit::wait_until(
        "the removed listener to close",
        Duration::from_secs(5),
        || async {
            tokio::net::TcpStream::connect(first_addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let finished = in_flight.await.unwrap().unwrap();
    assert_eq!(finished.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_gives_an_address_to_another_frontend_keeps_its_sockets_and_every_connection()
{
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    // The address goes back and forth between two frontends, each with a
    // backend and an address of its own besides.
    let (own_one, own_two) = (free_port(), free_port());
    let owned_by = |owner: &str| {
        let binds = |frontend: &str, own: u16| {
            if frontend == owner {
                format!("[\"127.0.0.1:{own}\", \"127.0.0.1:{port}\"]")
            } else {
                format!("[\"127.0.0.1:{own}\"]")
            }
        };
        format!(
            "frontends:\n  one: {{ bind: {}, default_backend: one }}\n  two: {{ bind: {}, default_backend: two }}\nbackends:\n  one: {{ servers: {} }}\n  two: {{ servers: {} }}\n",
            binds("one", own_one),
            binds("two", own_two),
            servers(&[(a.addr, 1)]),
            servers(&[(b.addr, 1)])
        )
    };
    let zkgate = Zkgate::start_with_env(ZKGATE, &owned_by("one"), &[("ZKGATE_WORKERS", "2")]).await;
    let sockets = listening_sockets(port);
    assert_eq!(sockets.len(), 2, "one socket per worker");
    let load = Load::start(port);
    load.carries_on().await;
    for (owner, name) in [("two", "b"), ("one", "a"), ("two", "b")] {
        zkgate.reload(&owned_by(owner)).await;
        assert_eq!(http_get(addr, "/").await.unwrap().text(), name);
        assert_eq!(
            listening_sockets(port),
            sockets,
            "the address keeps its sockets from one frontend to the other"
        );
        load.carries_on().await;
    }
    let failed = load.stop().await;
    assert!(failed.is_empty(), "errors during the reloads: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_frontend_answers_its_open_connections_once_more_and_closes_them() {
    let server = HttpServer::start("s").await;
    let (kept, gone) = (free_port(), free_port());
    let gone_addr: std::net::SocketAddr = ([127, 0, 0, 1], gone).into();
    let frontend = |name: &str, port: u16| {
        format!("  {name}: {{ bind: [\"127.0.0.1:{port}\"], default_backend: web }}\n")
    };
    let config = |frontends: &str| {
        format!(
            "frontends:\n{frontends}backends:\n  web: {{ servers: {} }}\n",
            servers(&[(server.addr, 1)])
        )
    };
    let both = config(&(frontend("kept", kept) + &frontend("gone", gone)));
    let zkgate = Zkgate::start(ZKGATE, &both).await;

    // And an HTTP/2 (h2c) connection.
    let h2c = TcpStream::connect(gone_addr).await.unwrap();
    let (mut h2, h2_connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2c))
            .await
            .unwrap();
    let h2_connection = tokio::spawn(h2_connection);
    let h2_get = |h2: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>| {
        let request = http::Request::get("http://t/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = h2.send_request(request);
        async move {
            let response = response.await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status.as_u16(), body)
        }
    };
    assert_eq!(h2_get(&mut h2).await, (200, Bytes::from("s")));

    // Kept-alive HTTP/1.1 connections to `gone`: one on the fast path (a
    // GET), one on hyper's (a request with a body).
    let get: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    let post: &[u8] = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
    let mut open = Vec::new();
    for request in [get, post] {
        let mut stream = TcpStream::connect(gone_addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let answer = read_until_ending(&mut stream, b"\r\n\r\ns").await.unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
        open.push((stream, request));
    }

    zkgate.reload(&config(&frontend("kept", kept))).await;
    assert!(
        zkgate
            .log()
            .contains("frontend removed: its open connections close after their next request"),
        "{}",
        zkgate.log()
    );
    zkgate_testkit::wait_until(
        "the removed frontend's listener to close",
        Duration::from_secs(5),
        || async { TcpStream::connect(gone_addr).await.is_err().then_some(()) },
    )
    .await;

    // The next request on each is served, as the frontend was, and the
    // connection closes after it.
    for (mut stream, request) in open {
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("zkgate closes the connection after the response")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.ends_with("\r\n\r\ns"), "{answer}");
    }
    // The HTTP/2 connection's next request is served, then GOAWAY.
    assert_eq!(h2_get(&mut h2).await, (200, Bytes::from("s")));
    tokio::time::timeout(Duration::from_secs(5), h2_connection)
        .await
        .expect("zkgate closes the HTTP/2 connection after the request")
        .unwrap()
        .unwrap();
    assert_eq!(server.requests(), 6);
    assert_eq!(
        http_get(([127, 0, 0, 1], kept).into(), "/")
            .await
            .unwrap()
            .text(),
        "s"
    );
}

/// `web` on `port` with a default static backend `old`, following ZooKeeper
/// at `connect`, and for each of `added` a ZooKeeper-backed backend of that
/// name (at `/services/NAME`) routed to on `/NAME`.
fn warm_up_config(connect: &str, port: u16, old: std::net::SocketAddr, added: &[&str]) -> String {
    let routes: String = added
        .iter()
        .map(|name| format!("      - {{ path_prefix: /{name}, backend: {name} }}\n"))
        .collect();
    let backends: String = added
        .iter()
        .map(|name| format!("  {name}:\n    zookeeper: {{ path: /services/{name} }}\n"))
        .collect();
    format!(
        "zookeeper:\n  connect: \"{connect}\"\n  session_timeout: 30s\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: old\n    routes:\n{routes}backends:\n  old:\n    servers: [{{ address: \"{old}\" }}]\n{backends}"
    )
}

/// Requests `path` until `until` holds for the answer; every answer must be
/// 200 from one of `allowed`.
async fn answers_until(
    addr: std::net::SocketAddr,
    path: &str,
    allowed: &[&str],
    until: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = http_get(addr, path).await.expect("request through zkgate");
        let body = reply.text();
        assert!(
            reply.status == 200 && allowed.contains(&body.as_str()),
            "{path} answered {} {body:?}",
            reply.status
        );
        if until(&body) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: still {body:?} after 20s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adding_zookeeper_backends_goes_live_once_they_synced_or_its_warm_up_is_over() {
    use zkgate_testkit::{wait_until, Relay, ZooKeeper};
    let zk = ZooKeeper::standalone();
    let client = common::zk_client(&zk).await;
    let (old, new, late) = (
        HttpServer::start("old").await,
        HttpServer::start("new").await,
        HttpServer::start("late").await,
    );
    common::register(&client, "/services/new", new.addr, 1, "ready").await;
    common::register(&client, "/services/late", late.addr, 1, "ready").await;
    // zkgate reaches ZooKeeper through a relay the test can hold up.
    let relay = Relay::start(zk.client_addr(0)).await;
    let connect = relay.addr.to_string();
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let zkgate = Zkgate::start(ZKGATE, &warm_up_config(&connect, port, old.addr, &[])).await;
    wait_until("a ZooKeeper session", Duration::from_secs(10), || async {
        (zkgate.metric("zkgate_zookeeper_connected").await == Some(1.0)).then_some(())
    })
    .await;
    let log_has = |text: &'static str| {
        let zkgate = &zkgate;
        move || async move { zkgate.log().contains(text).then_some(()) }
    };

    // ZooKeeper answers late: the running configuration serves meanwhile,
    // and /new goes to `new` only once its members are known. Never a 503.
    relay.pause();
    zkgate.send_reload(&warm_up_config(&connect, port, old.addr, &["new"]));
    wait_until(
        "the reload to wait for ZooKeeper",
        Duration::from_secs(10),
        log_has("in service once these backends have synced"),
    )
    .await;
    for _ in 0..20 {
        answers_until(addr, "/new", &["old"], |_| true).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http_get(zkgate.admin, "/ready").await.unwrap().status, 200);
    relay.resume();
    answers_until(addr, "/new", &["old", "new"], |body| body == "new").await;
    assert!(zkgate.log().contains("configuration reloaded"));

    // ZooKeeper answers later than the warm-up: the configuration goes into
    // service without the backend's servers, and they join once read.
    relay.pause();
    zkgate.send_reload(&warm_up_config(&connect, port, old.addr, &["new", "late"]));
    wait_until(
        "the warm-up to end",
        Duration::from_secs(15),
        log_has("going into service before these backends synced"),
    )
    .await;
    assert_eq!(http_get(addr, "/late").await.unwrap().status, 503);
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("late"), "{}", ready.text());
    relay.resume();
    wait_until("/late to reach `late`", Duration::from_secs(20), || async {
        let reply = http_get(addr, "/late").await.ok()?;
        (reply.status == 200 && reply.text() == "late").then_some(())
    })
    .await;
    assert_eq!(http_get(zkgate.admin, "/ready").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_sync_does_not_hold_back_later_reloads() {
    use zkgate_testkit::{wait_until, ZooKeeper};
    let zk = ZooKeeper::standalone();
    // A path zkgate may not read: its backend never syncs, ZooKeeper answering.
    common::private_dir(&zk, "owner:s3cret", "/services/locked").await;
    let old = HttpServer::start("old").await;
    let port = free_port();
    let config = |routes: &str| {
        format!(
            "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: old\n    routes: [{routes}]\nbackends:\n  old:\n    servers: [{{ address: \"{}\" }}]\n  locked:\n    zookeeper: {{ path: /services/locked }}\n",
            zk.connect_string(),
            old.addr
        )
    };
    let zkgate = Zkgate::start_alive(ZKGATE, &config("")).await;
    wait_until("a ZooKeeper session", Duration::from_secs(10), || async {
        (zkgate.metric("zkgate_zookeeper_connected").await == Some(1.0)).then_some(())
    })
    .await;

    zkgate
        .reload(&config("{ path_prefix: /locked, backend: locked }"))
        .await;
    let log = zkgate.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        !log.contains("in service once these backends have synced"),
        "{log}"
    );
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert!(ready.text().contains("backend locked"), "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pathologically_nested_file_is_refused_at_once_and_never_stalls_requests() {
    let server = HttpServer::start("kept").await;
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    // One worker: the control plane shares the thread that serves requests.
    let zkgate = Zkgate::start_with_env(
        ZKGATE,
        &web_config(port, &servers(&[(server.addr, 1)])),
        &[("ZKGATE_WORKERS", "1")],
    )
    .await;
    // 160 KB whose parse cost grows with the square of its nesting.
    let nested = format!("frontends: {}{}\n", "[".repeat(80_000), "]".repeat(80_000));
    // `reload` waits (10 s at most) for the outcome in the log.
    zkgate.reload(&nested).await;
    let log = zkgate.log();
    assert!(log.contains("nested deeper than 64 levels"), "{log}");
    assert_eq!(http_get(addr, "/").await.unwrap().text(), "kept");
    assert_eq!(
        zkgate
            .metric(r#"zkgate_config_reloads_total{result="error"}"#)
            .await,
        Some(1.0)
    );
}
