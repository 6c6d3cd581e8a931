//! HTTP/2 clients, from HAProxy's `reg-tests/http-messaging`
//! (`h2_to_h1.vtc`, `h2_desync_attacks.vtc`, `scheme_based_normalize.vtc`),
//! written frame by frame with HAProxy's expectations. Each test names its
//! client (`c1`, …); where zkgate answers otherwise, the test says why.

mod common;

use std::time::Duration;

use zkgate_testkit::h2_frames::*;
use zkgate_testkit::{wait_until, Answer, RecordingOrigin};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

/// Sends one request on stream `id`: its header block, then `body` (if
/// any) in one DATA frame that ends the stream.
async fn request(h2: &mut RawH2, id: u32, fields: &[(&str, &str)], body: Option<&[u8]>) {
    let block = header_block(fields);
    let flags = if body.is_some() {
        END_HEADERS
    } else {
        END_HEADERS | END_STREAM
    };
    let mut bytes = frame(HEADERS, flags, id, &block);
    if let Some(body) = body {
        bytes.extend(frame(DATA, END_STREAM, id, body));
    }
    h2.send(&bytes).await.unwrap();
}

fn numbered(head: &str) -> Answer {
    // `/test23.html` → "response 3"; `/test4.html` → "response 4".
    let n = path_of(head)
        .trim_end_matches(".html")
        .chars()
        .last()
        .unwrap_or('0');
    let body = format!("response {n}");
    Answer::bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// `h2_to_h1.vtc` `c1h2` (GET) and `c3h2` (POST), one connection each:
/// a bodiless request, one saying `content-length: 0`, one with a body and
/// no length (it reaches the HTTP/1.1 server chunked, a GET's too), and one
/// whose DATA exceed its `content-length` (the stream is reset and nothing
/// of its body reaches the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_to_h1_c1h2_c3h2() {
    let origin = RecordingOrigin::start(numbered).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for (method, base) in [("GET", 0), ("POST", 20)] {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        let paths: Vec<String> = (1..=4).map(|n| format!("/test{}.html", base + n)).collect();
        let fields = |n: usize| {
            vec![
                (":method", method),
                (":scheme", "https"),
                (":path", paths[n - 1].as_str()),
            ]
        };
        request(&mut h2, 1, &fields(1), None).await;
        let answer = h2.answer_on(1, WAIT).await;
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (Some(200), &b"response 1"[..]),
            "{method} 1"
        );

        let mut with_length = fields(2);
        with_length.push(("content-length", "0"));
        request(&mut h2, 3, &with_length, None).await;
        let answer = h2.answer_on(3, WAIT).await;
        assert_eq!(answer.body, b"response 2", "{method} 2");

        let body = b"this must be delivered, like it or not";
        request(&mut h2, 5, &fields(3), Some(body)).await;
        let answer = h2.answer_on(5, WAIT).await;
        assert_eq!(answer.body, b"response 3", "{method} 3");
        let seen = origin.received();
        assert!(
            seen.contains("this must be delivered, like it or not"),
            "{seen}"
        );

        let mut short = fields(4);
        short.push(("content-length", "2"));
        request(&mut h2, 7, &short, Some(b"this is sent and ignored")).await;
        let answer = h2.answer_on(7, WAIT).await;
        assert!(answer.reset.is_some(), "{method} 4: {answer:?}");
    }
    assert!(!origin.received().contains("this is sent and ignored"));
}

/// `h2_desync_attacks.vtc` `c2`–`c4`, with HAProxy's expectations: a
/// valid request without `:authority` is served (`c2`); an invalid `:path`
/// resets the stream (`c3`); an invalid `:scheme` is answered 400 (`c4`).
/// Either way the connection's other streams go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_desync_attacks_c2_to_c4() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let valid = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    request(&mut h2, 1, &valid, None).await;
    assert_eq!(h2.answer_on(1, WAIT).await.status, Some(200), "c2");
    let bad: [&[(&str, &str)]; 2] = [
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "hello-world"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http://localhost/?"),
            (":path", "/"),
        ],
    ];
    let mut id = 3;
    for ((case, reset), fields) in [("c3", true), ("c4", false)].into_iter().zip(bad) {
        request(&mut h2, id, fields, None).await;
        let answer = h2.answer_on(id, WAIT).await;
        if reset {
            assert!(answer.reset.is_some(), "{case}: {answer:?}");
        } else {
            assert_eq!(answer.status, Some(400), "{case}: {answer:?}");
        }
        // The connection serves on.
        request(&mut h2, id + 2, &valid, None).await;
        assert_eq!(
            h2.answer_on(id + 2, WAIT).await.status,
            Some(200),
            "after {case}"
        );
        id += 4;
    }
    assert_eq!(origin.received().matches("GET / HTTP/1.1").count(), 3);
    assert!(!origin.received().contains("hello-world"));
}

/// `h2_desync_attacks.vtc` `c5`: a `:method` that is not a token is
/// answered 400, as HAProxy does; the bad request reaches no server, and a
/// stream opened beside it on the same connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_desync_attacks_c5_invalid_method() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let bad = [(":method", "GET?"), (":scheme", "http"), (":path", "/bad")];
    request(&mut h2, 1, &bad, None).await;
    let valid = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    request(&mut h2, 3, &valid, None).await;
    assert_eq!(h2.answer_on(1, WAIT).await.status, Some(400));
    assert_eq!(h2.answer_on(3, WAIT).await.body, b"ok");
    assert!(!origin.received().contains("/bad"));
}

/// `scheme_based_normalize.vtc` `c1`–`c4`: the scheme's default port is
/// left out of the host the server gets (RFC 3986 §6.2.3); any other stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_based_normalize_c1_to_c4() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases = [
        ("http", "hostname:80", "hostname"),
        ("http", "hostname:8080", "hostname:8080"),
        ("https", "hostname:443", "hostname"),
        ("https", "hostname:80", "hostname:80"),
    ];
    for (n, (scheme, authority, host)) in cases.into_iter().enumerate() {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        let path = format!("/c{}", n + 1);
        let fields = [
            (":method", "GET"),
            (":scheme", scheme),
            (":path", path.as_str()),
            (":authority", authority),
        ];
        request(&mut h2, 1, &fields, None).await;
        assert_eq!(h2.answer_on(1, WAIT).await.status, Some(200));
        let want = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n");
        let want = want.to_ascii_lowercase();
        wait_until(&want, WAIT, || async {
            origin
                .received()
                .to_ascii_lowercase()
                .contains(&want)
                .then_some(())
        })
        .await;
    }
}

fn chunked_then_close(_: &str) -> Answer {
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..20 {
        bytes.extend_from_slice(b"32f\r\n");
        bytes.extend(std::iter::repeat_n(b'c', 815));
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let mut answer = Answer::bytes(&bytes[..bytes.len() / 2]);
    answer.later = Some((Duration::from_millis(50), bytes[bytes.len() / 2..].to_vec()));
    answer.close = true;
    answer
}

/// `truncated.vtc` `c1h2`, twice: a chunked answer in 20 chunks of 815
/// bytes, in two parts, from a server that then closes, reaches an HTTP/2
/// client whole (16,300 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_c1h2() {
    let origin = RecordingOrigin::start(chunked_then_close).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for _ in 0..2 {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        let fields = [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/test1.html"),
        ];
        request(&mut h2, 1, &fields, None).await;
        let answer = h2.answer_on(1, WAIT).await;
        assert_eq!((answer.status, answer.body.len()), (Some(200), 16300));
    }
}

/// Sends a POST on stream 1 with body `hello` and then `trailers`.
async fn post_with_trailers(h2: &mut RawH2, trailers: &[u8]) {
    let fields = [(":method", "POST"), (":scheme", "http"), (":path", "/")];
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &header_block(&fields));
    bytes.extend(frame(DATA, 0, 1, b"hello"));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, trailers));
    h2.send(&bytes).await.unwrap();
}

/// `h2_trailers.vtc` `c3_1`–`c4_8`. Valid trailers pass (`c3_1`). Where
/// HAProxy resets the stream with PROTOCOL_ERROR, zkgate refuses too, and
/// nothing of the bad trailers reaches a server:
/// * the fields that frame or route a message (`host`, `content-length`,
///   `te`, `transfer-encoding`; `c4_1`, `c4_2`, `c4_7`, `c4_8`): a 400 from
///   zkgate's request core, on every path (or a reset, for
///   `transfer-encoding`, which HTTP/2 forbids anywhere);
/// * connection fields (`connection`, `proxy-connection`, `keep-alive`,
///   `upgrade`; `c4_3`–`c4_6`), a name or value not allowed (upper case,
///   not a token, CR, LF or NUL; `c3_4`–`c3_8`) and pseudo-headers
///   (`c3_2`, `c3_3`): the stream is reset, as HAProxy does.
///
/// (`c1`, `c2`, trailers both ways through an HTTP/2 server, are
/// `tests/balancing.rs`'s gRPC round trip.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_trailers_c3_c4() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    post_with_trailers(&mut h2, &header_block(&[("x-tlr", "value")])).await;
    assert_eq!(h2.answer_on(1, WAIT).await.status, Some(200), "c3_1");

    let routing = [
        ("c4_1", "host", "www.example.com"),
        ("c4_2", "content-length", "5"),
        ("c4_7", "te", "trailers"),
        ("c4_8", "transfer-encoding", "chunked"),
    ];
    let connection = [
        ("c4_3", "connection", "close"),
        ("c4_4", "proxy-connection", "close"),
        ("c4_5", "keep-alive", "timeout=5"),
        ("c4_6", "upgrade", "websocket"),
    ];
    let not_allowed = [
        ("c3_4", "X-Tlr", "value"),
        ("c3_5", "x tlr", "value"),
        ("c3_6", "x-tlr", "val\rue"),
        ("c3_7", "x-tlr", "val\nue"),
        ("c3_8", "x-tlr", "val\0ue"),
    ];
    let pseudo = [("c3_2", ":method", "GET"), ("c3_3", ":method", "GET")];
    let mut accepted = Vec::new();
    for (case, name, value) in &routing {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        post_with_trailers(&mut h2, &header_block(&[(*name, *value)])).await;
        let answer = h2.answer_on(1, WAIT).await;
        if answer.status != Some(400) && answer.reset.is_none() {
            accepted.push(format!("{case}: {answer:?}"));
        }
    }
    for (case, name, value) in connection.iter().chain(&not_allowed).chain(&pseudo) {
        let mut h2 = RawH2::connect(addr).await.unwrap();
        let trailers = match *case {
            // The second `:method` is indexed: one byte, 0x82.
            "c3_3" => vec![0x82],
            _ => header_block(&[(*name, *value)]),
        };
        post_with_trailers(&mut h2, &trailers).await;
        let answer = h2.answer_on(1, WAIT).await;
        if answer.reset.is_none() {
            accepted.push(format!("{case}: {answer:?}"));
        }
    }
    assert!(accepted.is_empty(), "not refused:\n{}", accepted.join("\n"));
    let seen = origin.received().to_ascii_lowercase();
    for field in ["www.example.com", "timeout=5", ":method", "val"] {
        assert!(!seen.contains(field), "{field} reached the server: {seen}");
    }
}
