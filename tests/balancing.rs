//! Balancing algorithms end to end through the binary.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use zkgate_testkit::{free_port, http_get, http_request, wait_until, HttpServer, Zkgate};

use common::{servers, ZKGATE};

async fn three_servers() -> [HttpServer; 3] {
    [
        HttpServer::start("a").await,
        HttpServer::start("b").await,
        HttpServer::start("c").await,
    ]
}

fn config(port: u16, balance: &str, list: &[&HttpServer]) -> String {
    let weighted: Vec<_> = list.iter().map(|s| (s.addr, 1)).collect();
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    balance: \"{balance}\"\n    servers: {}\n",
        servers(&weighted)
    )
}

async fn get_with(port: u16, header: Option<(&str, String)>) -> String {
    let mut request = Request::get("/").header("host", "x");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    http_request(
        ([127, 0, 0, 1], port).into(),
        request.body(Full::new(Bytes::new())).unwrap(),
    )
    .await
    .unwrap()
    .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_hashing_keeps_each_user_on_one_server_and_spreads_users() {
    let s = three_servers().await;
    let port = free_port();
    let _zkgate = Zkgate::start(
        ZKGATE,
        &config(port, "header(x-user)", &[&s[0], &s[1], &s[2]]),
    )
    .await;
    let mut homes: BTreeMap<String, usize> = BTreeMap::new();
    for user in 0..60 {
        let first = get_with(port, Some(("x-user", format!("user-{user}")))).await;
        for _ in 0..3 {
            assert_eq!(
                get_with(port, Some(("x-user", format!("user-{user}")))).await,
                first,
                "user-{user} moved"
            );
        }
        *homes.entry(first).or_default() += 1;
    }
    assert_eq!(homes.len(), 3, "60 users all hashed onto {homes:?}");
    // Without the header: round robin.
    let mut plain: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..6 {
        *plain.entry(get_with(port, None).await).or_default() += 1;
    }
    assert_eq!(plain.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_and_source_hashing_are_sticky() {
    let s = three_servers().await;
    let (cookie_port, source_port) = (free_port(), free_port());
    let _cookie = Zkgate::start(
        ZKGATE,
        &config(cookie_port, "cookie(session)", &[&s[0], &s[1], &s[2]]),
    )
    .await;
    let _source = Zkgate::start(
        ZKGATE,
        &config(source_port, "source", &[&s[0], &s[1], &s[2]]),
    )
    .await;
    let jar = || Some(("cookie", "theme=dark; session=0123456789".to_owned()));
    let first = get_with(cookie_port, jar()).await;
    for _ in 0..5 {
        assert_eq!(get_with(cookie_port, jar()).await, first);
    }
    let first = get_with(source_port, None).await;
    for _ in 0..5 {
        assert_eq!(get_with(source_port, None).await, first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_sends_short_requests_away_from_the_server_holding_a_long_one() {
    let s = three_servers().await;
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &config(port, "leastconn", &[&s[0], &s[1]])).await;
    let addr = ([127, 0, 0, 1], port).into();
    let long = tokio::spawn(async move { http_get(addr, "/delay/1500").await.unwrap().text() });
    wait_until(
        "the long request to be in flight",
        Duration::from_secs(5),
        || async { (s[0].requests() + s[1].requests() == 1).then_some(()) },
    )
    .await;
    let busy = if s[0].requests() == 1 { "a" } else { "b" };
    for _ in 0..10 {
        assert_ne!(http_get(addr, "/").await.unwrap().text(), busy);
    }
    assert_eq!(long.await.unwrap(), busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_pass_both_ways_through_an_upgrade() {
    let ws = zkgate_testkit::websocket::WebSocketServer::start("ws").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    timeouts: {{ tunnel: 2s }}\n    servers: {}\n",
        servers(&[(ws.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let answers = zkgate_testkit::websocket::echo(
        ([127, 0, 0, 1], port).into(),
        "/chat",
        &["hello", "again"],
    )
    .await
    .unwrap();
    assert_eq!(answers, ["ws: hello", "ws: again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_style_h2_request_with_trailers_round_trips_via_protocol_http2() {
    let grpc = zkgate_testkit::grpc::GrpcServer::start().await;
    let port = free_port();
    let config = format!(
        "frontends:\n  grpc:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: grpc\nbackends:\n  grpc:\n    protocol: http2\n    servers: {}\n",
        servers(&[(grpc.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    for _ in 0..3 {
        let reply = zkgate_testkit::grpc::call(([127, 0, 0, 1], port).into(), b"0123456789")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "received 10 bytes");
        assert_eq!(reply.headers.get("x-saw-te-trailers").unwrap(), "yes");
        let trailers = reply.trailers.expect("trailers reach the client");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(trailers.get("grpc-message").unwrap(), "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_by_http1_backends_too() {
    let s = HttpServer::start("plain").await;
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &config(port, "roundrobin", &[&s])).await;
    let reply = zkgate_testkit::grpc::call(([127, 0, 0, 1], port).into(), b"x")
        .await
        .unwrap();
    assert_eq!((reply.status, &reply.body[..]), (200, &b"plain"[..]));
}
