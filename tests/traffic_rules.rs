//! Traffic rules of routes: weighted splits (with and without a key, moved
//! by a `config_node` write), redirects, path rewrites, header rules and
//! request ids, over HTTP/1.1 (fast and full path) and HTTP/2 alike.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use zkgate_testkit::{
    free_port, h2_server::H2Server, http_get, wait_until, Answer, HttpServer, RecordingOrigin,
    Zkgate, ZooKeeper,
};

use common::*;

/// What a client got: status, headers, body.
struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

/// A keep-alive HTTP/1.1 connection to zkgate.
async fn h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn collect(response: http::Response<hyper::body::Incoming>) -> Got {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `method` `path` with `headers` and `body`, over a fresh connection of
/// each wire path: HTTP/1.1 (bodiless requests take the fast path, others
/// hyper's) and HTTP/2.
async fn send(
    addr: SocketAddr,
    h2_client: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let uri = if h2_client {
        format!("http://app.example{path}")
    } else {
        path.to_owned()
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    if !h2_client {
        builder = builder.header("host", "app.example");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = send_on_new_connection(addr, h2_client, request).await;
    collect(response).await
}

fn ok_answer(_: &str) -> Answer {
    Answer::bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: origin/1.0\r\nX-Debug: secret\r\nX-Request-Id: from-origin\r\n\r\nok")
}

/// The last request head the origin received, lowercased.
fn last_head(origin: &RecordingOrigin) -> String {
    let received = origin.received().to_ascii_lowercase();
    let start = received
        .rfind("get ")
        .into_iter()
        .chain(received.rfind("post "))
        .max()
        .unwrap();
    let end = received[start..].find("\r\n\r\n").unwrap() + start;
    received[start..end].to_owned()
}

fn routes_config(port: u16, routes: &str, backends: &str, extra: &str) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n{extra}    routes:\n{routes}    default_backend: a\nbackends:\n{backends}"
    )
}

/// One route splitting every request between backends `a` and `b` (one
/// server each, at the weights given); `b_options` go before b's servers.
fn split_config(port: u16, sides: [(SocketAddr, u32); 2], b_options: &str) -> String {
    let [(a, a_weight), (b, b_weight)] = sides;
    routes_config(
        port,
        &format!("      - {{ path_prefix: /, split: [{{ backend: a, weight: {a_weight} }}, {{ backend: b, weight: {b_weight} }}] }}\n"),
        &format!(
            "  a: {{ servers: {} }}\n  b: {{ {b_options}servers: {} }}\n",
            servers(&[(a, 1)]),
            servers(&[(b, 1)])
        ),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_95_5_split_holds_its_weights_over_20000_requests() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let config = split_config(port, [(a.addr, 95), (b.addr, 5)], "");
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let total = 20_000;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut sender = h1(addr).await;
                for _ in 0..total / 4 {
                    sender.ready().await.unwrap();
                    let request = http::Request::get("/")
                        .header("host", "x")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let got = collect(sender.send_request(request).await.unwrap()).await;
                    assert_eq!(got.status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let share_b = b.requests() as f64 / total as f64;
    assert_eq!(a.requests() + b.requests(), total);
    assert!((share_b - 0.05).abs() < 0.01, "b got {share_b}");
    let metric = |backend: &str| {
        format!("zkgate_route_split_requests_total{{backend=\"{backend}\",frontend=\"web\"}}")
    };
    assert_eq!(zkgate.metric(&metric("b")).await, Some(b.requests() as f64));
    assert_eq!(zkgate.metric(&metric("a")).await, Some(a.requests() as f64));
}

/// A split whose sides speak different protocols: the fast path and the
/// HTTP/2 lane carry only one of them, so the request core draws the
/// side, once, and the weights hold from either kind of client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_across_protocols_holds_its_weights_from_every_client() {
    let (a, b) = (HttpServer::start("a").await, H2Server::start().await);
    let port = free_port();
    let config = split_config(port, [(a.addr, 50), (b.addr, 50)], "protocol: http2, ");
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let total = 800;
    for h2_client in [false, true] {
        let (before_a, before_b) = (a.requests(), b.seen().len());
        for _ in 0..total {
            let got = send(addr, h2_client, "GET", "/", &[], "").await;
            assert_eq!(got.status, 200);
        }
        let to_b = b.seen().len() - before_b;
        assert_eq!(a.requests() - before_a + to_b, total);
        // 400 expected, sd 14; a side drawn twice would give b 200.
        let share_b = to_b as f64 / total as f64;
        assert!(
            (share_b - 0.5).abs() < 0.1,
            "h2 client {h2_client}: b got {share_b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_by_cookie_keeps_each_key_on_its_side() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let config = routes_config(
        port,
        "      - { path_prefix: /, split: [{ backend: a, weight: 50 }, { backend: b, weight: 50 }], split_key: cookie(uid) }\n",
        &format!(
            "  a: {{ servers: {} }}\n  b: {{ servers: {} }}\n",
            servers(&[(a.addr, 1)]),
            servers(&[(b.addr, 1)])
        ),
        "",
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let mut sides = [0usize; 2];
    for uid in 0..200 {
        let cookie = format!("theme=dark; uid=user-{uid}");
        let mut seen = None;
        // Over both HTTP/1.1 paths and HTTP/2: one side per key.
        for (h2_client, method, body) in
            [(false, "GET", ""), (false, "POST", "x"), (true, "GET", "")]
        {
            let got = send(addr, h2_client, method, "/", &[("cookie", &cookie)], body).await;
            assert_eq!(got.status, 200);
            let side = got.body.clone();
            assert!(
                seen.is_none() || seen.as_ref() == Some(&side),
                "uid {uid}: {seen:?} then {side}"
            );
            seen = Some(side);
        }
        sides[usize::from(seen.unwrap() == "b")] += 1;
    }
    // 200 keys at 50/50: each side gets a fair share (binomial, 6 sigma).
    assert!(sides[0] > 55 && sides[1] > 55, "{sides:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_weights_moved_by_a_config_node_write_take_effect_without_a_failed_request() {
    let zk = ZooKeeper::standalone();
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let document = |wa: u32, wb: u32| {
        routes_config(
            port,
            &format!("      - {{ path_prefix: /, split: [{{ backend: a, weight: {wa} }}, {{ backend: b, weight: {wb} }}] }}\n"),
            &format!(
                "  a: {{ servers: {} }}\n  b: {{ servers: {} }}\n",
                servers(&[(a.addr, 1)]),
                servers(&[(b.addr, 1)])
            ),
            "",
        )
    };
    let client = zk_client(&zk).await;
    mkdir(&client, "/zkgate").await;
    create(&client, "/zkgate/config", document(100, 0).as_bytes()).await;
    let local = format!(
        "zookeeper:\n  connect: \"{}\"\n  config_node: /zkgate/config\n",
        zk.connect_string()
    );
    let _zkgate = Zkgate::start(ZKGATE, &local).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until("zkgate serves", Duration::from_secs(10), || async {
        (http_get(addr, "/").await.is_ok_and(|r| r.status == 200)).then_some(())
    })
    .await;
    // Traffic runs through the ramp: not one request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failed) = (stop.clone(), failed.clone());
            tokio::spawn(async move {
                let mut sender = h1(addr).await;
                while !stop.load(Ordering::Relaxed) {
                    if sender.ready().await.is_err() {
                        sender = h1(addr).await;
                    }
                    let request = http::Request::get("/")
                        .header("host", "x")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    match sender.send_request(request).await {
                        Ok(response) if response.status() == 200 => {
                            let _ = collect(response).await;
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            sender = h1(addr).await;
                        }
                    }
                }
            })
        })
        .collect();
    assert_eq!(b.requests(), 0);
    for (wa, wb) in [(90, 10), (50, 50), (0, 100)] {
        client
            .set_data("/zkgate/config", document(wa, wb).as_bytes(), None)
            .await
            .unwrap();
        let before = b.requests();
        wait_until("b takes traffic", Duration::from_secs(10), || async {
            (b.requests() > before + 20).then_some(())
        })
        .await;
    }
    // At 0/100, a takes nothing more.
    let settled = a.requests();
    let b_before = b.requests();
    wait_until("b takes everything", Duration::from_secs(10), || async {
        (b.requests() > b_before + 200).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(a.requests() <= settled + 2, "a kept getting requests");
    assert_eq!(failed.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_answered_without_a_server_on_every_path() {
    let origin = RecordingOrigin::start(ok_answer).await;
    let port = free_port();
    let config = routes_config(
        port,
        "      - { path_prefix: /old, redirect: { location: \"https://{host}\", code: 301, keep_path: true } }\n      - { path_prefix: /moved, redirect: { location: \"https://new.example/\" } }\n",
        &format!("  a: {{ servers: {} }}\n", servers(&[(origin.addr, 1)])),
        "",
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    for h2_client in [false, true] {
        for (method, body) in [("GET", ""), ("POST", "data")] {
            let got = send(addr, h2_client, method, "/old/page?q=1", &[], body).await;
            assert_eq!(got.status, 301);
            assert_eq!(got.headers["location"], "https://app.example/old/page?q=1");
            assert_eq!(got.body, "");
            let got = send(addr, h2_client, method, "/moved/x", &[], body).await;
            assert_eq!(
                (got.status, got.headers["location"].to_str().unwrap()),
                (302, "https://new.example/")
            );
        }
    }
    // HTTP/1.1 with a port in Host: `{host}` is the name alone.
    let reply = zkgate_testkit::raw_exchange(
        addr,
        b"GET /old HTTP/1.1\r\nHost: app.example:8080\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 301 "), "{reply}");
    assert!(
        reply.contains("location: https://app.example/old\r\n"),
        "{reply}"
    );
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_and_header_rules_apply_alike_on_every_path() {
    let origin = RecordingOrigin::start(ok_answer).await;
    let port = free_port();
    let route = "      - path_prefix: /api\n        backend: a\n        rewrite: { path_prefix: /v2 }\n        request_headers: { set: { x-env: prod }, add: { x-via: edge }, remove: [x-debug] }\n        response_headers: { set: { strict-transport-security: \"max-age=31536000\" }, remove: [server, x-debug] }\n";
    let config = routes_config(
        port,
        route,
        &format!("  a: {{ servers: {} }}\n", servers(&[(origin.addr, 1)])),
        "",
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let sent = [("x-env", "dev"), ("x-via", "client"), ("x-debug", "1")];
    for (h2_client, method, body) in [
        (false, "GET", ""),
        (false, "POST", "data"),
        (true, "GET", ""),
    ] {
        let got = send(addr, h2_client, method, "/api/users?id=7", &sent, body).await;
        let label = format!("h2 {h2_client} {method}");
        assert_eq!(got.status, 200, "{label}");
        assert_eq!(
            got.headers["strict-transport-security"], "max-age=31536000",
            "{label}"
        );
        assert!(got.headers.get("server").is_none(), "{label}");
        assert!(got.headers.get("x-debug").is_none(), "{label}");
        assert_eq!(got.headers["x-request-id"], "from-origin", "{label}");
        let head = last_head(&origin);
        let path = format!("{} /v2/users?id=7 http/1.1", method.to_ascii_lowercase());
        assert!(head.starts_with(&path), "{label}: {head}");
        assert!(head.contains("\r\nx-env: prod"), "{label}: {head}");
        assert!(!head.contains("x-env: dev"), "{label}: {head}");
        assert!(
            head.contains("\r\nx-via: client") && head.contains("\r\nx-via: edge"),
            "{label}: {head}"
        );
        assert!(!head.contains("x-debug"), "{label}: {head}");
    }
    // Other routes are untouched.
    let got = send(addr, false, "GET", "/other", &sent, "").await;
    assert_eq!(got.headers["server"], "origin/1.0");
    let head = last_head(&origin);
    assert!(
        head.starts_with("get /other http/1.1") && head.contains("x-debug: 1"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_traces_cross_the_edge_and_reach_the_log() {
    let origin = RecordingOrigin::start(ok_answer).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = format!(
        "access_log: {{ format: json, path: \"{}\" }}\n{}",
        log.display(),
        routes_config(
            port,
            "      - { path_prefix: /, backend: a }\n",
            &format!("  a: {{ servers: {} }}\n", servers(&[(origin.addr, 1)])),
            "    request_id: x-request-id\n",
        )
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut ids = Vec::new();
    for (h2_client, method, body) in [
        (false, "GET", ""),
        (false, "POST", "data"),
        (true, "GET", ""),
    ] {
        let label = format!("h2 {h2_client} {method}");
        // Without an id or a trace: both given, the same to server and client.
        let got = send(addr, h2_client, method, "/", &[], body).await;
        let id = got.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{label}: {id}"
        );
        let head = last_head(&origin);
        assert!(
            head.contains(&format!("\r\nx-request-id: {id}")),
            "{label}: {head}"
        );
        assert_eq!(head.matches("x-request-id").count(), 1, "{label}: {head}");
        let started = head
            .lines()
            .find_map(|l| l.strip_prefix("traceparent: "))
            .unwrap_or_else(|| panic!("{label}: no traceparent in {head}"))
            .to_owned();
        assert!(
            started.len() == 55 && started.starts_with("00-") && !started.contains(&parent[3..35]),
            "{label}: {started}"
        );
        ids.push((id, started[3..35].to_owned()));
        // With both: kept as they are.
        let got = send(
            addr,
            h2_client,
            method,
            "/",
            &[("x-request-id", "client-7"), ("traceparent", parent)],
            body,
        )
        .await;
        assert_eq!(got.headers["x-request-id"], "client-7", "{label}");
        let head = last_head(&origin);
        assert!(
            head.contains("\r\nx-request-id: client-7"),
            "{label}: {head}"
        );
        assert!(
            head.contains(&format!("\r\ntraceparent: {parent}")),
            "{label}: {head}"
        );
        assert_eq!(head.matches("traceparent").count(), 1, "{label}: {head}");
        ids.push(("client-7".to_owned(), parent[3..35].to_owned()));
    }
    // Every request's line carries its ids.
    wait_until("six lines logged", Duration::from_secs(10), || async {
        (std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() >= 6)).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for (id, trace) in &ids {
        assert!(
            lines
                .iter()
                .any(|l| l["request_id"] == id.as_str() && l["trace_id"] == trace.as_str()),
            "{id} {trace} in {text}"
        );
    }
}
