//! Protocol switches, from HAProxy's `reg-tests/http-messaging`
//! (`protocol_upgrade.vtc`, `websocket.vtc`, `srv_ws.vtc`), ported with
//! HAProxy's expectations: an HTTP/1.1 `Upgrade` and an HTTP/2 extended
//! `CONNECT` (RFC 8441) are translated into each other, WebSocket keys
//! included. Each test names its client (`c1`, …).

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::websocket::{accept_key, WebSocketClient, WebSocketServer};
use zkgate_testkit::websocket_h2::{connect_over_h2, H2WebSocketServer};
use zkgate_testkit::{Answer, RecordingOrigin};

use common::*;

const WAIT: Duration = Duration::from_secs(5);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The head of zkgate's answer to a raw HTTP/1.1 request, lowercased.
async fn head_for(addr: std::net::SocketAddr, request: &str) -> String {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, client.read(&mut chunk)).await;
        match read.expect("an answer in time").unwrap() {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

fn upgrade_to(protocol: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n"
    )
}

fn switches_to_custom_protocol(head: &str) -> Answer {
    let lower = head.to_ascii_lowercase();
    if lower.contains("connection: upgrade") && lower.contains("upgrade: custom_protocol") {
        return Answer::bytes(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: custom_protocol\r\n\r\n",
        );
    }
    Answer::bytes(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
}

/// `protocol_upgrade.vtc` `c4_h1`: HTTP/1.1 on both sides, a protocol
/// zkgate knows nothing of passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_upgrade_c4_h1_to_h1() {
    let origin = RecordingOrigin::start(switches_to_custom_protocol).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let answer = head_for(addr, &upgrade_to("custom_protocol")).await;
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(answer.contains("connection: upgrade"), "{answer}");
    assert!(answer.contains("upgrade: custom_protocol"), "{answer}");
}

/// `protocol_upgrade.vtc` `c2_h2`, `c3_h2_h1`: an HTTP/2 client's extended
/// CONNECT reaches an HTTP/1.1 server as a `GET` with `Upgrade`, and its
/// `101` reaches the client as a `200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_upgrade_c2_c3_h2_to_h1() {
    let origin = RecordingOrigin::start(switches_to_custom_protocol).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let (response, _) = connect_over_h2(addr, "/", "custom_protocol").await.unwrap();
    assert_eq!(response.status(), 200);
    let head = origin.received().to_ascii_lowercase();
    assert!(head.starts_with("get / http/1.1\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("upgrade: custom_protocol\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
}

/// `protocol_upgrade.vtc` `c1_h1_h2`: an HTTP/1.1 `Upgrade` reaches an
/// HTTP/2 server that takes extended CONNECT as one (`:protocol`), and
/// its `200` reaches the client as a `101`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_upgrade_c1_h1_to_h2() {
    let server = H2WebSocketServer::start("s", true).await;
    let (zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let answer = head_for(addr, &upgrade_to("custom_protocol")).await;
    assert!(
        answer.starts_with("http/1.1 101"),
        "{answer} {}",
        zkgate.log()
    );
    assert!(answer.contains("connection: upgrade"), "{answer}");
    assert!(answer.contains("upgrade: custom_protocol"), "{answer}");
    assert!(answer.contains("x-protocol: custom_protocol"), "{answer}");
}

/// `protocol_upgrade.vtc` `c5`, `c6`: an HTTP/2 server that does not
/// announce extended CONNECT gets none; the client gets a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_upgrade_c5_c6_h2_server_without_rfc_8441() {
    let server = H2WebSocketServer::start("s", false).await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    for _ in 0..2 {
        // A new connection, then the one zkgate kept.
        let answer = head_for(addr, &upgrade_to("custom_protocol")).await;
        assert!(answer.starts_with("http/1.1 502"), "{answer}");
    }
}

/// `websocket.vtc` `c1`–`c3`, HTTP/1.1 on both sides: the handshake and
/// frames pass; a handshake without a key is a 400; a server's `101`
/// without `Sec-WebSocket-Accept` a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_c1_c2_c3_h1() {
    let server = WebSocketServer::start("s").await;
    let (_zkgate, addr) = zkgate_in_front_of(server.addr).await;
    let answers = zkgate_testkit::websocket::echo(addr, "/", &["hi"])
        .await
        .unwrap();
    assert_eq!(answers, ["s: hi"]);
    let answer = head_for(addr, &upgrade_to("websocket")).await;
    assert!(answer.starts_with("http/1.1 400"), "c2: {answer}");

    let keyless = RecordingOrigin::start(|_| {
        Answer::bytes(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
    })
    .await;
    let (_zkgate, addr) = zkgate_in_front_of(keyless.addr).await;
    let request = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: {KEY}\r\n\r\n"
    );
    let answer = head_for(addr, &request).await;
    assert!(answer.starts_with("http/1.1 502"), "c3: {answer}");
}

/// Answers a WebSocket handshake with `accept` (`None`: the right one).
fn accepts_with(head: &str, accept: Option<&str>) -> Answer {
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("sec-websocket-key: "))
        .or_else(|| {
            head.lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        });
    let Some(key) = key else {
        return Answer::bytes(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    };
    let accept = accept.map_or_else(|| accept_key(key.trim()), str::to_owned);
    Answer::bytes(
        format!("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept}\r\n\r\n")
            .as_bytes(),
    )
}

/// `websocket.vtc` `c4`, `c5`: an HTTP/2 client's WebSocket reaches an
/// HTTP/1.1 server with a key zkgate chose, and zkgate checks the
/// server's accept: the right one switches (and frames pass both ways),
/// a wrong one is a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_c4_c5_h2_client_h1_server() {
    let server = WebSocketServer::start("s").await;
    let (_zkgate, addr) = zkgate_in_front_of(server.addr).await;
    let (response, client) = connect_over_h2(addr, "/chat", "websocket").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("sec-websocket-accept").is_none());
    let mut client = client.expect("a switched stream");
    assert_eq!(
        client.exchange("hello").await.unwrap().as_deref(),
        Some("s: hello")
    );
    assert_eq!(
        client.exchange("again").await.unwrap().as_deref(),
        Some("s: again")
    );

    let right = RecordingOrigin::start(|head| accepts_with(head, None)).await;
    let (_zkgate, addr) = zkgate_in_front_of(right.addr).await;
    let (response, _) = connect_over_h2(addr, "/", "websocket").await.unwrap();
    assert_eq!(response.status(), 200, "c4");
    let head = right.received().to_ascii_lowercase();
    assert!(head.contains("sec-websocket-key: "), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");

    let wrong = RecordingOrigin::start(|head| accepts_with(head, Some("invalid_key"))).await;
    let (_zkgate, addr) = zkgate_in_front_of(wrong.addr).await;
    let (response, client) = connect_over_h2(addr, "/", "websocket").await.unwrap();
    assert_eq!(response.status(), 502, "c5");
    assert!(client.is_none());
}

/// `srv_ws.vtc` `c1.2`, `c1.4` (a WebSocket to an HTTP/2 backend goes over
/// HTTP/2) and `c1`, `c1.3` (to an HTTP/1.1 backend, over HTTP/1.1). The
/// HTTP/2 server sees no key (RFC 8441 §5), so zkgate answers the client's
/// key itself; frames pass both ways. HAProxy's per-server `ws` keyword
/// and ALPN choice (`c2`–`c2.3`) have no counterpart: a zkgate backend's
/// protocol is configured, and switches follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_ws_websocket_follows_the_backend_protocol() {
    let h2 = H2WebSocketServer::start("h2", true).await;
    let (_zkgate, addr) = zkgate_in_front_of_h(h2.addr, "http2").await;
    let request = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: {KEY}\r\n\r\n"
    );
    let answer = head_for(addr, &request).await;
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(answer.contains("x-backend-protocol: 2.0"), "{answer}");
    assert!(
        answer.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{answer}"
    );
    // The test client checks the accept and talks through the tunnel.
    let mut client = WebSocketClient::connect(addr, "/").await.unwrap();
    assert_eq!(
        client.exchange("one").await.unwrap().as_deref(),
        Some("h2: one")
    );

    let h1 = WebSocketServer::start("h1").await;
    let (_zkgate, addr) = zkgate_in_front_of(h1.addr).await;
    let mut client = WebSocketClient::connect(addr, "/").await.unwrap();
    assert_eq!(
        client.exchange("one").await.unwrap().as_deref(),
        Some("h1: one")
    );
}

/// An HTTP/2 client's extended CONNECT gets the server's interim answers
/// (here an early hint before the `101`) as HEADERS before its `200`, as
/// any other request does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_answer_before_the_switch_reaches_an_http2_client() {
    use zkgate_testkit::h2_frames::*;
    let origin = RecordingOrigin::start(|_head: &str| {
        Answer::bytes(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: custom_protocol\r\n\r\n",
        )
    })
    .await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    // Extended CONNECT waits for the server's SETTINGS (RFC 8441 §3).
    while let Some(frame) = h2.next_frame(WAIT).await {
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            break;
        }
    }
    let fields = [
        (":method", "CONNECT"),
        (":protocol", "custom_protocol"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "a"),
    ];
    h2.send(&frame(HEADERS, END_HEADERS, 1, &header_block(&fields)))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    while let Some(frame) = h2.next_frame(WAIT).await {
        if frame.stream != 1 || frame.kind != HEADERS {
            continue;
        }
        let head = h2.decode(&frame.payload);
        let status = head.iter().find(|(name, _)| name == ":status").cloned();
        statuses.push(status.map(|(_, value)| value).unwrap_or_default());
        if statuses.last().is_some_and(|s| !s.starts_with('1')) {
            break;
        }
    }
    assert_eq!(statuses, ["103", "200"]);
}
