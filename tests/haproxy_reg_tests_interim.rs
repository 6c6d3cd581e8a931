//! Interim (1xx) answers, from HAProxy's `reg-tests/http-messaging`
//! (`http_1xx_responses.vtc`), ported to raw sockets with HAProxy's
//! expectations. A server's 103 Early Hints reach an HTTP/1.1 client
//! before the final answer; `Expect: 100-continue` is answered by zkgate.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
/// whole. (`c2`, `c8`: HTTP/2 clients and HTTP/2 servers are served by
/// hyper, which cannot send a 1xx of a server's: there they are dropped;
/// `c6`, `c7`: hints zkgate would make itself, a feature it has not.)
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

/// `http_1xx_responses.vtc` `c3`, `c5`: a client that sends `Expect:
/// 100-continue` gets one `100`, then the answer, and the server the whole
/// body. zkgate answers the `Expect` itself as it reads the body (as
/// HAProxy's `c5` setup does), so the server does not see it (`c3`'s
/// server expects to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1xx_responses_c3_c5_expect_100_continue() {
    let origin = RecordingOrigin::start(continues).await;
    let (_zkgate, addr) = zkgate_in_front_of(origin.addr).await;
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
    client.write_all(b"request 2 ").await.unwrap();
    let answer = read_to(&mut client, "response 1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 100").count(),
        0,
        "one 100 only: {answer}"
    );
    let seen = origin.received().to_ascii_lowercase();
    assert!(seen.ends_with("\r\n\r\nrequest 2 "), "{seen}");
    assert!(!seen.contains("expect"), "{seen}");
}
