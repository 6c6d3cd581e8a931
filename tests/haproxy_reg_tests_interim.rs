//! Interim (1xx) answers, from HAProxy's `reg-tests/http-messaging`
//! (`http_1xx_responses.vtc`), ported to raw sockets with HAProxy's
//! expectations. A server's 103 Early Hints reach an HTTP/1.1 client
//! before the final answer; `Expect: 100-continue` is answered by zkgate.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::h2_frames::*;
use zkgate_testkit::h2_server::H2Server;
use zkgate_testkit::{Answer, RecordingOrigin};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

fn early_hints(head: &str) -> Answer {
    let style = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";
    let script = "HTTP/1.1 103 Early Hints\r\nLink: </script.js>; rel=preload; as=script\r\n\r\n";
    let answer = match path_of(head) {
        "/clen" => format!("{style}{script}HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nresponse 1"),
        "/chunked" => format!(
            "{style}HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nresponse 2\r\n0\r\n\r\n"
        ),
        "/no-body" => format!("{style}HTTP/1.1 204 No Content\r\n\r\n"),
        _ => format!(
            "{style}HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\nresponse 4"
        ),
    };
    Answer::bytes(answer.as_bytes())
}

/// Reads from `client` until what came ends with `end`.
async fn read_to(client: &mut TcpStream, end: &str) -> String {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.ends_with(end.as_bytes()) {
        let n = tokio::time::timeout(WAIT, client.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "waiting for {end:?}; got {}",
                    String::from_utf8_lossy(&seen)
                )
            })
            .unwrap();
        assert!(n > 0, "closed; got {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// `http_1xx_responses.vtc` `c1`: 103s before a final answer with a
/// length, a chunked one, a 204 and one that closes reach the client in
/// order, without a `Content-Length` of their own; each final answer is
/// whole. (`c8`, `c9`: HTTP/2 servers are reached through hyper's client,
/// which passes no 1xx of theirs on: there they are dropped; `c6`, `c7`:
/// hints zkgate would make itself, a feature it has not.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c1_early_hints_reach_an_http1_client() {
    let origin = RecordingOrigin::start(early_hints).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let style = "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";
    let script = "HTTP/1.1 103 Early Hints\r\nlink: </script.js>; rel=preload; as=script\r\n\r\n";

    client
        .write_all(b"GET /clen HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to(&mut client, "response 1").await;
    let lower = answer.to_ascii_lowercase();
    let expected = format!(
        "{}{}http/1.1 200 ok\r\n",
        style.to_ascii_lowercase(),
        script.to_ascii_lowercase()
    );
    assert!(lower.starts_with(&expected), "{answer}");
    assert_eq!(lower.matches("content-length").count(), 1, "{answer}");

    client
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to(&mut client, "0\r\n\r\n").await;
    assert!(
        answer
            .to_ascii_lowercase()
            .starts_with(&style.to_ascii_lowercase()),
        "{answer}"
    );
    assert!(answer.contains("response 2"), "{answer}");

    client
        .write_all(b"GET /no-body HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to(&mut client, "\r\n\r\n").await;
    let answer = if answer.matches("\r\n\r\n").count() < 2 {
        answer + &read_to(&mut client, "\r\n\r\n").await
    } else {
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 103"), "{answer}");
    assert!(answer.contains("\r\n\r\nHTTP/1.1 204"), "{answer}");

    client
        .write_all(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The server's `Connection: close` is its own connection's business.
    let rest = read_to(&mut client, "response 4").await;
    assert!(rest.starts_with("HTTP/1.1 103"), "{rest}");
    assert!(rest.contains("\r\n\r\nHTTP/1.1 200"), "{rest}");
}

fn continues(head: &str) -> Answer {
    // A server that answers `Expect` itself would send a 100 first.
    let continued = head.to_ascii_lowercase().contains("expect:");
    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nresponse 1";
    Answer::bytes(
        if continued {
            format!("HTTP/1.1 100 Continue\r\n\r\n{answer}")
        } else {
            answer.to_owned()
        }
        .as_bytes(),
    )
}

/// An HTTP/1.1 client's `Expect: 100-continue` exchange with a 10-byte
/// `body`: one `100` before the body is sent, then the final answer
/// (`response 1`), with no other `100`.
async fn expect_continue(addr: std::net::SocketAddr, body: &[u8]) {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
        )
        .await
        .unwrap();
    let interim = read_to(&mut client, "\r\n\r\n").await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    client.write_all(body).await.unwrap();
    let answer = read_to(&mut client, "response 1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains(" 100 "), "one 100 only: {answer}");
}

/// `http_1xx_responses.vtc` `c3`, `c5`: a client that sends `Expect:
/// 100-continue` gets one `100`, then the answer, and the server the whole
/// body. zkgate answers the `Expect` itself as it reads the body (as
/// HAProxy's `c5` setup does), so the server does not see it (`c3`'s
/// server expects to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c3_c5_expect_100_continue() {
    let origin = RecordingOrigin::start(continues).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    expect_continue(addr, b"request 2 ").await;
    let seen = origin.received().to_ascii_lowercase();
    assert!(seen.ends_with("\r\n\r\nrequest 2 "), "{seen}");
    assert!(!seen.contains("expect"), "{seen}");
}

fn field<'a>(head: &'a [(String, String)], name: &str) -> Option<&'a str> {
    head.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `http_1xx_responses.vtc` `c2`: an HTTP/2 client gets the HTTP/1.1
/// server's 103s as HEADERS before the final answer's, on each stream, in
/// order, whatever framing the final answer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c2_early_hints_reach_an_http2_client() {
    let origin = RecordingOrigin::start(early_hints).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let style = "</style.css>; rel=preload; as=style";
    let script = "</script.js>; rel=preload; as=script";
    let cases: [(&str, &[&str], u16, &str); 4] = [
        ("/clen", &[style, script], 200, "response 1"),
        ("/chunked", &[style], 200, "response 2"),
        ("/no-body", &[style], 204, ""),
        ("/close", &[style], 200, "response 4"),
    ];
    for (n, (path, hints, status, body)) in cases.into_iter().enumerate() {
        let id = 1 + 2 * n as u32;
        let fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "a"),
        ];
        h2.send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &header_block(&fields),
        ))
        .await
        .unwrap();
        let answer = h2.answer_on(id, WAIT).await;
        assert_eq!(answer.heads.len(), hints.len() + 1, "{path}: {answer:?}");
        for (head, hint) in answer.heads.iter().zip(hints) {
            assert_eq!(field(head, ":status"), Some("103"), "{path}: {answer:?}");
            assert_eq!(field(head, "link"), Some(*hint), "{path}: {answer:?}");
            assert_eq!(field(head, "content-length"), None, "{path}: {answer:?}");
        }
        let last = answer.heads.last().unwrap();
        assert_eq!(answer.status, Some(status), "{path}: {answer:?}");
        assert_eq!(field(last, "link"), None, "{path}: {answer:?}");
        assert_eq!(String::from_utf8_lossy(&answer.body), body, "{path}");
    }
    // A request with a body goes through hyper's client: its 103s too.
    let origin = RecordingOrigin::start(early_hints).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/clen"),
        (":authority", "a"),
    ];
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &header_block(&fields));
    bytes.extend(frame(DATA, END_STREAM, 1, b"abc"));
    h2.send(&bytes).await.unwrap();
    let answer = h2.answer_on(1, WAIT).await;
    let statuses: Vec<_> = answer.heads.iter().map(|h| field(h, ":status")).collect();
    assert_eq!(
        statuses,
        [Some("103"), Some("103"), Some("200")],
        "{answer:?}"
    );
    assert_eq!(answer.body, b"response 1");
    // Where an exchange with 1xx answers ends is the server's word alone:
    // its connection is not used again.
    let mut bytes = frame(HEADERS, END_HEADERS, 3, &header_block(&fields));
    bytes.extend(frame(DATA, END_STREAM, 3, b"abc"));
    h2.send(&bytes).await.unwrap();
    assert_eq!(h2.answer_on(3, WAIT).await.body, b"response 1");
    assert_eq!(origin.connections(), 2);
}

/// `http_1xx_responses.vtc` `c4`: an HTTP/2 client that sends `expect:
/// 100-continue` and holds its body back gets a `100` once its request is
/// on its way to a server, then sends the body and gets the answer. As
/// for HTTP/1.1 clients (`c3`), zkgate answers the `expect` itself and the
/// server does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c4_expect_100_continue_from_an_http2_client() {
    let origin = RecordingOrigin::start(continues).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "a"),
        ("content-length", "10"),
        ("expect", "100-continue"),
    ];
    h2.send(&frame(HEADERS, END_HEADERS, 1, &header_block(&fields)))
        .await
        .unwrap();
    let interim = loop {
        let frame = h2.next_frame(WAIT).await.expect("a 100 before the body");
        if frame.kind == HEADERS && frame.stream == 1 {
            break h2.decode(&frame.payload);
        }
    };
    assert_eq!(field(&interim, ":status"), Some("100"), "{interim:?}");
    h2.send(&frame(DATA, END_STREAM, 1, b"request 1 "))
        .await
        .unwrap();
    let answer = h2.answer_on(1, WAIT).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(answer.body, b"response 1");
    let seen = origin.received().to_ascii_lowercase();
    assert!(seen.ends_with("\r\n\r\nrequest 1 "), "{seen}");
    assert!(!seen.contains("expect"), "{seen}");
}

/// `http_1xx_responses.vtc` `c8`: an HTTP/1.1 client gets an HTTP/2
/// server's 103s before the final answer, which carries none of their
/// fields: after a final answer with a body, and before a 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c8_early_hints_from_an_http2_server() {
    let server = H2Server::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let style = "http/1.1 103 early hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";
    let script = "http/1.1 103 early hints\r\nlink: </script.js>; rel=preload; as=script\r\n\r\n";

    client
        .write_all(b"GET /clen HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to(&mut client, "response 1").await;
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.starts_with(&format!("{style}{script}http/1.1 200 ok\r\n")),
        "{answer}"
    );
    assert_eq!(lower.matches("link:").count(), 2, "{answer}");

    client
        .write_all(b"GET /no-body HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = read_to(&mut client, "\r\n\r\n").await;
    while answer.matches("\r\n\r\n").count() < 2 {
        answer += &read_to(&mut client, "\r\n\r\n").await;
    }
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.starts_with(&format!("{style}http/1.1 204 no content\r\n")),
        "{answer}"
    );
    assert!(!lower.contains("transfer-encoding"), "{answer}");
}

/// An HTTP/2 server's 103s reach an HTTP/2 client as HEADERS of their
/// own, before the final answer's (`c8` with an HTTP/2 client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_from_an_http2_server_reach_an_http2_client() {
    let server = H2Server::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let mut h2 = RawH2::connect(addr).await.unwrap();
    let cases: [(&str, &[&str], u16); 2] =
        [("/clen", &["103", "103"], 200), ("/no-body", &["103"], 204)];
    for (n, (path, interims, status)) in cases.into_iter().enumerate() {
        let id = 1 + 2 * n as u32;
        let fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "a"),
        ];
        let block = header_block(&fields);
        h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, id, &block))
            .await
            .unwrap();
        let answer = h2.answer_on(id, WAIT).await;
        let statuses: Vec<_> = answer.heads.iter().map(|h| field(h, ":status")).collect();
        let mut expected: Vec<_> = interims.iter().map(|s| Some(*s)).collect();
        let final_status = status.to_string();
        expected.push(Some(&final_status));
        assert_eq!(statuses, expected, "{path}: {answer:?}");
        assert_eq!(answer.status, Some(status), "{path}: {answer:?}");
    }
}

/// `http_1xx_responses.vtc` `c9`: an HTTP/1.1 client that sends `Expect:
/// 100-continue` to a backend of HTTP/2 servers gets one `100`, then the
/// answer; the server gets the whole body. As in `c3`, zkgate answers the
/// `Expect` itself and the server does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c9_expect_100_continue_to_an_http2_server() {
    let server = H2Server::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    expect_continue(addr, b"request 1 ").await;
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].body, b"request 1 ");
    assert_eq!(seen[0].expect, None, "{seen:?}");
}

/// Beyond HAProxy's cases: a server's 103s reach an HTTP/1.1 client whose
/// request has a body too (a stated length, or chunked), from an HTTP/1.1
/// server and an HTTP/2 one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_reach_an_http1_client_whose_request_has_a_body() {
    let origin = RecordingOrigin::start(early_hints).await;
    let h2 = H2Server::start().await;
    let (_zkgate1, via_h1) = zkgate_in_front_of(origin.addr).await;
    let (_zkgate2, via_h2) = zkgate_in_front_of_h(h2.addr, "http2").await;
    let requests: [&[u8]; 2] = [
        b"POST /clen HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /clen HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ];
    for (addr, request) in [via_h1, via_h2]
        .into_iter()
        .flat_map(|a| requests.map(|r| (a, r)))
    {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let answer = read_to(&mut client, "response 1").await;
        let heads: Vec<_> = answer
            .split("\r\n\r\n")
            .filter_map(|head| head.split(' ').nth(1))
            .take(3)
            .collect();
        assert_eq!(heads, ["103", "103", "200"], "{answer}");
    }
    assert!(origin.received().contains("\r\n\r\nabc"));
    let bodies: Vec<_> = h2.seen().into_iter().map(|seen| seen.body).collect();
    assert_eq!(bodies, [b"abc".to_vec(), b"abc".to_vec()]);
}
