//! zkgate's HTTP/2 layer, frame by frame, against what RFC 9113 asks of a
//! server: connection errors end the connection with the right GOAWAY
//! code, flow control holds both ways (an answer stops at the client's
//! window, an upload larger than zkgate's windows goes through whole), the
//! concurrent-stream limit refuses the stream beyond it, a client's HPACK
//! table size is honoured, and a malformed request costs only its stream.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use zkgate_testkit::h2_frames::*;
use zkgate_testkit::http_server::Checksum;
use zkgate_testkit::{free_port, HttpServer, Zkgate};

use common::*;

const WAIT: Duration = Duration::from_secs(5);
const WINDOW_UPDATE: u8 = 0x8;
const PRIORITY: u8 = 0x2;

async fn start() -> (HttpServer, Zkgate, SocketAddr) {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    (server, zkgate, ([127, 0, 0, 1], port).into())
}

/// Runs `exchanges` at once; all must end within a minute.
async fn all_within_a_minute(
    exchanges: impl Iterator<Item = impl std::future::Future<Output = ()>>,
) {
    tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(exchanges),
    )
    .await
    .expect("every exchange within a minute");
}

fn post(path: &str) -> Vec<u8> {
    header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "x"),
    ])
}

fn get(path: &str) -> Vec<u8> {
    header_block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "x"),
    ])
}

/// The GOAWAY error code zkgate ends the connection with.
async fn goaway_code(h2: &mut RawH2) -> Option<u32> {
    while let Some(frame) = h2.next_frame(WAIT).await {
        if frame.kind == GOAWAY {
            return Some(u32::from_be_bytes(frame.payload[4..8].try_into().unwrap()));
        }
    }
    None
}

/// RFC 9113 §5.4.1: each of these is a connection error, answered with a
/// GOAWAY carrying its code before the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_end_with_a_goaway_of_their_code() {
    let (_server, _zkgate, addr) = start().await;
    let cases: [(&str, Vec<u8>, u32); 8] = [
        ("DATA on stream 0", frame(DATA, 0, 0, b"x"), 0x1),
        ("SETTINGS on a stream", frame(SETTINGS, 0, 1, &[]), 0x1),
        (
            "HEADERS on an even stream",
            frame(HEADERS, END_HEADERS | END_STREAM, 2, &get("/")),
            0x1,
        ),
        ("PING of 7 bytes", frame(PING, 0, 0, &[0; 7]), 0x6),
        ("SETTINGS of 5 bytes", frame(SETTINGS, 0, 0, &[0; 5]), 0x6),
        (
            "a frame larger than 16 KiB",
            frame(DATA, 0, 1, &[0; 16_385]),
            0x6,
        ),
        (
            "the connection window past 2^31-1",
            frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
            0x3,
        ),
        (
            "a header block that does not decode",
            frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0x7f],
            ),
            0x9,
        ),
    ];
    for (case, bytes, code) in cases {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        h2.send(&bytes).await.unwrap();
        assert_eq!(goaway_code(&mut h2).await, Some(code), "{case}");
        assert!(
            h2.next_frame(WAIT).await.is_none(),
            "{case}: closed after the GOAWAY"
        );
    }
    // A client whose first frame is not SETTINGS (RFC 9113 §3.4).
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(PING, 0, 0, &[0; 8])).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .unwrap()
        .ok();
    let goaway = received
        .windows(5)
        .position(|w| w[..3] == [0, 0, 8] && w[3] == GOAWAY)
        .expect("a GOAWAY");
    assert_eq!(received[goaway + 13..goaway + 17], 1u32.to_be_bytes());
}

/// RFC 9113 §6.9: an answer stops at the client's window (65,535 bytes
/// here, the initial one) and goes on when the client opens it further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stops_at_the_clients_window_and_goes_on_when_it_opens() {
    let (_server, _zkgate, addr) = start().await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    h2.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &get("/download/200000"),
    ))
    .await
    .unwrap();
    // The first 65,535 bytes come, however slowly; then nothing more.
    let mut received = 0;
    let mut quiet = WAIT;
    while let Some(frame) = h2.next_frame(quiet).await {
        if frame.kind == DATA && frame.stream == 1 {
            received += frame.payload.len();
        }
        if received >= 65_535 {
            quiet = Duration::from_millis(300);
        }
    }
    assert_eq!(received, 65_535, "sent before the window opened");
    let mut open = frame(WINDOW_UPDATE, 0, 0, &200_000u32.to_be_bytes());
    open.extend(frame(WINDOW_UPDATE, 0, 1, &200_000u32.to_be_bytes()));
    h2.send(&open).await.unwrap();
    let rest = h2.answer_on(1, WAIT).await;
    assert_eq!(received + rest.body.len(), 200_000);
    assert!(rest.reset.is_none());
}

/// An upload far larger than zkgate's windows (256 KiB a stream, 1 MiB
/// the connection) reaches the server whole: zkgate gives the window back
/// as the server takes the bytes. Through a real HTTP/2 client, with an
/// HPACK table of 0 bytes, so that every answer's header block must
/// announce the size before it uses no table (RFC 7541 §4.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_larger_than_every_window_arrives_whole() {
    let (_server, _zkgate, addr) = start().await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .header_table_size(0)
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let body: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut checksum = Checksum::default();
    checksum.update(&body);
    let want = checksum.summary();
    for _ in 0..3 {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/upload"))
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let got = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8_lossy(&got).trim(), want);
    }
}

/// RFC 9113 §5.1.2: beyond the 256 streams zkgate announced, a stream is
/// refused (REFUSED_STREAM, so the client may retry it) and the others go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_beyond_the_concurrent_limit_is_refused_and_the_others_go_on() {
    let (_server, _zkgate, addr) = start().await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let upload = post("/upload");
    // 257 uploads left open (their bodies never end).
    let mut bytes = Vec::new();
    for i in 0..257u32 {
        bytes.extend(frame(HEADERS, END_HEADERS, 1 + 2 * i, &upload));
    }
    h2.send(&bytes).await.unwrap();
    let refused = h2.answer_on(1 + 2 * 256, WAIT).await;
    assert_eq!(refused.reset, Some(0x7), "{refused:?}");
    // The first one, ended now, is answered.
    h2.send(&frame(DATA, END_STREAM, 1, b"abc")).await.unwrap();
    let answer = h2.answer_on(1, WAIT).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
}

/// A malformed request (here: an upper-case field name, RFC 9113 §8.2)
/// resets its own stream only; PRIORITY frames, deprecated, are ignored;
/// a stream opened beside it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_resets_its_stream_alone() {
    let (server, _zkgate, addr) = start().await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let bad = header_block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/bad"),
        ("X-Upper", "1"),
    ]);
    let mut bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &bad);
    bytes.extend(frame(PRIORITY, 0, 3, &[0, 0, 0, 0, 16]));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/")));
    h2.send(&bytes).await.unwrap();
    assert_eq!(h2.answer_on(1, WAIT).await.reset, Some(0x1));
    assert_eq!(h2.answer_on(3, WAIT).await.status, Some(200));
    assert_eq!(server.requests(), 1);
}

/// A client that sends its preface, SETTINGS and first request in one
/// packet is answered at once: the bytes the cleartext sniffing read are
/// handled before anything more arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_the_same_packet_as_the_preface_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_server, _zkgate, addr) = start().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/")));
    stream.write_all(&bytes).await.unwrap();
    // The answer's DATA frame on stream 1 ends it; the client sends nothing more.
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer");
            received.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while at + 9 <= received.len() {
                let len = u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]]);
                let (kind, flags) = (received[at + 3], received[at + 4]);
                if kind == DATA && flags & END_STREAM != 0 {
                    return;
                }
                at += 9 + len as usize;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "no answer: {received:?}");
}

/// RFC 9113 §6.8: a client's GOAWAY says it opens no more streams; those
/// it has open go on, their DATA still read, and the connection closes
/// once they are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_clients_goaway_its_open_streams_finish() {
    let (_server, _zkgate, addr) = start().await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let upload = post("/upload");
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &upload);
    bytes.extend(frame(GOAWAY, 0, 0, &[0; 8]));
    h2.send(&bytes).await.unwrap();
    h2.send(&frame(DATA, END_STREAM, 1, b"abc")).await.unwrap();
    let answer = h2.answer_on(1, WAIT).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(
        String::from_utf8_lossy(&answer.body).starts_with("3 "),
        "{answer:?}"
    );
    assert!(h2.next_frame(WAIT).await.is_none(), "closed once answered");
}

/// Twenty streams of one connection download 1 MiB each at once, through
/// a real HTTP/2 client with its default windows: every answer arrives
/// whole and in order, none stalls on the windows they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_downloads_share_the_windows_and_all_arrive_whole() {
    let (_server, _zkgate, addr) = start().await;
    let sender = h2_sender::<Full<Bytes>>(addr).await;
    const LENGTH: u64 = 1024 * 1024;
    let downloads = (0..20).map(|_| {
        let mut sender = sender.clone();
        async move {
            let request = Request::builder()
                .uri(format!("http://{addr}/download/{LENGTH}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let whole = body.len() as u64 == LENGTH
                && body
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == zkgate_testkit::http_server::pattern(i as u64));
            assert!(whole, "a download of {} bytes, not as sent", body.len());
        }
    });
    all_within_a_minute(downloads).await;
}

/// Twenty streams of one connection upload 1 MiB each at once: together
/// twenty times the connection's window, each four times its stream's.
/// Every upload reaches the server whole: the window each reader frees
/// goes back to the client, whichever stream freed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_share_the_windows_and_all_arrive_whole() {
    let (_server, _zkgate, addr) = start().await;
    let sender = h2_sender::<Full<Bytes>>(addr).await;
    let uploads = (0..20u32).map(|n| {
        let mut sender = sender.clone();
        async move {
            let body: Vec<u8> = (0..1024 * 1024u32).map(|i| ((i + n) % 251) as u8).collect();
            let mut checksum = Checksum::default();
            checksum.update(&body);
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("http://{addr}/upload"))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let got = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(String::from_utf8_lossy(&got).trim(), checksum.summary());
        }
    });
    all_within_a_minute(uploads).await;
}

/// As on HTTP/1.1, a connection must start its first request within
/// `client_header`: an HTTP/2 client that opens no stream is told to go
/// then, where one that was served may wait `client_idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_opens_no_stream_goes_at_client_header() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n    timeouts: {{ client_header: 1s, client_idle: 1m }}\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = std::time::Instant::now();
    let mut silent = RawH2::connect(addr).await.unwrap();
    let mut served = RawH2::connect(addr).await.unwrap();
    served
        .send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/")))
        .await
        .unwrap();
    assert_eq!(served.answer_on(1, WAIT).await.status, Some(200));
    assert_eq!(
        goaway_code(&mut silent).await,
        Some(0),
        "told to go, no error"
    );
    assert!(silent.next_frame(WAIT).await.is_none(), "then closed");
    let after = started.elapsed();
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    // The served one is still there: it answers a second request.
    served
        .send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/")))
        .await
        .unwrap();
    assert_eq!(served.answer_on(3, WAIT).await.status, Some(200));
}
