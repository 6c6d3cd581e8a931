//! End to end through the binary: the HTTP/1.1 reverse proxy.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use zkgate_testkit::http_server::{pattern, Checksum};
use zkgate_testkit::{free_port, http_get, http_request, raw_exchange, HttpServer, Zkgate};

use common::{dead_addr, servers, web_config, ZKGATE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_three_servers_in_weight_ratio() {
    let (a, b, c) = (
        HttpServer::start("a").await,
        HttpServer::start("b").await,
        HttpServer::start("c").await,
    );
    let port = free_port();
    let config = web_config(port, &servers(&[(a.addr, 3), (b.addr, 2), (c.addr, 1)]));
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut sequence = Vec::new();
    // Ten full cycles of 3 + 2 + 1.
    for _ in 0..60 {
        let reply = http_get(addr, "/").await.unwrap();
        assert_eq!(reply.status, 200);
        sequence.push(reply.text());
        *counts.entry(reply.text()).or_default() += 1;
    }
    assert_eq!(counts["a"], 30, "{counts:?}");
    assert_eq!(counts["b"], 20, "{counts:?}");
    assert_eq!(counts["c"], 10, "{counts:?}");
    // Smooth: the heaviest server never gets more than 2 in a row with weights 3:2:1.
    let longest_run = sequence
        .chunk_by(|x, y| x == y)
        .map(<[String]>::len)
        .max()
        .unwrap();
    assert!(longest_run <= 2, "bursty sequence: {sequence:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_path_and_header_routes_pick_their_backend() {
    let (api, canary, web) = (
        HttpServer::start("api").await,
        HttpServer::start("canary").await,
        HttpServer::start("web").await,
    );
    let port = free_port();
    let config = format!(
        r#"frontends:
  main:
    bind: ["127.0.0.1:{port}"]
    routes:
      - {{ host: api.example.com, path_prefix: /v1, backend: api }}
      - {{ host: "*.example.com", headers: {{ x-canary: "1" }}, backend: canary }}
    default_backend: web
backends:
  api: {{ servers: {} }}
  canary: {{ servers: {} }}
  web: {{ servers: {} }}
"#,
        servers(&[(api.addr, 1)]),
        servers(&[(canary.addr, 1)]),
        servers(&[(web.addr, 1)]),
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let ask = |host: &'static str, path: &'static str, canary: bool| async move {
        let mut request = Request::get(path).header("host", host);
        if canary {
            request = request.header("x-canary", "1");
        }
        http_request(addr, request.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap()
            .text()
    };
    assert_eq!(ask("api.example.com", "/v1/users", false).await, "api");
    assert_eq!(ask("API.example.com:8080", "/v1", false).await, "api");
    assert_eq!(ask("api.example.com", "/v2", false).await, "web");
    assert_eq!(ask("shop.example.com", "/", true).await, "canary");
    assert_eq!(ask("api.example.com", "/v2", true).await, "canary");
    assert_eq!(ask("shop.example.com", "/", false).await, "web");
    assert_eq!(ask("example.org", "/v1", true).await, "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_502_for_a_dead_server_503_for_none_and_504_for_a_slow_one() {
    let slow = HttpServer::start("slow").await;
    let port = free_port();
    let config = format!(
        r#"frontends:
  main:
    bind: ["127.0.0.1:{port}"]
    routes:
      - {{ path_prefix: /dead, backend: dead }}
      - {{ path_prefix: /none, backend: empty }}
    default_backend: slow
backends:
  dead: {{ retries: 0, servers: {} }}
  empty: {{ servers: [] }}
  slow:
    timeouts: {{ server: 300ms }}
    servers: {}
"#,
        servers(&[(dead_addr(), 1)]),
        servers(&[(slow.addr, 1)]),
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let dead = http_get(addr, "/dead").await.unwrap();
    assert_eq!(dead.status, 502);
    assert_eq!(dead.text(), "bad gateway\n");
    assert_eq!(http_get(addr, "/none").await.unwrap().status, 503);
    let started = std::time::Instant::now();
    assert_eq!(http_get(addr, "/delay/3000").await.unwrap().status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "504 took {:?}",
        started.elapsed()
    );
    assert_eq!(http_get(addr, "/delay/10").await.unwrap().status, 200);

    assert_eq!(
        zkgate
            .metric(r#"zkgate_backend_responses_total{backend="dead",code="5xx"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_backend_connect_errors_total{backend="dead"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_backend_no_server_total{backend="empty"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_backend_responses_total{backend="slow",code="2xx"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_requests_total{frontend="main"}"#)
            .await,
        Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_on_another_server() {
    let live = HttpServer::start("live").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    retries: 1\n    servers: {}\n",
        servers(&[(dead_addr(), 1), (live.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    for _ in 0..6 {
        let reply = http_get(addr, "/").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "live")
        );
    }
    assert!(
        zkgate
            .metric(r#"zkgate_backend_retries_total{backend="web"}"#)
            .await
            >= Some(3.0)
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_body_streams_through_both_ways_unchanged_in_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let server = HttpServer::start("bulk").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let rss_before = peak_rss_kib(zkgate.pid());

    // Download: streamed by the server, checked here.
    let reply = http_get(addr, &format!("/download/{SIZE}")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len() as u64, SIZE);
    assert!(
        reply
            .body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(i as u64)),
        "download corrupted"
    );
    drop(reply);

    // Upload: a streamed chunked body; the server answers with its checksum.
    let (sender, body) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::convert::Infallible>>(4);
    let mut expected = Checksum::default();
    let chunks: Vec<Bytes> = (0..SIZE / (1 << 20))
        .map(|c| Bytes::from((c << 20..(c + 1) << 20).map(pattern).collect::<Vec<u8>>()))
        .collect();
    for chunk in &chunks {
        expected.update(chunk);
    }
    let feeder = tokio::spawn(async move {
        for chunk in chunks {
            if sender
                .send(Ok(http_body::Frame::data(chunk)))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/upload")
        .header("host", "localhost")
        .body(http_body_util::StreamBody::new(tokio_stream_of(body)))
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    feeder.await.unwrap();
    assert_eq!(String::from_utf8_lossy(&answer), expected.summary());

    let grown_mib = peak_rss_kib(zkgate.pid()).saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 32,
        "zkgate's peak memory grew by {grown_mib} MiB while streaming 2 x 100 MiB"
    );
}

/// An mpsc receiver as a `Stream` of body frames.
fn tokio_stream_of<T>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_removed() {
    let server = HttpServer::start("h").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let request = Request::get("/headers")
        .header("host", "shop.example.com")
        .header("x-forwarded-for", "192.0.2.7")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("proxy-connection", "keep-alive")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let seen = http_request(([127, 0, 0, 1], port).into(), request)
        .await
        .unwrap()
        .text();
    assert!(
        seen.contains("x-forwarded-for: 192.0.2.7, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-host: shop.example.com\n"),
        "{seen}"
    );
    assert!(seen.contains("host: shop.example.com\n"), "{seen}");
    assert!(!seen.contains("x-private"), "{seen}");
    assert!(!seen.contains("proxy-connection"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_slow_requests_get_400_431_and_408() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n    timeouts: {{ client_header: 400ms, client_idle: 600ms }}\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let wait = Duration::from_secs(5);

    let malformed = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
        wait,
    )
    .await
    .unwrap();
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let too_large = raw_exchange(addr, huge.as_bytes(), wait).await.unwrap();
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");

    let started = std::time::Instant::now();
    let slow = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n", wait)
        .await
        .unwrap();
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "408 after {:?}",
        started.elapsed()
    );

    // A complete request is served, then the idle keep-alive connection is closed quietly.
    let started = std::time::Instant::now();
    let idle = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", wait)
        .await
        .unwrap();
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    assert!(!idle.contains("408"), "{idle}");
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(500) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused_on_both_sides() {
    let server = HttpServer::start("k").await;
    let port = free_port();
    let config = web_config(port, &servers(&[(server.addr, 1)]));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut client, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for _ in 0..20 {
        client.ready().await.unwrap();
        let request = Request::get("/")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
    }
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_connections_total{frontend="web"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(server.requests(), 20);
    // A client connection stays on the worker thread that accepted it, so
    // its requests all find the server connection the one before left.
    assert_eq!(
        server.connections(),
        1,
        "server connections for 20 requests on one client connection"
    );
}
