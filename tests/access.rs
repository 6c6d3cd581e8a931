//! Access lists, per-client rate limits and connection limits.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::AsyncReadExt;
use zkgate_testkit::{free_port, http_get, HttpServer, TcpServer, Zkgate};

use common::*;

/// A GET from a chosen loopback source address.
async fn get_from(
    source: [u8; 4],
    addr: SocketAddr,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// Whether zkgate closed a fresh connection without a byte.
async fn closed_at_once(addr: SocketAddr) -> bool {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buffer = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_networks_get_403_on_http_and_a_closed_connection_on_tcp() {
    let (web, echo) = (HttpServer::start("w").await, TcpServer::start("e").await);
    let (http_port, tcp_port) = (free_port(), free_port());
    let config = format!(
        r#"frontends:
  web:
    bind: ["127.0.0.1:{http_port}"]
    routes:
      - {{ path_prefix: /admin, backend: web, access: {{ allow: ["10.0.0.0/8"] }} }}
    default_backend: web
  db:
    bind: ["127.0.0.1:{tcp_port}"]
    mode: tcp
    access: {{ deny: ["127.0.0.0/8"] }}
    default_backend: db
backends:
  web: {{ servers: {} }}
  db: {{ mode: tcp, servers: {} }}
"#,
        servers(&[(web.addr, 1)]),
        servers(&[(echo.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let http = ([127, 0, 0, 1], http_port).into();
    assert_eq!(http_get(http, "/").await.unwrap().status, 200);
    let denied = http_get(http, "/admin/users").await.unwrap();
    assert_eq!(
        (denied.status.as_u16(), denied.text().as_str()),
        (403, "forbidden\n")
    );
    assert!(closed_at_once(([127, 0, 0, 1], tcp_port).into()).await);
    assert_eq!(echo.connections(), 0);
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="web",reason="access"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="db",reason="access"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_while_another_is_unaffected() {
    let web = HttpServer::start("w").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    rate_limit: {{ requests_per_second: 1, burst: 4 }}\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(web.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get_from([127, 0, 0, 2], addr, "/").await.status().as_u16());
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    // 1/s + a burst of 4: about five pass at first, the rest wait.
    assert!((4..=6).contains(&(10 - limited)), "{statuses:?}");
    assert_eq!(
        get_from([127, 0, 0, 3], addr, "/").await.status(),
        200,
        "another client was limited too"
    );
    let reply = get_from([127, 0, 0, 2], addr, "/").await;
    if reply.status() == 429 {
        assert!(reply.headers().get("retry-after").is_some());
    }
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="web",reason="rate_limit"}"#)
            .await,
        Some((limited + usize::from(reply.status() == 429)) as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_its_connection_limit_is_closed() {
    let echo = TcpServer::start("e").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  db:\n    bind: [\"127.0.0.1:{port}\"]\n    mode: tcp\n    max_connections_per_client: 2\n    default_backend: db\nbackends:\n  db:\n    mode: tcp\n    servers: {}\n",
        servers(&[(echo.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
    zkgate_testkit::wait_until(
        "two connections to reach the server",
        Duration::from_secs(5),
        || async { (echo.connections() == 2).then_some(()) },
    )
    .await;
    assert!(closed_at_once(addr).await);
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="db",reason="max_connections"}"#)
            .await,
        Some(1.0)
    );
}
