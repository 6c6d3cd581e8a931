//! Backends of HTTP/2 servers (`protocol: http2`), reached by zkgate's own
//! HTTP/2 client: bodies larger than every flow-control window pass both
//! ways from HTTP/1.1 and HTTP/2 clients, and a client's body that breaks
//! on its way is the client's fault.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::h2_server::H2Server;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// Larger than the windows on every leg (a stream's 2 MiB included).
const LARGE: usize = 3 << 20 | 12_345;

fn payload() -> Vec<u8> {
    (0..LARGE).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_larger_than_every_window_pass_both_ways() {
    let server = H2Server::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let sent = payload();

    // HTTP/1.1 client, bodiless: the fast path serves it through the core.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let get = format!("GET /bytes/{LARGE} HTTP/1.1\r\nHost: a\r\n\r\n");
    client.write_all(get.as_bytes()).await.unwrap();
    let (head, body) = read_sized_answer(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body.len(), LARGE);
    assert!(body.iter().all(|&b| b == b'x'));

    // HTTP/1.1 client with a body (hyper's server), echoed back as it
    // is still sent.
    let client = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = client.into_split();
    let post = format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {LARGE}\r\n\r\n");
    let up = sent.clone();
    let writer = tokio::spawn(async move {
        write.write_all(post.as_bytes()).await.unwrap();
        write.write_all(&up).await.unwrap();
        write
    });
    let (head, body) = read_sized_answer(&mut read).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == sent, "the echo differs");
    writer.await.unwrap();

    // HTTP/2 client, echoed back.
    let mut sender = h2_sender::<Full<Bytes>>(addr).await;
    let request = http::Request::post(format!("http://{addr}/echo"))
        .body(Full::new(Bytes::from(sent.clone())))
        .unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(body[..] == sent[..], "the echo differs");
    let uploads: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|seen| seen.path == "/echo")
        .map(|seen| seen.body.len())
        .collect();
    assert_eq!(uploads, [LARGE, LARGE]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_body_that_breaks_on_its_way_is_a_400() {
    let server = H2Server::start().await;
    let (_zkgate, addr) = zkgate_in_front_of_h(server.addr, "http2").await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, client.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}
