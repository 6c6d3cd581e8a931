//! Cases of HAProxy's `reg-tests/http-messaging`, ported to raw sockets
//! with HAProxy's expectations. Each test names its `.vtc` file and client
//! (`c1`, …). Where zkgate deliberately answers otherwise, the case says so
//! and why; `docs/security.md` lists those differences.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::{raw_exchange, read_until_ending, Answer, RecordingOrigin};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

/// `http_bodyless_response.vtc`: a server that sends a body with its
/// answer to `HEAD` (HAProxy's test makes it so by rewriting the method).
fn bodies_for_head(head: &str) -> Answer {
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for len in [15usize, 1024, 4048] {
        chunked.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        chunked.extend(std::iter::repeat_n(b'x', len));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut long = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'y', 20000));
    Answer {
        bytes: match path_of(head) {
            "/req1" => b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nskipped data".to_vec(),
            "/req2" => long,
            "/req3" => chunked,
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nlast response".to_vec(),
        },
        ..Answer::default()
    }
}

/// `HEAD /req1` … `/req3` on `client`, each answered 200 with a head alone
/// (a body would be read as the next answer's start).
async fn three_heads(client: &mut TcpStream) {
    for url in ["/req1", "/req2", "/req3"] {
        let request = format!("HEAD {url} HTTP/1.1\r\nHost: a\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let head = read_until_ending(client, b"\r\n\r\n").await.unwrap();
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodyless_response_c1_payload_is_skipped_for_head() {
    let origin = RecordingOrigin::start(bodies_for_head).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    three_heads(&mut client).await;
    // The last one has a body: the connection was not closed, and no
    // payload of the earlier answers came before it.
    client
        .write_all(b"GET /req4 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let last = read_until_ending(&mut client, b"last response")
        .await
        .unwrap();
    let last = String::from_utf8_lossy(&last);
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(!last.contains("skipped") && !last.contains("xxx") && !last.contains("yyy"));
}

/// `http_bodyless_response.vtc` `c2`: the same through an HTTP/2 server
/// that answers `HEAD` with DATA (the gRPC-shaped test server answers
/// every request with a body and trailers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodyless_response_c2_through_an_h2_server() {
    let server = zkgate_testkit::grpc::GrpcServer::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    three_heads(&mut client).await;
    client
        .write_all(b"GET /req4 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut last = Vec::new();
    let mut chunk = [0u8; 4096];
    while !last.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, client.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&last));
        last.extend_from_slice(&chunk[..n]);
    }
    let last = String::from_utf8_lossy(&last);
    // Nothing before the GET's answer: no payload of the HEAD answers.
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
}

/// `truncated_response.vtc`: the server announces more than it sends and
/// closes.
fn truncates(head: &str) -> Answer {
    let (announced, sent) = if path_of(head) == "/large" {
        (1_000_000, 200_000)
    } else {
        (100_000, 40_000)
    };
    let mut bytes = format!("HTTP/1.1 200 OK\r\ncontent-length: {announced}\r\n\r\n").into_bytes();
    bytes.extend(std::iter::repeat_n(b'z', sent));
    bytes.extend_from_slice(b"0123456789");
    Answer {
        bytes,
        close: true,
        ..Answer::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_response_c1_c5_every_byte_sent_reaches_the_client() {
    let origin = RecordingOrigin::start(truncates).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    for (path, announced, sent) in [("/small", 100_000, 40_010), ("/large", 1_000_000, 200_010)] {
        // The fast path (GET), and hyper's (a request with a body).
        for post in [false, true] {
            let request = if post {
                format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
            } else {
                format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n")
            };
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(request.as_bytes()).await.unwrap();
            if path == "/large" {
                // c5: nothing is read for a moment, so the close reaches
                // zkgate while the bytes are still on their way.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut answer = Vec::new();
            let read = tokio::time::timeout(WAIT, client.read_to_end(&mut answer)).await;
            assert!(
                read.is_ok(),
                "{path} (post: {post}): the connection must close"
            );
            let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(
                head.contains(&format!("content-length: {announced}")),
                "{head}"
            );
            assert_eq!(answer.len() - end, sent, "{path} (post: {post})");
        }
    }
}

/// `http_transfer_encoding.vtc`, server `s2`: codings that leave a
/// response's end in doubt.
fn doubtful_codings(head: &str) -> Answer {
    Answer::bytes(match path_of(head) {
        "/1" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "/2" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n0\r\n\r\n",
        "/3" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "/4" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        // Server `s1`, c4: chunked and a length meant to split the response.
        "/split" => b"HTTP/1.1 200 Ok\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nResponse splitting attach",
        // Server `s1`, c3.
        "/http10" => b"HTTP/1.0 200 Ok\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transfer_encoding_responses() {
    let origin = RecordingOrigin::start(doubtful_codings).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    // c11 (repeated 4 times): 502.
    for path in ["/1", "/2", "/3", "/4"] {
        let answer = raw_exchange(addr, get(path).as_bytes(), WAIT)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 502"), "{path}: {answer}");
    }
    // c4: the chunked framing wins, the length and what follows the body
    // are dropped.
    let answer = raw_exchange(addr, get("/split").as_bytes(), WAIT)
        .await
        .unwrap();
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!lower.contains("content-length"), "{answer}");
    assert!(lower.contains("transfer-encoding: chunked"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n0\r\n\r\n"), "{answer}");
    // c3: HAProxy forwards an HTTP/1.0 response's chunked body. zkgate
    // differs on purpose: Transfer-Encoding in HTTP/1.0 means the message
    // was mangled on its way (RFC 9112 §6.1), hyper's path refuses it, and
    // both paths must decide alike: 502.
    let answer = raw_exchange(addr, get("/http10").as_bytes(), WAIT)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transfer_encoding_requests() {
    let origin = RecordingOrigin::start(doubtful_codings).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let with_coding = |coding: &str| {
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n")
    };
    // c6, c7, c8: 400.
    for coding in [
        "chunked, chunked",
        "chunked, gzip, chunked",
        "chunked, gzip",
    ] {
        let answer = raw_exchange(addr, with_coding(coding).as_bytes(), WAIT)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{coding}: {answer}");
    }
    // c9: 400.
    let answer = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // c10: HAProxy answers 422 (a coding it cannot apply); zkgate 400:
    // its requests carry one coding only, `chunked`.
    let answer = raw_exchange(addr, with_coding("gzip, chunked").as_bytes(), WAIT)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // c2: HAProxy forwards an HTTP/1.0 request with a chunked body and
    // closes; zkgate refuses it (400): HTTP/1.0 has no transfer codings, so
    // such a message was mangled on its way (RFC 9112 §6.1).
    let answer = raw_exchange(
        addr,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.contains(" 400 "), "{answer}");
    // c1: with both Transfer-Encoding and Content-Length, chunked wins:
    // the server gets an empty chunked body, as zkgate read it. HAProxy
    // then closes the client connection; zkgate does not (the bytes after
    // the body are the client's next request, framed alike on both sides).
    let answer = raw_exchange(
        addr,
        b"POST /smuggle HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 31\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let received = origin.received().to_ascii_lowercase();
    let smuggle = &received[received.find("post /smuggle").unwrap()..];
    assert!(!smuggle.contains("content-length: 31"), "{smuggle}");
    assert!(smuggle.contains("transfer-encoding: chunked"), "{smuggle}");
}

/// `h1_host_normalization.vtc`: the target's authority and `Host` must
/// agree once normalised (scheme's default port, empty port, userinfo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_host_normalization() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases: &[(&str, &str, &[&str], u16)] = &[
        (
            "c1",
            "http://toto:poue@hostname:80/c1",
            &["hostname:80"],
            200,
        ),
        ("c2", "http://hostname:8080/c2", &["hostname:8080"], 200),
        ("c3", "https://hostname:443/c3", &["hostname:443"], 200),
        ("c4", "https://hostname:80/c4", &["hostname:80"], 200),
        ("c8", "http://hostname1/", &["hostname2"], 400),
        ("c9", "http://hostname:80/", &["hostname:81"], 400),
        ("c10", "http://hostname:8080/", &["hostname"], 400),
        ("c11", "http://hostname/", &["hostname:81"], 400),
        ("c12", "http://hostname1/", &["hostname1", "hostname2"], 400),
        (
            "c13",
            "http://hostname1/",
            &["hostname1:80", "hostname1"],
            400,
        ),
        ("c20", "http://hostname:80/c20", &["hostname"], 200),
        ("c21", "https://hostname:443/c21", &["hostname"], 200),
        ("c22", "http://hostname/c22", &["hostname:80"], 200),
        ("c23", "https://hostname/c23", &["hostname:443"], 200),
        ("c24", "http://hostname:/c24", &["hostname"], 200),
        ("c25", "https://hostname:/c25", &["hostname"], 200),
        ("c26", "http://hostname/c26", &["hostname:"], 200),
        ("c27", "https://hostname/c27", &["hostname:"], 200),
        ("c28", "http://hostname:80/c28", &["hostname:"], 200),
        ("c29", "http://hostname:/c29", &["hostname:80"], 200),
        ("c30", "https://hostname:443/c30", &["hostname:"], 200),
        ("c31", "https://hostname:/c31", &["hostname:443"], 200),
    ];
    for (case, url, hosts, status) in cases {
        let mut request = format!("GET {url} HTTP/1.1\r\n");
        for host in *hosts {
            request.push_str(&format!("host: {host}\r\n"));
        }
        request.push_str("connection: close\r\n\r\n");
        let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{case}: {answer}"
        );
    }
    // c5-c7 and c14-c19 are CONNECT requests: zkgate tunnels no CONNECT
    // (400 for all, where HAProxy answers c5-c7 with 200).
    let answer = raw_exchange(
        addr,
        b"CONNECT hostname:80 HTTP/1.1\r\nhost: hostname:80\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // c32, c34: strange but agreeing: 200.
    for host in [":80", ":"] {
        let request = format!("GET http://: HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
}

fn numbered_responses(head: &str) -> Answer {
    // `/test23.html` → "response 3".
    let path = path_of(head);
    let n = path.trim_end_matches(".html").chars().last().unwrap_or('0');
    Answer::bytes(format!("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nresponse {n}").as_bytes())
}

/// `h1_to_h1.vtc`: GET, HEAD and POST requests with no body, an empty
/// one, a body, and a last one with `Connection: close` followed by bytes
/// that must be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_to_h1() {
    let origin = RecordingOrigin::start(numbered_responses).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases = [
        ("GET", 0, "this must be delivered, like it or not"),
        ("HEAD", 10, "this must be delivered, like it or not"),
        ("POST", 20, "this is sent"),
    ];
    for (method, base, body) in cases {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let requests = [
            format!("{method} /test{}.html HTTP/1.1\r\n\r\n", base + 1),
            format!("{method} /test{}.html HTTP/1.1\r\ncontent-length: 0\r\n\r\n", base + 2),
            format!(
                "{method} /test{}.html HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
                base + 3,
                body.len()
            ),
            // Followed by "this is not sent": dropped, as the connection closes.
            format!(
                "{method} /test{}.html HTTP/1.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\ntxys ys not sent\r\n\r\n",
                base + 4
            ),
        ];
        for (i, request) in requests.iter().enumerate() {
            client.write_all(request.as_bytes()).await.unwrap();
            let answer = if i == 3 {
                let mut rest = Vec::new();
                // The connection is expected to close after the answer.
                let closed = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
                assert!(closed.is_ok(), "{method}: the connection stays open");
                rest
            } else if method == "HEAD" {
                read_until_ending(&mut client, b"\r\n\r\n").await.unwrap()
            } else {
                read_until_ending(&mut client, format!("response {}", i + 1).as_bytes())
                    .await
                    .unwrap()
            };
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 200"), "{method} {i}: {answer}");
            if method == "HEAD" {
                assert!(answer.ends_with("\r\n\r\n"), "{method} {i}: {answer}");
            } else {
                assert!(
                    answer.ends_with(&format!("response {}", i + 1)),
                    "{method} {i}: {answer}"
                );
            }
        }
        let received = origin.received();
        assert!(received.contains(body), "{method}: {received}");
        assert!(!received.contains("not sent"), "{method}: {received}");
    }
}

/// `h1_request_target_validation.vtc`: which request targets a method may
/// use (RFC 9112 §3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_request_target_validation() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases: &[(&str, &str, &str, u16)] = &[
        ("c1", "OPTIONS", "*", 200),
        ("c2", "OPTIONS", "/", 200),
        ("c3", "OPTIONS", "http://haproxy.org", 200),
        ("c4", "OPTIONS", "*/test", 400),
        ("c5", "GET", "*", 400),
        ("c11", "GET", "/", 200),
        ("c12", "GET", "haproxy.org:80", 400),
        ("c13", "GET", "admin", 400),
        ("c14", "GET", "admin/a/b", 400),
    ];
    for (case, method, target, status) in cases {
        let request =
            format!("{method} {target} HTTP/1.1\r\nHost: haproxy.org\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{case} {method} {target}: {answer}"
        );
    }
    // c6-c9 are CONNECT requests, which zkgate refuses (400) where HAProxy
    // answers c6 with 200.
    let answer = raw_exchange(
        addr,
        b"CONNECT haproxy.org:80 HTTP/1.1\r\nHost: haproxy.org\r\n\r\n",
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// `h2_desync_attacks.vtc` c1 and c6 (HTTP/2 clients, an HTTP/1.1
/// server): `:authority` is the host the server gets, whatever `host`
/// says. (c3-c5, invalid `:path`, `:scheme` and `:method`, need a raw
/// HTTP/2 client; hyper's will not send them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_desync_attacks_c1_c6() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // c1: a valid request.
    let request = http::Request::get("http://hostname/c1")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    // c6: the server sees `host: hostname`, not `other_host`.
    let request = http::Request::get("http://hostname/c6")
        .header("host", "other_host")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    let received = origin.received().to_ascii_lowercase();
    let c6 = &received[received.find("get /c6").unwrap()..];
    assert!(c6.contains("host: hostname\r\n"), "{c6}");
    assert!(!c6.contains("other_host"), "{c6}");
}

/// `h1_authority_fragment_char.vtc` `c1`, `c2`: a raw `#` in an
/// absolute-form target ends the authority (RFC 3986 §3.2): `hostname` is
/// the host, and a target without a path is `/`. HAProxy refuses a raw `#`
/// by default and the test relaxes that; zkgate takes it, as the test
/// then expects, and leaves the fragment out (a fragment is never sent in
/// a request, RFC 9110 §4.2.5), on every path alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_authority_fragment_char_c1_c2() {
    let origin = RecordingOrigin::start(answers_ok).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let cases = [
        ("http://hostname#frag", "/"),
        ("http://hostname/abc#frag", "/abc"),
        ("/o#frag", "/o"),
    ];
    for (target, path) in cases {
        let request =
            format!("GET {target} HTTP/1.1\r\nhost: hostname\r\nconnection: close\r\n\r\n");
        let answer = raw_exchange(addr, request.as_bytes(), WAIT).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{target}: {answer}");
        let seen = origin.received();
        let want = format!("GET {path} HTTP/1.1\r\nhost: hostname\r\n");
        assert!(seen.contains(&want), "{target}: {seen}");
    }
    assert!(!origin.received().contains("frag"), "{}", origin.received());
}
