//! The HTTP/1.1 fast path against servers that answer in every framing
//! HTTP/1.1 allows, and some it does not: chunked bodies with trailers split
//! across writes, close-delimited bodies, interim 1xx answers, `HEAD`;
//! kept connections the server closed; malformed answers. And a client
//! connection that moves to the full (hyper) path mid-way keeps its order.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zkgate_testkit::{
    free_port, http_get, raw_exchange, read_until_ending, spawn_accept_loop, HttpServer, Zkgate,
};

use common::*;

/// What the scripted server does with one request.
enum Act {
    /// Write these pieces (flushed one by one, a little apart) and keep the connection.
    Reply(Vec<&'static [u8]>),
    /// Write this, then close.
    ReplyAndClose(&'static [u8]),
    /// Close without answering.
    Close,
    /// Write this, then nothing more (the connection stays open).
    ReplyAndStall(&'static [u8]),
}

/// A server that reads request heads and acts as `script` says for the
/// request's path and the number of requests its connection had before.
struct ScriptedServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    async fn start(script: fn(&str, usize) -> Act) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let task = spawn_accept_loop(listener, move |stream| {
            count.fetch_add(1, Ordering::SeqCst);
            serve_scripted(stream, script)
        });
        ScriptedServer {
            addr,
            connections,
            _task: task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve_scripted(mut stream: TcpStream, script: fn(&str, usize) -> Act) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        match script(&path, served) {
            Act::Reply(pieces) => {
                for piece in pieces {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Act::ReplyAndClose(bytes) => {
                stream.write_all(bytes).await.ok();
                return;
            }
            Act::Close => return,
            Act::ReplyAndStall(bytes) => {
                stream.write_all(bytes).await.ok();
                std::future::pending::<()>().await;
            }
        }
        served += 1;
    }
}

async fn start_in_front_of(server: SocketAddr, extra: &str) -> (Zkgate, SocketAddr) {
    start_in_front_of_with_env(server, extra, &[]).await
}

async fn start_in_front_of_with_env(
    server: SocketAddr,
    extra: &str,
    env: &[(&str, &str)],
) -> (Zkgate, SocketAddr) {
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n{extra}",
        servers(&[(server, 1)])
    );
    let zkgate = Zkgate::start_with_env(ZKGATE, &config, env).await;
    (zkgate, ([127, 0, 0, 1], port).into())
}

fn framings(path: &str, _: usize) -> Act {
    match path {
        "/chunked" => Act::Reply(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n7;ext=1\r\n, world\r\n",
            b"0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ]),
        "/early" => Act::Reply(vec![
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter",
        ]),
        "/head" => Act::Reply(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"]),
        "/empty" => Act::Reply(vec![b"HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n"]),
        "/close" => Act::ReplyAndClose(b"HTTP/1.1 200 OK\r\nX-Kind: until-close\r\n\r\nto the end"),
        _ => Act::Reply(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: secret\r\n\r\n",
            b"plain",
        ]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_framing_passes_through_whole() {
    let server = ScriptedServer::start(framings).await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;

    let chunked = http_get(addr, "/chunked").await.unwrap();
    assert_eq!(chunked.status, 200);
    assert_eq!(chunked.text(), "hello, world");
    assert_eq!(chunked.header("x-kind"), Some("chunked"));

    let early = http_get(addr, "/early").await.unwrap();
    assert_eq!(
        (early.status.as_u16(), early.text().as_str()),
        (200, "after")
    );

    let empty = http_get(addr, "/empty").await.unwrap();
    assert_eq!(empty.status, 204);
    assert_eq!(empty.header("x-kind"), Some("empty"));

    // A body that ends with the server's connection ends the client's too.
    let until_close = raw_exchange(
        addr,
        b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(
        until_close.starts_with("HTTP/1.1 200 OK\r\n"),
        "{until_close}"
    );
    assert!(until_close.to_lowercase().contains("connection: close\r\n"));
    assert!(
        until_close.ends_with("\r\n\r\nto the end"),
        "{until_close:?}"
    );

    // Pipelined on one connection: a HEAD (no body whatever Content-Length
    // says), a chunked body with its trailer, then Content-Length cut at 4
    // bytes (the server wrote 5: the extra byte is not forwarded), in order.
    let answer = raw_exchange(
        addr,
        b"HEAD /head HTTP/1.1\r\nHost: a\r\n\r\nGET /chunked HTTP/1.1\r\nHost: a\r\n\r\nGET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let expected_chunked = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let head_end = answer.find("\r\n\r\n").unwrap() + 4;
    assert!(
        answer[..head_end].contains("Content-Length: 100"),
        "{answer}"
    );
    let rest = &answer[head_end..];
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"),
        "{rest}"
    );
    let body_at = rest.find("\r\n\r\n").unwrap() + 4;
    assert!(rest[body_at..].starts_with(expected_chunked), "{rest:?}");
    let last = &rest[body_at + expected_chunked.len()..];
    assert!(last.starts_with("HTTP/1.1 200 OK\r\n"), "{last:?}");
    assert!(last.ends_with("\r\n\r\nplai"), "{last:?}");
    assert!(
        !last.contains("X-Private") && !last.contains("Keep-Alive"),
        "hop-by-hop headers, also those Connection names, are dropped: {last}"
    );
    assert!(last.contains("connection: close"), "{last}");
}

/// The first request on a connection is answered; the second makes the
/// server close without a word, as one closing an idle connection would.
fn answers_once_per_connection(_: &str, served: usize) -> Act {
    if served == 0 {
        Act::Reply(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    } else {
        Act::Close
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connections_the_server_dropped_are_replaced_for_safe_requests() {
    let server = ScriptedServer::start(answers_once_per_connection).await;
    // Kept connections are kept per worker thread: with one, every request
    // below finds the connection the one before it left.
    let (zkgate, addr) =
        start_in_front_of_with_env(server.addr, "", &[("ZKGATE_WORKERS", "1")]).await;
    for i in 0..5 {
        let reply = http_get(addr, "/x").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "ok"),
            "GET {i}"
        );
    }
    assert!(server.connections() >= 5, "a fresh connection each time");
    // Not idempotent: never sent twice, so the failure shows.
    let post = raw_exchange(
        addr,
        b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(post.starts_with("HTTP/1.1 502"), "{post}");
    assert_eq!(
        zkgate
            .metric("zkgate_backend_responses_total{backend=\"web\",code=\"5xx\"}")
            .await,
        Some(1.0)
    );
}

/// A server that closes every connection shortly after answering (as one
/// with a short keep-alive timeout does), while zkgate keeps it.
fn closes_soon(_: &str, _: usize) -> Act {
    Act::ReplyAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_while_idle_are_not_reused() {
    let server = ScriptedServer::start(closes_soon).await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    for i in 0..5 {
        let post = raw_exchange(
            addr,
            b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        // Even a request that cannot be retried succeeds: the closed
        // connection is noticed before it is used.
        assert!(post.starts_with("HTTP/1.1 200"), "request {i}: {post}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn malformed(path: &str, _: usize) -> Act {
    match path {
        "/garbage" => Act::ReplyAndClose(b"SSH-2.0-OpenSSH\r\n\r\n"),
        // A length beside a coding that does not end with chunked.
        "/both" => Act::ReplyAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        ),
        "/lengths" => Act::ReplyAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        "/switch" => Act::ReplyAndClose(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        "/bad-chunk" => Act::ReplyAndClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        "/short" => Act::ReplyAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"),
        "/silent" => Act::Close,
        _ => Act::Reply(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_become_502_and_never_reach_the_client() {
    let server = ScriptedServer::start(malformed).await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    for path in [
        "/garbage",
        "/both",
        "/lengths",
        "/switch",
        "/bad-chunk",
        "/silent",
    ] {
        let reply = http_get(addr, path).await.unwrap();
        assert_eq!(reply.status, 502, "{path}: {}", reply.text());
        assert_eq!(reply.text(), "bad gateway\n", "{path}");
    }
    // A body cut short after its head went out: the client sees the
    // connection end early rather than a complete answer.
    let short = http_get(addr, "/short").await;
    assert!(short.is_err(), "{:?}", short.map(|r| r.text()));
    // Others are served meanwhile.
    assert_eq!(http_get(addr, "/fine").await.unwrap().text(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_moves_to_the_full_path_and_keeps_its_order() {
    let server = HttpServer::start("s1").await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    // Fast (GET), full (a body), then GET again on the full path, pipelined.
    let answer = raw_exchange(
        addr,
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /headers HTTP/1.1\r\nHost: a\r\nX-Third: 3\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let statuses = answer.matches("HTTP/1.1 200 OK").count();
    assert_eq!(statuses, 3, "{answer}");
    let first = answer.find("\r\n\r\ns1").expect("the GET's body");
    let upload = answer.find("\r\n\r\n5 ").expect("the upload's summary");
    let third = answer
        .find("x-third: 3")
        .expect("the third request's headers");
    assert!(first < upload && upload < third, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_arriving_byte_by_byte_is_served() {
    let server = HttpServer::start("s1").await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for byte in b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("s1"), "{answer}");
}

/// `/fast` is answered at once; `/silent` never; `/stalls` sends its head
/// and 3 of 10 body bytes, then nothing.
/// Sends `GET /fast` on a kept connection and reads its answer (from a
/// script that answers `/fast` at once with the body `fast`).
async fn ask_fast(client: &mut TcpStream) -> std::io::Result<()> {
    client
        .write_all(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
        .await?;
    read_until_ending(client, b"\r\n\r\nfast").await?;
    Ok(())
}

fn slow_in_places(path: &str, _: usize) -> Act {
    match path {
        "/silent" => Act::ReplyAndStall(b""),
        "/stalls" => Act::ReplyAndStall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        _ => Act::Reply(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_timeout_holds_for_every_request_of_a_kept_connection() {
    let server = ScriptedServer::start(slow_in_places).await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "    timeouts: { server: 400ms }\n").await;
    // A fast request first, whose deadline for the server's answer comes
    // 300 ms before the silent one's: the silent one still gets its own.
    let mut client = TcpStream::connect(addr).await.unwrap();
    ask_fast(&mut client).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    client
        .write_all(b"GET /silent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "504 after {took:?}"
    );

    // A body that stops coming: the client gets what came, then the
    // connection ends (the head is out, so no error answer can follow).
    let started = std::time::Instant::now();
    let answer = raw_exchange(
        addr,
        b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\nGET /stalls HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        answer.ends_with("Content-Length: 10\r\n\r\nabc"),
        "{answer:?}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "cut after {took:?}"
    );
}

/// `/slow` sends its 100-byte body a byte at a time over ~0.5 s, ending in `!`.
fn slow_body(path: &str, _: usize) -> Act {
    match path {
        "/slow" => Act::Reply(
            std::iter::once(&b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"[..])
                .chain(std::iter::repeat_n(&b"x"[..], 99))
                .chain(std::iter::once(&b"!"[..]))
                .collect(),
        ),
        _ => Act::Reply(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_counts_from_the_end_of_a_slow_response() {
    let server = ScriptedServer::start(slow_body).await;
    // The frontend's idle timeout is shorter than the response takes.
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n    timeouts: {{ client_idle: 250ms }}\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    read_until_ending(&mut client, b"x!").await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(250),
        "the body took {:?}, no longer than the idle timeout",
        started.elapsed()
    );
    // Right after the body's last byte, the connection is not idle yet.
    ask_fast(&mut client)
        .await
        .expect("the kept connection serves the next request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pool_of_server_connections_serves_every_path() {
    let server = HttpServer::start("s1").await;
    let (_zkgate, addr) =
        start_in_front_of_with_env(server.addr, "", &[("ZKGATE_WORKERS", "1")]).await;
    // One request at a time, alternating between the fast path (a bodiless
    // GET) and hyper's (a body), each on a client connection of its own.
    let get = b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".as_slice();
    let post =
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
            .as_slice();
    for request in [get, post, get, post, post, get] {
        let answer = raw_exchange(addr, request, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
    assert_eq!(server.requests(), 6);
    // The server saw one connection: each path reused what the other left.
    assert_eq!(server.connections(), 1);
    // And HTTP/2 clients' requests use the same pool.
    let reply = zkgate_testkit::grpc::call(addr, b"x").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_zkgate_does_not_read_ends_the_connection_after_its_answer() {
    let server = HttpServer::start("s1").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    routes:\n      - {{ host: known.example, backend: web }}\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // No route for this host: zkgate answers, the body stays unread, and
    // the bytes behind it are not taken for a request.
    let answer = raw_exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: other.example\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: known.example\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_bodies_stay_on_the_fast_path_and_keep_their_order() {
    let server = HttpServer::start("s1").await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    // Two uploads (a stated length, then chunked with a trailer) and a
    // GET, pipelined, the first upload's body split from its head by the
    // write boundary of the second part.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /upload?n=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel")
        .await
        .unwrap();
    client
        .write_all(b"loPOST /upload?n=2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2;x=y\r\nbc\r\n0\r\nChecksum: 1\r\n\r\nGET /headers HTTP/1.1\r\nHost: a\r\nX-Third: 3\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{answer}");
    let one = answer
        .find("\r\n\r\n5 ")
        .expect("the first upload's summary");
    let two = answer
        .find("\r\n\r\n3 ")
        .expect("the second upload's summary");
    let third = answer.find("x-third: 3").expect("the GET's headers");
    assert!(one < two && two < third, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carries_upload_after_upload() {
    let server = HttpServer::start("s1").await;
    let (_zkgate, addr) = start_in_front_of(server.addr, "").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    for n in 0..30 {
        let request = if n % 2 == 0 {
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".to_owned()
        } else {
            "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_owned()
        };
        client.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = read_sized_answer(&mut client).await;
        let answer = format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body));
        assert!(answer.starts_with("HTTP/1.1 200"), "upload {n}: {answer}");
        assert!(answer.contains("\r\n\r\n5 "), "upload {n}: {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "upload {n}: {answer}"
        );
    }
}
