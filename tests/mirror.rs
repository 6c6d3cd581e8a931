//! A route's `mirror`: copies of a share of its requests, bodies included
//! up to the copy limit, go to another backend whose answers are read and
//! discarded; its slowness or absence never touches the original.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use zkgate_testkit::{free_port, wait_until, Answer, HttpServer, RecordingOrigin, Zkgate};

use common::*;

fn config(port: u16, original: SocketAddr, mirror: SocketAddr, percent: u8) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    routes:\n      - path_prefix: /api/\n        backend: main\n        rewrite: {{ path_prefix: / }}\n        request_headers: {{ set: {{ x-env: prod }} }}\n        mirror: {{ backend: shadow, percent: {percent} }}\n    default_backend: main\nbackends:\n  main: {{ servers: {} }}\n  shadow:\n    servers: {}\n    timeouts: {{ server: 5s }}\n",
        servers(&[(original, 1)]),
        servers(&[(mirror, 1)])
    )
}

/// A request to `/api/upload?q=1` (the test server's `/upload` reads the
/// body; its other paths answer before it).
async fn request(addr: SocketAddr, h2: bool, method: &str, body: Bytes) -> u16 {
    let uri = if h2 {
        "http://app.example/api/upload?q=1"
    } else {
        "/api/upload?q=1"
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    if !h2 {
        builder = builder.header("host", "app.example");
    }
    let request = builder.body(Full::new(body)).unwrap();
    let response = send_on_new_connection(addr, h2, request).await;
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

fn answer_ok(_: &str) -> Answer {
    Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nshadow")
}

async fn mirrored(zkgate: &Zkgate, result: &str) -> f64 {
    let series = format!("zkgate_route_mirrored_total{{frontend=\"web\",result=\"{result}\"}}");
    zkgate.metric(&series).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_carry_the_request_as_sent_with_its_body_on_every_path() {
    let main = HttpServer::start("main").await;
    let shadow = RecordingOrigin::start(answer_ok).await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(port, main.addr, shadow.addr, 100)).await;
    let addr = ([127, 0, 0, 1], port).into();
    for result in ["answered", "failed", "too_large", "dropped"] {
        assert_eq!(mirrored(&zkgate, result).await, 0.0, "{result} at start");
    }
    // Fast path (bodiless), full path (a body), HTTP/2 (a body), HTTP/2's
    // lane (bodiless).
    assert_eq!(request(addr, false, "GET", Bytes::new()).await, 200);
    assert_eq!(request(addr, true, "GET", Bytes::new()).await, 200);
    assert_eq!(
        request(addr, false, "POST", Bytes::from_static(b"h1-body")).await,
        200
    );
    assert_eq!(
        request(addr, true, "POST", Bytes::from_static(b"h2-body")).await,
        200
    );
    wait_until("four copies answered", Duration::from_secs(10), || async {
        (mirrored(&zkgate, "answered").await == 4.0).then_some(())
    })
    .await;
    let received = shadow.received().to_ascii_lowercase();
    assert_eq!(
        received.matches(" /upload?q=1 http/1.1\r\n").count(),
        4,
        "{received}"
    );
    assert_eq!(received.matches("x-env: prod").count(), 4, "{received}");
    assert!(received.contains("\r\n\r\nh1-body"), "{received}");
    assert!(received.contains("\r\n\r\nh2-body"), "{received}");
    assert_eq!(
        received.matches("content-length: 7\r\n").count(),
        2,
        "{received}"
    );
    assert_eq!(main.requests(), 4);

    // A body beyond the copy limit is not copied, and counted.
    let large = Bytes::from(vec![b'x'; 100 * 1024]);
    assert_eq!(request(addr, false, "POST", large.clone()).await, 200);
    assert_eq!(request(addr, true, "POST", large).await, 200);
    wait_until("two too large", Duration::from_secs(10), || async {
        (mirrored(&zkgate, "too_large").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(shadow.received().matches("HTTP/1.1\r\n").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenth_of_the_requests_are_copied() {
    let (main, shadow) = (
        HttpServer::start("main").await,
        HttpServer::start("shadow").await,
    );
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &config(port, main.addr, shadow.addr, 10)).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let total = 4000;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..total {
        sender.ready().await.unwrap();
        let request = http::Request::get("/api/x")
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }
    wait_until("copies answered", Duration::from_secs(10), || async {
        (mirrored(&zkgate, "answered").await == shadow.requests() as f64).then_some(())
    })
    .await;
    let share = shadow.requests() as f64 / total as f64;
    assert!((share - 0.10).abs() < 0.02, "{share}");
    assert_eq!(main.requests(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_never_answers_or_is_down_does_not_touch_the_original() {
    // A mirror that takes requests and never answers (slower than any
    // original may wait), and one that is not there at all.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let main = HttpServer::start("main").await;
    for shadow in [silent_addr, dead_addr()] {
        let port = free_port();
        let zkgate = Zkgate::start(ZKGATE, &config(port, main.addr, shadow, 100)).await;
        let addr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        for i in 0..20 {
            let body = if i % 2 == 0 {
                Bytes::new()
            } else {
                Bytes::from_static(b"b")
            };
            let method = if i % 2 == 0 { "GET" } else { "POST" };
            assert_eq!(request(addr, i % 4 == 3, method, body).await, 200);
        }
        // The silent mirror holds each copy 5 s (its server timeout): the
        // originals did not wait for any.
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "{took:?} for 20 requests via {shadow}"
        );
        if shadow != silent_addr {
            wait_until("copies failed", Duration::from_secs(10), || async {
                (mirrored(&zkgate, "failed").await == 20.0).then_some(())
            })
            .await;
        }
    }
}
