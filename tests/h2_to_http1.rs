//! HTTP/2 clients' bodiless requests to an HTTP/1.1 server, which zkgate
//! sends and answers from the request's own task: a response framed any
//! way HTTP/1.1 allows reaches the client whole (a chunked one's trailers
//! included), its server connection is reused only where the response's
//! end is beyond doubt, and a response no client may be given is a 502.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use zkgate_testkit::{Answer, RecordingOrigin};

use common::*;

fn script(head: &str) -> Answer {
    let answer: &[u8] = match path_of(head) {
        "/length" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kept: 1\r\nKeep-Alive: timeout=5\r\n\r\nhello",
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ngrpc-status: 0\r\ncontent-length: 9\r\n\r\n",
        "/close" => {
            return Answer {
                close: true,
                ..Answer::bytes(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
            }
        }
        "/interim" => b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
        "/no-content" => b"HTTP/1.1 204 No Content\r\n\r\n",
        "/two-framings" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        "/bad-chunk" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 2\r\nhello\r\n0\r\n\r\n",
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    };
    Answer::bytes(answer)
}

/// What an HTTP/2 client got.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
    trailers: Option<HeaderMap>,
}

/// One HTTP/2 (prior knowledge) connection to zkgate.
async fn h2(addr: SocketAddr) -> Sender {
    h2_sender(addr).await
}

type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn ask(sender: &mut Sender, method: Method, path: &str) -> Got {
    try_ask(sender, method, path).await.unwrap()
}

/// A request; its stream may be reset before any answer.
async fn try_ask(sender: &mut Sender, method: Method, path: &str) -> Result<Got, hyper::Error> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://edge.test{path}"))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer")?;
    let (parts, body) = response.into_parts();
    let (body, trailers) = match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (Ok(collected.to_bytes()), trailers)
        }
        Err(err) => (Err(err.to_string()), None),
    };
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body,
        trailers,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_reaches_an_http2_client_whole_and_only_certain_ends_reuse_the_connection() {
    let origin = RecordingOrigin::start(script).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut client = h2(addr).await;

    // A length: the connection is kept, and the next request reuses it.
    for _ in 0..2 {
        let got = ask(&mut client, Method::GET, "/length").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body.unwrap(), "hello");
        assert_eq!(got.headers["x-kept"], "1");
        assert!(!got.headers.contains_key("keep-alive"));
    }
    assert_eq!(origin.connections(), 1);
    assert!(origin
        .received()
        .starts_with("GET /length HTTP/1.1\r\nhost: edge.test\r\n"));

    // Chunked: the data decoded, the trailers passed on but one that frames.
    let got = ask(&mut client, Method::GET, "/chunked").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.unwrap(), "hello world");
    let trailers = got.trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert!(!trailers.contains_key("content-length"));
    assert!(!got.headers.contains_key("transfer-encoding"));
    assert_eq!(origin.connections(), 1, "a chunked end is certain");

    // Where the end is the server's word only, the connection goes.
    let cases = [
        (Method::HEAD, "/head", 200, ""),
        (Method::GET, "/no-content", 204, ""),
        (Method::GET, "/interim", 200, "ok"),
        (Method::GET, "/close", 200, "until the end"),
    ];
    for (n, (method, path, status, body)) in cases.into_iter().enumerate() {
        let got = ask(&mut client, method, path).await;
        assert_eq!(got.status, status, "{path}");
        assert_eq!(got.body.unwrap(), body, "{path}");
        if path == "/head" {
            assert_eq!(got.headers["content-length"], "12");
        }
        let got = ask(&mut client, Method::GET, "/length").await;
        assert_eq!(got.body.unwrap(), "hello", "after {path}");
        assert_eq!(origin.connections(), n + 2, "after {path}");
    }

    // Framed two ways: no answer of the server's reaches the client.
    let got = ask(&mut client, Method::GET, "/two-framings").await;
    assert_eq!(got.status, 502);
    // A chunk size that is no size: the stream fails, never reads on.
    // It may be reset before its head went out; the connection's next
    // request below shows it was the stream's end only.
    if let Ok(got) = try_ask(&mut client, Method::GET, "/bad-chunk").await {
        assert!(got.body.is_err(), "{:?}", got.body);
    }
    // The client connection serves on.
    let got = ask(&mut client, Method::GET, "/length").await;
    assert_eq!(got.body.unwrap(), "hello");
}

fn says_too_much_after_head(head: &str) -> Answer {
    if head.starts_with("HEAD") {
        // A HEAD answer, then (as a broken server might) the body after all.
        return Answer {
            later: Some((
                Duration::from_millis(20),
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison".to_vec(),
            )),
            ..Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        };
    }
    Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
}

/// After a HEAD answer, whose end is the server's word only, the
/// connection is not reused: what the server sends after it never
/// answers another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_a_server_sends_after_a_head_answer_never_answer_the_next_request() {
    let origin = RecordingOrigin::start(says_too_much_after_head).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
    let mut client = h2(addr).await;
    for _ in 0..3 {
        let got = ask(&mut client, Method::HEAD, "/").await;
        assert_eq!(
            (got.status, got.body.unwrap()),
            (StatusCode::OK, Bytes::new())
        );
        let got = ask(&mut client, Method::GET, "/").await;
        assert_eq!(got.body.unwrap(), "mine");
    }
    // Each GET after a HEAD needs a new connection.
    assert_eq!(origin.connections(), 4);
}

/// A burst of requests in flight at once to one server, answered together,
/// leaves its connections idle in the pool; the next burst takes them
/// rather than connecting again (a pool that kept fewer closed the rest,
/// and every burst paid for new connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_burst_of_streams_reuses_the_first_burst_s_server_connections() {
    let server = zkgate_testkit::HttpServer::start("burst").await;
    let (_zkgate, addr) = zkgate_in_front_of(server.addr).await;
    let clients = [h2(addr).await, h2(addr).await];
    let burst = || {
        let requests = clients.iter().flat_map(|client| {
            (0..200).map(move |_| {
                let mut client = client.clone();
                async move { ask(&mut client, Method::GET, "/delay/500").await.status }
            })
        });
        futures_util::future::join_all(requests)
    };
    let first = burst().await;
    assert!(first.iter().all(|status| *status == 200));
    let after_first = server.connections();
    assert!(after_first >= 300, "in flight at once: {after_first}");
    let second = burst().await;
    assert!(second.iter().all(|status| *status == 200));
    let new = server.connections() - after_first;
    assert!(new < 40, "{new} new connections for the second burst");
}
