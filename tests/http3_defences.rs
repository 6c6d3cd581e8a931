//! HTTP/3's limits and defences: a server dying mid-answer, a flood of
//! connection attempts, bodies that belie their length, connection limits
//! and idle connections.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use zkgate_testkit::pki::Pki;
use zkgate_testkit::{wait_until, HttpServer, Zkgate};

use common::edge::*;
use common::*;

/// A server that promises 100,000 bytes, sends 10 and dies.
fn dies_mid_answer(_: &str) -> zkgate_testkit::Answer {
    zkgate_testkit::Answer {
        close: true,
        ..zkgate_testkit::Answer::bytes(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789",
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dying_mid_answer_resets_the_stream_and_the_connection_lives_on() {
    let dying = zkgate_testkit::RecordingOrigin::start(dies_mid_answer).await;
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let routes = "    routes:\n      - path_prefix: /dying\n        backend: dying\n    default_backend: app\n";
    let backends = format!(
        "{}  dying:\n    retries: 0\n    servers: [{{ address: \"{}\" }}]\n",
        app_backend(app.addr),
        dying.addr
    );
    let _zkgate = Zkgate::start(ZKGATE, &edge.config(routes, &backends)).await;
    let mut client = edge.connect().await.unwrap();

    let cut = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get("edge.test", "/dying"),
    )
    .await
    .expect("an error, not a hang");
    let err = cut.expect_err("a cut answer is not a whole one");
    assert!(
        err.to_lowercase().contains("reset") || err.contains("INTERNAL"),
        "{err}"
    );
    // Its neighbours on the connection are not affected.
    let reply = client.get("edge.test", "/").await.unwrap();
    assert_eq!(reply.text(), "app");
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// `count` QUIC Initial packets of distinct connection attempts to
/// `server`, as a real client would send them first, never continued.
fn initials(count: usize, server: SocketAddr, pki: &Pki) -> Vec<Vec<u8>> {
    let config = zkgate_testkit::h3_client::client_config(pki);
    let mut endpoint = quinn_proto::Endpoint::new(Default::default(), None, false, None);
    let now = std::time::Instant::now();
    (0..count)
        .map(|_| {
            let (_, mut attempt) = endpoint
                .connect(now, config.clone(), server, "edge.test")
                .unwrap();
            let mut packet = Vec::new();
            let sent = attempt.poll_transmit(now, 1, &mut packet).unwrap();
            packet.truncate(sent.size);
            packet
        })
        .collect()
}

/// The memory zkgate may grow by under the flood below: 64 handshakes in
/// progress and 4,096 waiting attempts at most (docs/security.md).
const FLOOD_MEMORY_BOUND: u64 = 32 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_flood_from_random_ports_is_bounded_and_real_clients_are_served() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    timeouts: { client_header: 30s }\n    default_backend: app\n";
    let config = edge.config(extra, &app_backend(app.addr));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    // Warm: a served client first, so the flood's growth is the flood's.
    let mut client = edge.connect().await.unwrap();
    client.get("edge.test", "/").await.unwrap();
    let before = rss(zkgate.pid());

    let packets = initials(5_000, addr(edge.udp), &edge.pki);
    let flood = std::thread::spawn(move || {
        for packet in packets {
            // A new socket each: a new source port each. From another
            // loopback address, so that no port the other tests are about
            // to bind on 127.0.0.1 is taken meanwhile.
            let socket = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
            socket.send_to(&packet, addr(edge.udp)).unwrap();
        }
    });
    // A new client during the flood is served (after a Retry, if asked).
    let during = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut client = edge.connect().await?;
        client.get("edge.test", "/").await
    })
    .await
    .expect("served within 20 s during the flood")
    .unwrap();
    assert_eq!(during.text(), "app");
    flood.join().unwrap();

    let after = rss(zkgate.pid());
    assert!(
        after.saturating_sub(before) < FLOOD_MEMORY_BOUND,
        "grew from {before} to {after} bytes"
    );
    // The connection opened before the flood still works.
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    let mut late = edge.connect().await.unwrap();
    assert_eq!(late.get("edge.test", "/").await.unwrap().text(), "app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_or_shorter_than_its_content_length_never_reaches_a_server_whole() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = edge.connect().await.unwrap();
    for (stated, sent) in [(10, 20), (20, 10)] {
        let upload = Request::post("https://edge.test/upload")
            .header("content-length", stated)
            .body(())
            .unwrap();
        let reply = client.send(upload, Bytes::from(vec![b'x'; sent])).await;
        let reply = reply.unwrap();
        assert_eq!(
            reply.head.status(),
            400,
            "{stated} stated, {sent} sent: {reply:?}"
        );
    }
    // The connection serves on.
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    // And an empty stated length is refused before routing.
    let empty = Request::post("https://edge.test/upload")
        .header("content-length", "")
        .body(())
        .unwrap();
    let reply = client
        .send(empty, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(reply.head.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_limit_is_refused_at_the_handshake_and_counted() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    max_connections_per_client: 1\n    default_backend: app\n";
    let zkgate = Zkgate::start(ZKGATE, &edge.config(extra, &app_backend(app.addr))).await;
    let mut first = edge.connect().await.unwrap();
    assert_eq!(first.get("edge.test", "/").await.unwrap().text(), "app");
    let second = edge.connect().await;
    let err = second.err().expect("the second connection is refused");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="web",reason="max_connections"}"#)
            .await,
        Some(1.0)
    );
    // Once the first is gone, the client may connect again.
    drop(first);
    let again = wait_until(
        "a new connection to be taken",
        std::time::Duration::from_secs(10),
        || async { edge.connect().await.ok() },
    )
    .await;
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_request_for_client_idle_is_closed() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    timeouts: { client_idle: 1s }\n    default_backend: app\n";
    let _zkgate = Zkgate::start(ZKGATE, &edge.config(extra, &app_backend(app.addr))).await;
    let mut client = edge.connect().await.unwrap();
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    let began = std::time::Instant::now();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.connection.closed(),
    )
    .await
    .expect("closed by zkgate within 10 s");
    let after = began.elapsed();
    assert!(
        after >= std::time::Duration::from_millis(900),
        "closed after {after:?}: {closed}"
    );
    // Closed in good order (H3_NO_ERROR), not timed out by the client.
    assert!(closed.to_string().contains("closed by peer"), "{closed}");
}
