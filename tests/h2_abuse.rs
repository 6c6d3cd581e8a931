//! HTTP/2 abuse, written frame by frame: rapid reset (CVE-2023-44487),
//! CONTINUATION floods, SETTINGS and PING floods. Each must end with the
//! abuser's connection closed or throttled, zkgate's memory bounded, and an
//! ordinary client still served. Also: memory per idle connection, with
//! 10,000 of them open, and how a cleartext connection is told to be
//! HTTP/2 (its first bytes) whatever way they come.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::h2_frames::*;
use zkgate_testkit::{
    free_port, http_get, raw_exchange, read_until_ending, wait_until, HttpServer, Zkgate,
};

use common::*;

/// `GET http://x/` in HPACK: indexed :method GET, :scheme http, :path /,
/// and :authority `x` as a literal.
const GET_BLOCK: &[u8] = &[0x82, 0x86, 0x84, 0x41, 0x01, b'x'];

/// zkgate's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn start(extra_frontend: &str) -> (HttpServer, Zkgate, SocketAddr) {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n{extra_frontend}backends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    (server, zkgate, ([127, 0, 0, 1], port).into())
}

/// Opens an h2c connection: preface and an empty SETTINGS.
async fn h2c(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    stream
}

/// Reads until zkgate closes the connection (or `limit` passes); returns the
/// GOAWAY error code if one came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Option<u32>, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    // Walk the frames for a GOAWAY.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= received.len() {
        let len =
            u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]]) as usize;
        if received[at + 3] == GOAWAY && at + 9 + 8 <= received.len() {
            let code = &received[at + 9 + 4..at + 9 + 8];
            goaway = Some(u32::from_be_bytes(code.try_into().unwrap()));
        }
        at += 9 + len;
    }
    (goaway, closed)
}

async fn ordinary_client_is_served(addr: SocketAddr) {
    let started = Instant::now();
    let reply = http_get(addr, "/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_with_goaway_and_memory_stays_bounded() {
    let (server, zkgate, addr) = start("").await;
    let before = rss_kib(zkgate.pid());
    let mut stream = h2c(addr).await;
    // 20,000 requests, each cancelled at once, written as fast as possible.
    const STREAMS: u32 = 20_000;
    let mut burst = Vec::new();
    let mut written = 0;
    let mut write_failed = false;
    for i in 0..STREAMS {
        let id = 1 + 2 * i;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, GET_BLOCK));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        if burst.len() > 32 * 1024 {
            if stream.write_all(&burst).await.is_err() {
                write_failed = true;
                break;
            }
            written = i + 1;
            burst.clear();
        }
    }
    if !write_failed && stream.write_all(&burst).await.is_ok() {
        written = STREAMS;
    }
    let (goaway, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the abusive connection must be closed");
    // ENHANCE_YOUR_CALM (0xb): hyper's limit on streams reset before they were served.
    assert_eq!(goaway, Some(0xb), "GOAWAY code after {written} streams");
    let served = server.requests();
    assert!(
        served < 2_000,
        "{served} of {written} cancelled requests reached the server"
    );
    ordinary_client_is_served(addr).await;
    let after = rss_kib(zkgate.pid());
    assert!(
        after < before + 32 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    eprintln!("rapid reset: {written} streams sent, {served} reached the server, GOAWAY {goaway:?}, RSS {before} -> {after} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_refused_before_it_costs_memory() {
    let (server, zkgate, addr) = start("").await;
    let before = rss_kib(zkgate.pid());
    let mut stream = h2c(addr).await;
    // A header block that never ends: 16 KiB CONTINUATION frames, up to 64 MiB.
    stream
        .write_all(&frame(HEADERS, END_STREAM, 1, GET_BLOCK))
        .await
        .unwrap();
    // A literal header field `x-a: <16 KiB>`, repeated, never ending the block.
    let mut chunk = vec![0x40, 0x03, b'x', b'-', b'a', 0x7f, 0x81, 0x7f];
    chunk.resize(16 * 1024, b'a');
    let continuation = frame(CONTINUATION, 0, 1, &chunk);
    let mut sent = 0usize;
    while sent < 64 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&continuation)).await {
            Ok(Ok(())) => sent += continuation.len(),
            // Refused (reset) or no longer read: either way zkgate stopped taking it.
            _ => break,
        }
    }
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the flooding connection must be closed");
    assert!(
        sent < 16 * 1024 * 1024,
        "zkgate read {sent} bytes of one header block"
    );
    assert_eq!(server.requests(), 0);
    ordinary_client_is_served(addr).await;
    let after = rss_kib(zkgate.pid());
    assert!(
        after < before + 32 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_from_a_client_that_never_reads_stay_bounded() {
    let (_server, zkgate, addr) = start("").await;
    let before = rss_kib(zkgate.pid());
    for (kind, payload) in [(SETTINGS, &[][..]), (PING, &[7u8; 8][..])] {
        let mut stream = h2c(addr).await;
        let one = frame(kind, 0, 0, payload);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4096).collect();
        // Up to 1,000,000 frames, never reading an ACK: zkgate must stop
        // reading (back-pressure) or close, not queue every answer.
        let mut frames = 0;
        while frames < 1_000_000 {
            match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&batch)).await {
                Ok(Ok(())) => frames += 4096,
                _ => break,
            }
        }
        ordinary_client_is_served(addr).await;
        let now = rss_kib(zkgate.pid());
        assert!(
            now < before + 32 * 1024,
            "after {frames} frames of type {kind}: memory grew from {before} KiB to {now} KiB"
        );
        drop(stream);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_little_memory_each() {
    const CONNECTIONS: usize = 10_000;
    let (_server, zkgate, addr) =
        start("    timeouts: { client_header: 2m, client_idle: 2m }\n").await;
    let before = rss_kib(zkgate.pid());
    let mut open = Vec::with_capacity(CONNECTIONS);
    while open.len() < CONNECTIONS {
        let batch: Vec<_> = (0..500).map(|_| TcpStream::connect(addr)).collect();
        for stream in futures_util::future::join_all(batch).await {
            open.push(stream.expect("connect"));
        }
    }
    wait_until(
        "zkgate to hold every connection",
        Duration::from_secs(60),
        || async {
            let active = zkgate
                .metric(r#"zkgate_frontend_active_connections{frontend="web"}"#)
                .await?;
            (active as usize >= CONNECTIONS).then_some(())
        },
    )
    .await;
    let opened = rss_kib(zkgate.pid());
    // Half of them are then kept alive after one request each: waiting for
    // the next, a connection holds no more than before its first.
    for batch in open[..CONNECTIONS / 2].chunks_mut(500) {
        let served = batch.iter_mut().map(|stream| async move {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            read_until_ending(stream, b"\r\n\r\ns").await
        });
        for reply in futures_util::future::join_all(served).await {
            reply.expect("an answer, the connection kept open");
        }
    }
    let after = rss_kib(zkgate.pid());
    let per_connection = (after.saturating_sub(before)) * 1024 / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} idle connections: RSS {before} KiB -> {opened} KiB, {after} KiB after a request on half of them; {per_connection} bytes each"
    );
    // About 1.5 KiB (the task, the socket's registration, a timer): an
    // idle connection holds no read buffer, which alone would be 8 KiB.
    assert!(
        per_connection < 4 * 1024,
        "{per_connection} bytes per idle connection"
    );
    // Still serving.
    ordinary_client_is_served(addr).await;
    drop(open);
    wait_until(
        "every idle connection to be released",
        Duration::from_secs(30),
        || async {
            let active = zkgate
                .metric(r#"zkgate_frontend_active_connections{frontend="web"}"#)
                .await?;
            (active == 0.0).then_some(())
        },
    )
    .await;
}

/// A client that was served and then reads nothing but never closes (nor
/// acknowledges a PING) cannot hold its connection past `client_idle`:
/// it is told to go, and closed within a second after if it does not
/// close itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_that_never_acknowledges_ping_is_closed_at_client_idle() {
    let (_server, _zkgate, addr) = start("    timeouts: { client_idle: 1s }\n").await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, GET_BLOCK))
        .await
        .unwrap();
    assert_eq!(
        h2.answer_on(1, Duration::from_secs(5)).await.status,
        Some(200)
    );
    let started = Instant::now();
    let mut goaway = false;
    // Reads (acknowledging SETTINGS, never PING) until zkgate closes.
    while let Some(frame) = h2.next_frame(Duration::from_secs(10)).await {
        goaway |= frame.kind == GOAWAY;
    }
    let closed_after = started.elapsed();
    assert!(goaway, "told to go first");
    assert!(
        closed_after < Duration::from_millis(3500),
        "closed after {closed_after:?}"
    );
}

/// A cleartext connection is HTTP/2 when it opens with the preface, however
/// it is cut into packets; an HTTP/1 request that also starts with `P`
/// (`PUT`, `PATCH`, `POST`) stays HTTP/1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleartext_client_is_http2_by_its_first_bytes_however_they_come() {
    let (server, _zkgate, addr) = start("").await;
    let mut h2 = RawH2::connect_trickling(addr).await.unwrap();
    h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, GET_BLOCK))
        .await
        .unwrap();
    let answer = h2.answer_on(1, Duration::from_secs(5)).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(answer.body, b"s");

    for method in ["PUT", "PATCH", "POST"] {
        let request = format!(
            "{method} /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        let reply = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{method}: {reply}");
    }
    assert_eq!(server.requests(), 4);
}

/// An HTTP/2 connection waiting after a request holds no read or write
/// buffer, no HPACK table for answers and no room for streams: 2,000 of
/// them cost about 4 KiB each (hyper's HTTP/2 server took 22 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_after_a_request_cost_little_memory_each() {
    const CONNECTIONS: usize = 2_000;
    let (_server, zkgate, addr) =
        start("    timeouts: { client_header: 2m, client_idle: 2m }\n").await;
    ordinary_client_is_served(addr).await;
    let before = rss_kib(zkgate.pid());
    let mut open = Vec::with_capacity(CONNECTIONS);
    while open.len() < CONNECTIONS {
        let batch = (0..200).map(|_| async move {
            let mut h2 = RawH2::connect(addr).await.expect("connect");
            h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, GET_BLOCK))
                .await
                .expect("send");
            let answer = h2.answer_on(1, Duration::from_secs(10)).await;
            assert_eq!(answer.status, Some(200), "{answer:?}");
            h2
        });
        open.extend(futures_util::future::join_all(batch).await);
    }
    let after = rss_kib(zkgate.pid());
    let per_connection = after.saturating_sub(before) * 1024 / CONNECTIONS as u64;
    eprintln!("{CONNECTIONS} idle HTTP/2 connections: RSS {before} KiB -> {after} KiB, {per_connection} bytes each");
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes per idle HTTP/2 connection"
    );
    ordinary_client_is_served(addr).await;
}
