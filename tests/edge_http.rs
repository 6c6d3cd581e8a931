//! Framing an attacker or a broken server could turn against the
//! connection's neighbours: each case is raw bytes over sockets, with an
//! origin that answers with exact bytes and records what it received, on
//! both the fast path (bodiless requests) and hyper's path (requests with a
//! body), and over HTTP/2 where it applies.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zkgate_testkit::{free_port, raw_exchange, read_until_ending, Answer, RecordingOrigin, Zkgate};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

/// Two requests on one client connection: `first` (GET or POST /first)
/// then `GET /second`, pipelined; the last asks to close.
fn pipelined(post_first: bool) -> Vec<u8> {
    let first: &[u8] = if post_first {
        b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    } else {
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
    };
    [
        first,
        b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ]
    .concat()
}

/// Splits what a client received into responses by their status lines.
fn responses(answer: &str) -> Vec<&str> {
    let starts: Vec<usize> = answer.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &answer[start..starts.get(n + 1).copied().unwrap_or(answer.len())])
        .collect()
}

fn names_its_framing_in_connection(head: &str) -> Answer {
    if head.contains("/second") {
        return Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
    }
    Answer::bytes(if head.contains("chunked-case") {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_header_never_strips_a_responses_framing() {
    let origin = RecordingOrigin::start(names_its_framing_in_connection).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for post_first in [false, true] {
        let answer = raw_exchange(addr, &pipelined(post_first), WAIT)
            .await
            .unwrap();
        let answers = responses(&answer);
        assert_eq!(answers.len(), 2, "{answer}");
        let first = answers[0].to_ascii_lowercase();
        assert!(first.contains("content-length: 5\r\n"), "{answer}");
        assert!(first.ends_with("\r\n\r\nhello"), "{answer}");
        assert!(answers[1].ends_with("second"), "{answer}");
    }
    // The same with chunked framing named in Connection.
    let answer = raw_exchange(
        addr,
        b"GET /chunked-case HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    let answers = responses(&answer);
    assert_eq!(answers.len(), 2, "{answer}");
    assert!(
        answers[0]
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkgates_own_answers_to_head_have_no_body() {
    // No server listens: every request gets zkgate's own 502.
    let (_zkgate, addr) = zkgate_in_front_of(dead_addr()).await;
    let answer = raw_exchange(
        addr,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    let answers = responses(&answer);
    assert_eq!(answers.len(), 2, "{answer}");
    // The HEAD answer ends with its head: the next response follows at once.
    assert!(answers[0].ends_with("\r\n\r\n"), "{answer}");
    assert!(answers[0].contains("content-length: 12"), "{answer}");
    assert!(answers[1].ends_with("bad gateway\n"), "{answer}");

    // Over HTTP/2, the HEAD stream carries no DATA.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::head("http://a/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 502);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty(), "{body:?}");
}

fn says_too_much_after_head(head: &str) -> Answer {
    if head.starts_with("HEAD") {
        // A HEAD answer, then (as a broken server might) the body after all.
        return Answer {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            later: Some((
                Duration::from_millis(50),
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison".to_vec(),
            )),
            ..Answer::default()
        };
    }
    Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_after_a_head_answer_is_never_reused() {
    let origin = RecordingOrigin::start(says_too_much_after_head).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for post in [false, true] {
        let head = raw_exchange(
            addr,
            b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            WAIT,
        )
        .await
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let request: &[u8] = if post {
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        } else {
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        };
        let answer = raw_exchange(addr, request, WAIT).await.unwrap();
        assert!(answer.ends_with("\r\n\r\nmine"), "{answer}");
        assert!(!answer.contains("poison"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_two_hosts_is_refused_before_any_server_sees_it() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\nContent-Length: 1\r\n\r\nx",
        b"GET http://public.example/ HTTP/1.1\r\nHost: admin.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: public.example\r\nhost: public.example\r\n\r\n",
    ];
    for request in cases {
        let answer = raw_exchange(addr, request, WAIT).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
    // Agreeing names are fine.
    let answer = raw_exchange(
        addr,
        b"GET http://Public.example/ HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Only the agreeing request reached the server.
    assert_eq!(
        origin.received().matches("HTTP/1.1\r\n").count(),
        1,
        "{}",
        origin.received()
    );

    // HTTP/2: `:authority` is the host; a `host` beside it is not read, and
    // the server gets the authority (as HAProxy's h2_desync_attacks c6).
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("http://public.example/h2")
        .header("host", "admin.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let received = origin.received().to_ascii_lowercase();
    let h2 = &received[received.find("get /h2").unwrap()..];
    assert!(h2.contains("host: public.example"), "{h2}");
    assert!(!h2.contains("admin.example"), "{h2}");
    // Two `host`s and no `:authority` over HTTP/2: 400.
    let request = http::Request::get("/h2-two-hosts")
        .header("host", "public.example")
        .header("host", "admin.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(refused_over_h2(&mut sender, request).await);
    assert!(!origin.received().contains("h2-two-hosts"));
}

fn switches_protocols(head: &str) -> Answer {
    let lower = head.to_ascii_lowercase();
    let accept = if lower.contains("/no-accept") {
        ""
    } else {
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    };
    if lower.contains("upgrade: websocket") || lower.contains("upgrade: h2c") {
        let bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{accept}\r\n"
        );
        return Answer {
            bytes: bytes.into_bytes(),
            before_body: lower.contains("/early"),
            ..Answer::default()
        };
    }
    answers_ok(head)
}

const WEBSOCKET: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_switches_are_granted_only_as_the_rfcs_describe_them() {
    let origin = RecordingOrigin::start(switches_protocols).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let ask = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n{extra}\r\n").into_bytes()
    };
    // A proper WebSocket handshake switches.
    let answer = raw_exchange(addr, &ask("/ws", WEBSOCKET), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    // No key, or two protocols: 400, and the server never hears of it.
    let keyless = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let two = "Connection: Upgrade\r\nUpgrade: websocket, foo\r\nSec-WebSocket-Key: a2V5\r\n";
    for (path, extra) in [("/keyless", keyless), ("/two", two)] {
        let answer = raw_exchange(addr, &ask(path, extra), WAIT).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(!origin.received().contains(path), "{path}");
    }
    // A 101 without Sec-WebSocket-Accept completes no switch: 502.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(&ask("/no-accept", WEBSOCKET))
        .await
        .unwrap();
    let answer = read_until_ending(&mut client, b"bad gateway\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    // A 101 before the request's body was all sent: 502. (The client
    // sends the head and a tenth of the body, and waits.)
    let mut client = TcpStream::connect(addr).await.unwrap();
    let early = format!(
        "POST /early HTTP/1.1\r\nHost: a\r\n{WEBSOCKET}Content-Length: 100\r\n\r\n{}",
        "x".repeat(10)
    );
    client.write_all(early.as_bytes()).await.unwrap();
    let answer = read_until_ending(&mut client, b"bad gateway\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    // h2c upgrades are not granted: the request goes on as an ordinary one,
    // without its Upgrade (zkgate speaks h2c to clients that start with it).
    let h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    let answer = raw_exchange(
        addr,
        &ask("/h2c", &format!("{h2c}Connection: close\r\n")),
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let received = origin.received().to_ascii_lowercase();
    let h2c_request = &received[received.find("get /h2c").unwrap()..];
    assert!(!h2c_request.contains("upgrade"), "{h2c_request}");
}

type H2Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// An HTTP/2 connection to zkgate (h2c with prior knowledge).
async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<H2Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_reach_http1_servers_with_their_framing_decided_once() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut sender = h2c(addr).await;

    // A GET with a body and no content-length: forwarded chunked, not dropped.
    // (A stream of frames: its size is not known, so no content-length.)
    let frames =
        futures_util::stream::iter([Ok(http_body::Frame::data(Bytes::from_static(b"payload")))]);
    let request = http::Request::get("http://a/get-with-body")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    zkgate_testkit::wait_until("the body at the server", WAIT, || async {
        let received = origin.received().to_ascii_lowercase();
        let request = &received[received.find("get /get-with-body")?..];
        (request.contains("transfer-encoding: chunked")
            && request.contains("7\r\npayload\r\n0\r\n"))
        .then_some(())
    })
    .await;

    // An empty content-length never reaches an HTTP/1.1 server.
    let request = http::Request::post("http://a/empty-length")
        .header("content-length", "")
        .body(http_body_util::Full::new(Bytes::new()).boxed())
        .unwrap();
    assert!(refused_over_h2(&mut sender, request).await);
    assert!(!origin.received().contains("/empty-length"));
}

fn frames_in_dispute(head: &str) -> Answer {
    let path = head.split(' ').nth(1).unwrap_or("/");
    Answer::bytes(match path {
        "/both" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "/twice" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "/between" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "/gzip-last" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "/two-lines" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "/size-space" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 2\r\nhello\r\n0\r\n\r\n",
        "/gzip-length" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_whose_end_is_in_dispute_are_a_502_on_every_path() {
    let origin = RecordingOrigin::start(frames_in_dispute).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    // Chunked wins over a Content-Length beside it (RFC 9112 §6.3, and
    // HAProxy's http_transfer_encoding case c4): the length is dropped.
    for post in [false, true] {
        let request = if post {
            "POST /both HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        } else {
            "GET /both HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        };
        let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
        let lower = answer.to_ascii_lowercase();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(lower.contains("transfer-encoding: chunked"), "{answer}");
        assert!(!lower.contains("content-length"), "{answer}");
        assert!(answer.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{answer}");
    }
    for path in [
        "/twice",
        "/between",
        "/gzip-last",
        "/two-lines",
        "/size-space",
        "/gzip-length",
    ] {
        for post in [false, true] {
            let request = if post {
                format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
            } else {
                format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            };
            let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
            // hyper's path finds bad chunking only once it streams the
            // body: the client connection then closes with nothing sent.
            let cut = post && path == "/size-space" && answer.is_empty();
            assert!(
                answer.starts_with("HTTP/1.1 502") || cut,
                "{path} (post: {post}): {answer}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn te_trailers_from_an_http1_client_reaches_an_http2_server() {
    let grpc = zkgate_testkit::grpc::GrpcServer::start().await;
    let port = free_port();
    let config = format!(
        "frontends:\n  grpc:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: grpc\nbackends:\n  grpc:\n    protocol: http2\n    servers: {}\n",
        servers(&[(grpc.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Bodiless (the fast path's kind of request) and with a body.
    for request in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE, close\r\nContent-Length: 2\r\n\r\nhi",
        // Without `Connection: TE`, as many clients send it.
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: gzip, trailers\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(addr, request, WAIT).await.unwrap();
        assert!(
            answer.to_ascii_lowercase().contains("x-saw-te-trailers: yes"),
            "{}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
}

/// Whether zkgate refused an HTTP/2 request: a 400, or the stream reset.
async fn refused_over_h2<B>(
    sender: &mut hyper::client::conn::http2::SendRequest<B>,
    request: http::Request<B>,
) -> bool
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match sender.send_request(request).await {
        Ok(response) => response.status() == 400,
        Err(_) => true,
    }
}
