//! Request and response bodies, from HAProxy's `reg-tests/http-messaging`
//! (`http_request_buffer.vtc`, `http_msg_full_on_eom.vtc`,
//! `http_splicing.vtc`), ported to raw sockets with HAProxy's
//! expectations. zkgate streams bodies (it has no `http-buffer-request`):
//! where that changes what the server sees, the test says so.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::{free_port, http_request, Answer, RecordingOrigin, Zkgate};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

/// zkgate (one worker) in front of `server`, its frontend's
/// `client_idle` and its backend's `server` timeout as given.
async fn zkgate_timed(
    server: std::net::SocketAddr,
    client_idle: &str,
    server_wait: &str,
) -> (Zkgate, std::net::SocketAddr) {
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n    timeouts: {{ client_idle: {client_idle} }}\nbackends:\n  web:\n    timeouts: {{ server: {server_wait} }}\n    servers: {}\n",
        servers(&[(server, 1)])
    );
    let zkgate = Zkgate::start_with_env(ZKGATE, &config, &[("ZKGATE_WORKERS", "1")]).await;
    (zkgate, ([127, 0, 0, 1], port).into())
}

/// Everything zkgate sends on `client` until it closes it (within `WAIT`).
async fn read_to_close(client: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "zkgate kept the connection open: {}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// `http_request_buffer.vtc` `c1`, `c2`. A body one byte short that
/// stops coming gets a 408 once the frontend's `client_idle` passes (HAProxy's
/// `timeout client`), and the connection closes; the next client's whole
/// body reaches the server. zkgate streams, so the server saw the first
/// request's head and the bytes that came (HAProxy, buffering, sends it
/// nothing), and that server connection is closed, not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_buffer_c1_c2_a_stalled_body_is_a_408() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_timed(origin.addr, "300ms", "30s").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let long_url = "/this-is-a-long-url".repeat(7);
    let head = format!("GET {long_url} HTTP/1.1\r\nContent-Length: 209\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..8 {
        client
            .write_all(b"abcdefghijklmnopqrstuvwxyz")
            .await
            .unwrap();
    }
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    let request = http::Request::post("/")
        .header("host", "a")
        .body(Full::new(Bytes::from(vec![b'x'; 257])))
        .unwrap();
    let reply = http_request(addr, request).await.unwrap();
    assert_eq!(reply.status, 200, "c2");
    assert!(origin.received().contains(&"x".repeat(257)));
    assert_eq!(
        origin.connections(),
        2,
        "the stalled request's connection was not reused"
    );
}

/// `http_request_buffer.vtc` `c3`, `c4`: a chunked body sent in two parts
/// split inside a chunk (and a request line with two spaces before the
/// version, which HAProxy accepts too) is served; one whose client leaves
/// before its last CRLF gets nothing, and the next client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_buffer_c3_c4_chunked_bodies_in_parts() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_timed(origin.addr, "10s", "30s").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /1  HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await; // As HAProxy's `delay 0.01`.
    client.write_all(b"\r\n1\r\n0\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, client.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "c3: {answer}");
    // The server gets a request line of single spaces (hyper writes it
    // anew), so no server can read the doubled one otherwise.
    assert!(
        origin.received().contains("POST /1 HTTP/1.1\r\n"),
        "{}",
        origin.received()
    );

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /2  HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n1")
        .await
        .unwrap();
    client.write_all(b"\r\n1\r\n0\r\n").await.unwrap();
    drop(client);
    let reply = zkgate_testkit::http_get(addr, "/3").await.unwrap();
    assert_eq!(reply.status, 200);
}

/// A legitimate upload slower than the backend's `timeouts.server`: the
/// server's wait counts from the end of the body, so it is served, where a
/// timer from the request's start would have answered 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_server_timeout_is_served() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_timed(origin.addr, "10s", "500ms").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await; // A slow uploader, 1.2 s in all.
        client.write_all(b"ab").await.unwrap();
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, client.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn answers_15220(_: &str) -> Answer {
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 15220\r\n\r\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'r', 15220));
    Answer::bytes(&bytes)
}

/// `http_msg_full_on_eom.vtc` `c1`: a body that fills a 16 KiB buffer
/// to its last bytes, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_msg_full_on_eom_c1() {
    let origin = RecordingOrigin::start(answers_15220).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let request = http::Request::get("/")
        .header("host", "a")
        .body(Full::new(Bytes::from(vec![b'q'; 15200])))
        .unwrap();
    let reply = http_request(addr, request).await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.len()), (200, 15220));
    assert!(origin.received().contains(&"q".repeat(15200)));
}

const MIB: usize = 1024 * 1024;

fn answers_a_mib(head: &str) -> Answer {
    let stated = path_of(head) == "/stated";
    let mut bytes = if stated {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {MIB}\r\n\r\n").into_bytes()
    } else {
        b"HTTP/1.1 200 OK\r\n\r\n".to_vec()
    };
    bytes.extend(std::iter::repeat_n(b'm', MIB));
    let mut answer = Answer::bytes(&bytes);
    // Without a length, the body ends where the server closes.
    answer.close = !stated;
    answer
}

/// `http_splicing.vtc` `c1`, `c2`: 1 MiB each way with a stated length,
/// then 1 MiB a server ends by closing (no length: the client gets it
/// whole, without a `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_splicing_c1_c2_a_mib_each_way() {
    let origin = RecordingOrigin::start(answers_a_mib).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let request = http::Request::post("/stated")
        .header("host", "a")
        .body(Full::new(Bytes::from(vec![b'u'; MIB])))
        .unwrap();
    let reply = http_request(addr, request).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("1048576"));
    assert_eq!(reply.body.len(), MIB);
    assert!(origin
        .received()
        .contains(&format!("content-length: {MIB}\r\n")));

    let reply = zkgate_testkit::http_get(addr, "/unstated").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.body.len(), MIB);
}

/// The `h2_trailers.vtc` rule (`c4_*`) over HTTP/1.1: chunked trailers
/// that name a field framing or routing the message get a 400 and the
/// connection closed; the trailer never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_trailers_that_frame_or_route_are_refused() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for trailer in [
        "Host: admin.example",
        "Content-Length: 5",
        "Transfer-Encoding: chunked",
    ] {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n{trailer}\r\n\r\n"
        );
        client.write_all(request.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{trailer}: {answer}");
    }
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(WAIT, client.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert!(!origin.received().contains("admin.example"));
}
