//! HTTP/2 clients' common request (a bodiless `GET` or `HEAD`) to an
//! HTTP/1.1 server takes the request core's lane, with no `http::Request`
//! in between; any other goes the core's way. The two must not differ in
//! anything a server or a client can see: the same request, sent once
//! each way (a `host` field equal to the authority sends it the core's
//! way), reaches the server with the same fields and gets the client the
//! same answer, under a route that rewrites the path and edits both heads,
//! forwarded headers, request ids, a sticky backend and a server's
//! hop-by-hop fields.

mod common;

use std::time::Duration;

use zkgate_testkit::h2_frames::{frame, header_block, RawH2, END_HEADERS, END_STREAM, HEADERS};
use zkgate_testkit::{Answer, RecordingOrigin};

use common::*;

const WAIT: Duration = Duration::from_secs(5);

fn script(head: &str) -> Answer {
    let answer: &[u8] = match path_of(head).split('?').next().unwrap_or_default() {
        "/v2/a" => b"HTTP/1.1 200 OK\r\nServer: origin\r\nContent-Type: text/plain\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 5\r\n\r\nhello",
        "/chunked" => b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "/redirected" => b"HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    };
    Answer::bytes(answer)
}

fn config(port: u16, origin: std::net::SocketAddr) -> String {
    format!(
        r#"frontends:
  web:
    bind: ["127.0.0.1:{port}"]
    forwarded_headers: true
    request_id: x-request-id
    default_backend: web
    routes:
      - path_prefix: /api
        backend: web
        rewrite: {{ path_prefix: /v2 }}
        request_headers: {{ set: {{ x-env: prod }}, add: {{ x-add: a }}, remove: [x-debug] }}
        response_headers: {{ set: {{ x-frame: deny }}, remove: [server] }}
backends:
  web:
    sticky: {{ cookie: SRV }}
    servers: [{{ address: "{origin}" }}]
"#
    )
}

/// A request head as a server got it: its request line, and its fields
/// (names in lower case) in sorted order.
fn fields_of(head: &str) -> (String, Vec<String>) {
    let mut lines = head.trim_end().split("\r\n");
    let line = lines.next().unwrap_or_default().to_owned();
    let mut fields: Vec<String> = lines
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            masked(&name.to_ascii_lowercase(), value.trim())
        })
        .collect();
    fields.sort();
    (line, fields)
}

/// A field as `name: value`, with the values zkgate makes anew for each
/// request (its id, a started trace) shown as `*`.
fn masked(name: &str, value: &str) -> String {
    match name {
        "x-request-id" | "traceparent" => format!("{name}: *"),
        _ => format!("{name}: {value}"),
    }
}

/// What a client got: status, fields sorted, body.
type Got = (Option<u16>, Vec<(String, String)>, Vec<u8>);

struct Sides {
    origin: RecordingOrigin,
    h2: RawH2,
    next_stream: u32,
}

impl Sides {
    /// Sends `fields` on a new stream: the server's head for it and the
    /// client's answer.
    async fn ask(&mut self, fields: &[(&str, &str)]) -> (String, Got) {
        let before = self.origin.received().len();
        let id = self.next_stream;
        self.next_stream += 2;
        let block = header_block(fields);
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, id, &block);
        self.h2.send(&headers).await.unwrap();
        let answer = self.h2.answer_on(id, WAIT).await;
        let mut head: Vec<(String, String)> = answer
            .heads
            .last()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let field = masked(&name, &value);
                let value = field[name.len() + 2..].to_owned();
                (name, value)
            })
            .collect();
        head.sort();
        let received = self.origin.received();
        (
            received[before..].to_owned(),
            (answer.status, head, answer.body),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_and_the_core_s_way_give_servers_and_clients_the_same() {
    let origin = RecordingOrigin::start(script).await;
    let port = zkgate_testkit::free_port();
    let _zkgate = zkgate_testkit::Zkgate::start_with_env(
        ZKGATE,
        &config(port, origin.addr),
        &[("ZKGATE_WORKERS", "1")],
    )
    .await;
    let h2 = RawH2::connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut sides = Sides {
        origin,
        h2,
        next_stream: 1,
    };
    let cases: [&[(&str, &str)]; 4] = [
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "edge.test:80"),
            (":path", "/api/a?q=1"),
            ("x-debug", "1"),
            ("x-env", "dev"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
            ("x-forwarded-host", "evil"),
            ("te", "trailers"),
            ("cookie", "a=1; b=2"),
            ("accept", "*/*"),
        ],
        &[
            (":method", "HEAD"),
            (":scheme", "https"),
            (":authority", "edge.test"),
            (":path", "/api/a"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "edge.test"),
            (":path", "/chunked"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "[::1]:8080"),
            (":path", "/redirected"),
        ],
    ];
    for case in cases {
        let (lane_head, lane) = sides.ask(case).await;
        let authority = case.iter().find(|(n, _)| *n == ":authority").unwrap().1;
        let mut with_host = case.to_vec();
        with_host.push(("host", authority));
        let (core_head, core) = sides.ask(&with_host).await;
        assert_eq!(fields_of(&lane_head), fields_of(&core_head), "{case:?}");
        assert_eq!(lane, core, "{case:?}");
    }

    // And what they agree on is what the route asks for.
    let (head, got) = sides.ask(cases[0]).await;
    assert!(
        head.starts_with("GET /v2/a?q=1 HTTP/1.1\r\nhost: edge.test\r\n"),
        "the lane wrote it: {head}"
    );
    let (_, fields) = fields_of(&head);
    for expected in [
        "x-env: prod",
        "x-add: a",
        "x-forwarded-for: 192.0.2.1, 192.0.2.2, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: edge.test",
        "cookie: a=1; b=2",
        "x-request-id: *",
        "traceparent: *",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected}: {fields:?}"
        );
    }
    for gone in ["x-debug:", "te:", "x-env: dev", "x-forwarded-host: evil"] {
        assert!(
            !fields.iter().any(|f| f.starts_with(gone)),
            "{gone}: {fields:?}"
        );
    }
    let (status, answer, body) = got;
    assert_eq!(status, Some(200));
    assert_eq!(body, b"hello");
    let names: Vec<&str> = answer.iter().map(|(n, _)| n.as_str()).collect();
    for gone in ["server", "x-secret", "keep-alive", "connection"] {
        assert!(!names.contains(&gone), "{gone}: {answer:?}");
    }
    for kept in [
        "x-kept",
        "x-frame",
        "content-type",
        "set-cookie",
        "x-request-id",
    ] {
        assert!(names.contains(&kept), "{kept}: {answer:?}");
    }
    // A chunked answer reaches the client framed by HTTP/2 alone.
    let (_, (_, answer, body)) = sides.ask(cases[2]).await;
    assert_eq!(body, b"abc");
    let names: Vec<&str> = answer.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"transfer-encoding") && !names.contains(&"content-length"));
}
