//! Hostile and broken clients: request smuggling attempts are refused with
//! 400 and the connection closed (the catalogue follows HAProxy's
//! http_transfer_encoding cases and common TE mutations), and slow clients
//! cannot starve others.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zkgate_testkit::{free_port, http_get, raw_exchange, HttpServer, Zkgate};

use common::*;

async fn start() -> (HttpServer, Zkgate, SocketAddr) {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n    timeouts: {{ client_header: 1s }}\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    (server, zkgate, ([127, 0, 0, 1], port).into())
}

/// Every request here must get a 400 and a closed connection, and never reach the server.
const SMUGGLING: &[(&str, &str)] = &[
    ("two different Content-Lengths", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
    ("a Content-Length list", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde"),
    ("chunked, chunked", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("chunked not last", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("an unknown coding", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("a space before the colon", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("an obsolete line fold", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("a bare LF in a chunk size", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nA\r\n0\r\n\r\n"),
    ("an invalid header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"),
    ("a control character in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n"),
    ("a negative Content-Length", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    ("an invalid chunk size", "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nA\r\n0\r\n\r\n"),
    ("HTTP/1.0 with chunked", "POST /upload HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("CONNECT to a host", "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_attempts_get_400_and_a_closed_connection() {
    let (server, _zkgate, addr) = start().await;
    let mut failures = Vec::new();
    for (case, request) in SMUGGLING {
        let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
            .await
            .unwrap();
        let status_ok = answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400");
        // Exactly one response: nothing smuggled after it.
        let responses = answer.matches("HTTP/1.").count();
        if !status_ok || responses != 1 {
            failures.push(format!(
                "{case}: {:?}",
                answer.lines().next().unwrap_or("<closed without answer>")
            ));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    assert_eq!(
        server.requests(),
        0,
        "a malformed request reached the server"
    );
}

/// With both `Content-Length` and `Transfer-Encoding: chunked`, the length is
/// dropped and chunked framing wins (RFC 9112 §6.1, what an intermediary
/// must do): zkgate and the server read the same, empty body, so no request
/// can hide inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_beside_chunked_is_dropped_so_both_sides_agree() {
    let (_server, _zkgate, addr) = start().await;
    let request = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    let answer = raw_exchange(addr, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The server counted a 0-byte body, as zkgate did.
    let empty = zkgate_testkit::http_server::Checksum::default().summary();
    assert!(answer.ends_with(&empty), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_time_out_while_others_are_served() {
    let (_server, zkgate, addr) = start().await;
    // 200 clients that send a partial head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Meanwhile an ordinary client is served at once.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(http_get(addr, "/").await.unwrap().status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "served in {:?}",
            started.elapsed()
        );
    }
    // Each slow client gets 408 after client_header (1 s) and is closed.
    let started = Instant::now();
    for mut stream in slow {
        let mut answer = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer),
        )
        .await
        .expect("a slow client was never closed")
        .ok();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The gauge drops just after each connection's last write: poll for it.
    zkgate_testkit::wait_until(
        "every slow connection to be released",
        Duration::from_secs(5),
        || async {
            let active = zkgate
                .metric(r#"zkgate_frontend_active_connections{frontend="web"}"#)
                .await;
            (active == Some(0.0)).then_some(())
        },
    )
    .await;
}
