//! Compressed answers (`compression:` of a frontend): negotiated by
//! `Accept-Encoding`, decoded here by the reference tools (`gzip`, `brotli`,
//! `zstd`), never for answers that must not be, and streamed.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use zkgate_testkit::{free_port, Answer, RecordingOrigin, Zkgate};

use common::*;

/// 64 KiB of text that compresses well but not to nothing.
fn page() -> String {
    (0..4096)
        .map(|i| format!("<p>line {i:05} of the page</p>\n"))
        .collect::<String>()[..64 * 1024]
        .to_owned()
}

/// Answers by path: `/page` the page (text/html, with its length and a
/// strong ETag), `/png`, `/small`, `/encoded`, `/no-transform`, `/204`,
/// `/304` what they say, `/slow` a chunked page whose second half comes
/// three seconds after the first.
fn origin(head: &str) -> Answer {
    let path = head.split(' ').nth(1).unwrap_or("/");
    let page = page();
    let with = |headers: &str, body: &str| {
        Answer::bytes(
            format!(
                "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    match path {
        "/page" => with(
            "Content-Type: text/html; charset=utf-8\r\nETag: \"v1\"\r\nAccept-Ranges: bytes\r\n",
            &page,
        ),
        "/png" => with("Content-Type: image/png\r\n", &page),
        "/small" => with("Content-Type: text/html\r\n", "tiny"),
        "/encoded" => with(
            "Content-Type: text/html\r\nContent-Encoding: gzip\r\n",
            &page,
        ),
        "/no-transform" => with(
            "Content-Type: text/html\r\nCache-Control: public, no-transform\r\n",
            &page,
        ),
        "/204" => Answer::bytes(b"HTTP/1.1 204 No Content\r\nContent-Type: text/html\r\n\r\n"),
        "/304" => Answer::bytes(b"HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\n\r\n"),
        "/slow" => {
            let half = &page[..32 * 1024];
            let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
            let first = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunk(half)
            );
            Answer {
                bytes: first.into_bytes(),
                later: Some((
                    Duration::from_secs(3),
                    format!("{}0\r\n\r\n", chunk(half)).into_bytes(),
                )),
                ..Answer::default()
            }
        }
        _ => Answer::bytes(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    }
}

fn config(port: u16, origin: SocketAddr, compression: &str) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    compression: {compression}\n    default_backend: app\nbackends:\n  app: {{ servers: {} }}\n",
        servers(&[(origin, 1)])
    )
}

/// Request headers of a case.
type Headers<'a> = &'a [(&'a str, &'a str)];

struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

async fn get(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut builder = http::Request::builder().method(method).uri(if h2 {
        format!("http://a{path}")
    } else {
        path.to_owned()
    });
    if !h2 {
        builder = builder.header("host", "a");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::new())).unwrap();
    let response = send_on_new_connection(addr, h2, request).await;
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// `bytes` decoded by the coding's reference tool.
fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let (tool, package) = match coding {
        "gzip" => ("gzip", "gzip"),
        "br" => ("brotli", "brotli"),
        "zstd" => ("zstd", "zstd"),
        other => panic!("no decoder for {other}"),
    };
    let mut child = Command::new(tool)
        .args(["-d", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("{tool}: {err}: install it with `apt-get install -y {package}`")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "{tool} -d failed");
    output.stdout
}

async fn compressed(zkgate: &Zkgate, coding: &str) -> f64 {
    let series =
        format!("zkgate_compressed_responses_total{{algorithm=\"{coding}\",frontend=\"web\"}}");
    zkgate.metric(&series).await.unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coding_is_negotiated_and_decodes_to_the_page_over_http1_and_http2() {
    let origin = RecordingOrigin::start(origin).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(port, origin.addr, "{ min_size: 1024 }")).await;
    let addr = ([127, 0, 0, 1], port).into();
    for coding in ["zstd", "br", "gzip"] {
        assert_eq!(
            compressed(&zkgate, coding).await,
            0.0,
            "{coding} exported at 0"
        );
    }
    let cases = [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        // Equal q-values: the frontend's order (zstd, br, gzip).
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br", "br"),
        // A higher q-value wins over the frontend's order.
        ("zstd;q=0.5, gzip;q=1.0", "gzip"),
        ("*;q=0.1, zstd;q=0", "br"),
    ];
    for h2 in [false, true] {
        for (accept, expected) in cases {
            let got = get(addr, h2, "GET", "/page", &[("accept-encoding", accept)]).await;
            let label = format!("h2 {h2}, accept {accept}");
            assert_eq!(got.status, 200, "{label}");
            assert_eq!(got.headers["content-encoding"], expected, "{label}");
            assert_eq!(got.headers["vary"], "accept-encoding", "{label}");
            assert_eq!(got.headers["etag"], "W/\"v1\"", "{label}");
            assert!(got.headers.get("content-length").is_none(), "{label}");
            assert!(got.headers.get("accept-ranges").is_none(), "{label}");
            assert!(
                got.body.len() < 32 * 1024,
                "{label}: {} bytes",
                got.body.len()
            );
            assert_eq!(decode(expected, &got.body), page().as_bytes(), "{label}");
        }
    }
    assert_eq!(compressed(&zkgate, "zstd").await, 4.0);
    assert_eq!(compressed(&zkgate, "br").await, 6.0);
    assert_eq!(compressed(&zkgate, "gzip").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_must_not_be_compressed_pass_as_they_came() {
    let origin = RecordingOrigin::start(origin).await;
    let port = free_port();
    let zkgate = Zkgate::start(
        ZKGATE,
        &config(
            port,
            origin.addr,
            "{ algorithms: [gzip], types: [\"text/*\"] }",
        ),
    )
    .await;
    let addr = ([127, 0, 0, 1], port).into();
    let gzip = [("accept-encoding", "gzip")];
    let ranged = [("accept-encoding", "gzip"), ("range", "bytes=0-99")];
    let cases: [(&str, &str, Headers); 9] = [
        ("HEAD", "/page", &gzip),
        ("GET", "/page", &[]),
        ("GET", "/page", &[("accept-encoding", "br, zstd")]),
        ("GET", "/page", &ranged),
        ("GET", "/png", &gzip),
        ("GET", "/small", &gzip),
        ("GET", "/encoded", &gzip),
        ("GET", "/no-transform", &gzip),
        ("GET", "/204", &gzip),
    ];
    for h2 in [false, true] {
        for (method, path, headers) in cases {
            let got = get(addr, h2, method, path, headers).await;
            let label = format!("h2 {h2}: {method} {path} {headers:?}");
            let encoding = got
                .headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap());
            let expected = (path == "/encoded").then_some("gzip");
            assert_eq!(encoding, expected, "{label}");
            if method == "GET" && path == "/page" {
                assert_eq!(got.body, page().as_bytes(), "{label}");
            }
        }
        let got = get(addr, h2, "GET", "/304", &gzip).await;
        assert_eq!(
            (got.status, got.headers.get("content-encoding")),
            (304, None)
        );
    }
    assert_eq!(compressed(&zkgate, "gzip").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_streams_what_the_server_sent_so_far() {
    let origin = RecordingOrigin::start(origin).await;
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &config(port, origin.addr, "{ algorithms: [gzip] }")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/slow")
        .header("host", "a")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = Instant::now();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.into_body();
    // The first half is compressed and sent while the server holds back
    // the second for three seconds.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut all = first.to_vec();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            all.extend_from_slice(&data);
        }
    }
    let page = page();
    assert_eq!(decode("gzip", &all), page[..32 * 1024].repeat(2).as_bytes());
}
