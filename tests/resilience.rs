//! Keeping bad servers out and clients where they belong: outlier ejection,
//! panic threshold, slow start, connection limits, sticky sessions, retries.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncReadExt;
use zkgate_testkit::{free_port, http_get, http_request, wait_until, HttpServer, Zkgate};

use common::*;

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn web(port: u16, backend: &str, list: &[(SocketAddr, u32)]) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n{backend}    servers: {}\n",
        servers(list)
    )
}

/// A server that reads a whole request and resets the connection without answering.
async fn resetting_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                // Read the head and its body, so the request was surely sent whole.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let body = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + body {
                            break;
                        }
                    }
                }
                // Linger 0: closing sends RST at once.
                #[allow(deprecated)]
                stream.set_linger(Some(Duration::ZERO)).ok();
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_resets_causes_no_get_error_and_a_sent_post_is_not_retried() {
    let good = HttpServer::start("good").await;
    let (bad, _task) = resetting_server().await;
    let port = free_port();
    let _zkgate = Zkgate::start(
        ZKGATE,
        &web(port, "    retries: 2\n", &[(bad, 1), (good.addr, 1)]),
    )
    .await;
    for _ in 0..20 {
        let reply = http_get(local(port), "/").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "good")
        );
    }
    let before = good.requests();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let post = Request::post("/upload")
            .header("host", "x")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        statuses.push(
            http_request(local(port), post)
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    // POSTs that reached the resetting server fail; none is sent again elsewhere.
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 502),
        "{statuses:?}"
    );
    assert!(ok < 6, "no POST reached the resetting server: {statuses:?}");
    assert_eq!(
        good.requests() - before,
        ok,
        "a failed POST was replayed: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_failures_eject_a_server_until_its_ejection_ends() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let backend = "    outlier_detection: { consecutive_failures: 3, ejection: 1s, max_ejected_percent: 50 }\n";
    let zkgate = Zkgate::start(ZKGATE, &web(port, backend, &[(a.addr, 1), (b.addr, 1)])).await;
    // a answers 500: three in a row eject it.
    a.set_failing(true);
    let mut served = Vec::new();
    for _ in 0..10 {
        served.push(
            http_get(local(port), "/")
                .await
                .unwrap()
                .header("x-served-by")
                .unwrap_or("")
                .to_owned(),
        );
    }
    let tail: Vec<&str> = served[6..].iter().map(String::as_str).collect();
    assert!(
        tail.iter().all(|s| *s == "b"),
        "a still served after failing: {served:?}"
    );
    a.set_failing(false);
    let up = format!("zkgate_server_up{{backend=\"web\",server=\"{}\"}}", a.addr);
    assert_eq!(zkgate.metric(&up).await, Some(0.0));
    // After the ejection, a takes traffic again.
    wait_until("a to return", Duration::from_secs(5), || async {
        (zkgate.metric(&up).await == Some(1.0)).then_some(())
    })
    .await;
    wait_for_spread(local(port), "/", &[("a", 2), ("b", 2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejected_percent_keeps_half_the_servers_in() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let backend = "    outlier_detection: { consecutive_failures: 2, ejection: 30s, max_ejected_percent: 50 }\n";
    let zkgate = Zkgate::start(ZKGATE, &web(port, backend, &[(a.addr, 1), (b.addr, 1)])).await;
    for _ in 0..12 {
        http_get(local(port), "/status/503").await.unwrap();
    }
    let ups = [a.addr, b.addr]
        .map(|addr| format!("zkgate_server_up{{backend=\"web\",server=\"{addr}\"}}"));
    let mut up = 0.0;
    for series in &ups {
        up += zkgate.metric(series).await.unwrap();
    }
    assert_eq!(up, 1.0, "exactly one of two servers may be ejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_threshold_routes_to_every_server_when_too_few_are_healthy() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let backend = "    panic_threshold: 60\n    health_check: { kind: http, path: /healthz, interval: 100ms, timeout: 2s, fall: 1 }\n";
    let zkgate = Zkgate::start(ZKGATE, &web(port, backend, &[(a.addr, 1), (b.addr, 1)])).await;
    wait_for_spread(local(port), "/", &[("a", 2), ("b", 2)]).await;
    let generation = zkgate.metric("zkgate_routing_table_generation").await;
    a.set_healthy(false);
    // a going down rebuilds the table: 1 of 2 healthy is under 60%, so it panics and both still serve.
    wait_until(
        "the table built after a went down",
        Duration::from_secs(5),
        || async {
            (zkgate.metric("zkgate_routing_table_generation").await > generation).then_some(())
        },
    )
    .await;
    assert_eq!(spread(local(port), "/", 4).await.get("a"), Some(&2));

    // Without a threshold the same failure takes a out.
    let port2 = free_port();
    let plain =
        "    health_check: { kind: http, path: /healthz, interval: 100ms, timeout: 2s, fall: 1 }\n";
    let _other = Zkgate::start(ZKGATE, &web(port2, plain, &[(a.addr, 1), (b.addr, 1)])).await;
    wait_for_spread(local(port2), "/", &[("b", 4)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_server_up_gradually() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &web(port, "", &[(a.addr, 100)])).await;
    zkgate
        .reload(&web(
            port,
            "    slow_start: 4s\n",
            &[(a.addr, 100), (b.addr, 100)],
        ))
        .await;
    let early = spread(local(port), "/", 100).await;
    assert!(
        early.get("b").copied().unwrap_or(0) < 30,
        "b got a full share at once: {early:?}"
    );
    wait_for_spread(local(port), "/", &[("a", 50), ("b", 50)]).await;
    let generation = zkgate
        .metric("zkgate_routing_table_generation")
        .await
        .unwrap();
    assert!(
        generation >= 4.0,
        "slow start rebuilt the table only {generation} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_per_server_limit_requests_go_elsewhere_then_get_503() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let _zkgate = Zkgate::start(
        ZKGATE,
        &web(
            port,
            "    max_connections_per_server: 1\n",
            &[(a.addr, 1), (b.addr, 1)],
        ),
    )
    .await;
    let long: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { http_get(local(port), "/delay/1000").await }))
        .collect();
    wait_until("both servers busy", Duration::from_secs(5), || async {
        (a.requests() == 1 && b.requests() == 1).then_some(())
    })
    .await;
    assert_eq!(http_get(local(port), "/").await.unwrap().status, 503);
    for request in long {
        assert_eq!(request.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(http_get(local(port), "/").await.unwrap().status, 200);
}

async fn get_with_cookie(port: u16, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = Request::get("/").header("host", "x");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let reply = http_request(local(port), request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let set = reply
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap().to_owned());
    (reply.text(), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_clients_keep_their_server_across_requests_swaps_and_drain_but_not_maint() {
    let zk = zkgate_testkit::ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let servers = [
        HttpServer::start("a").await,
        HttpServer::start("b").await,
        HttpServer::start("c").await,
    ];
    for s in &servers {
        register(&client, "/services/web", s.addr, 1, "ready").await;
    }
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    sticky: {{ cookie: ZKGATE_SERVER }}\n    zookeeper: {{ path: /services/web }}\n",
        zk.connect_string()
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let (home, cookie) = get_with_cookie(port, None).await;
    let cookie = cookie.expect("a first request gets the sticky cookie");
    assert!(cookie.starts_with("ZKGATE_SERVER="), "{cookie}");
    for _ in 0..100 {
        let (server, set) = get_with_cookie(port, Some(&cookie)).await;
        assert_eq!((server.as_str(), set), (home.as_str(), None));
    }
    let home_addr = servers.iter().find(|s| s.name == home).unwrap().addr;
    let generation = zkgate
        .metric("zkgate_routing_table_generation")
        .await
        .unwrap();
    // A table swap (another server re-weighted) keeps it.
    let other = servers.iter().find(|s| s.name != home).unwrap().addr;
    set_member(&client, "/services/web", other, 5, "ready").await;
    wait_until("the swap", Duration::from_secs(5), || async {
        (zkgate.metric("zkgate_routing_table_generation").await > Some(generation)).then_some(())
    })
    .await;
    assert_eq!(get_with_cookie(port, Some(&cookie)).await.0, home);
    // Drain keeps sticky clients.
    set_member(&client, "/services/web", home_addr, 1, "drain").await;
    let others: Vec<(&str, usize)> = ["a", "b", "c"]
        .into_iter()
        .filter(|n| *n != home)
        .map(|n| (n, 1))
        .collect();
    wait_for_spread(local(port), "/", &others).await;
    assert_eq!(get_with_cookie(port, Some(&cookie)).await.0, home);
    // Maint moves them, with a new cookie.
    set_member(&client, "/services/web", home_addr, 1, "maint").await;
    let moved = wait_until("the client to move", Duration::from_secs(5), || async {
        let (server, set) = get_with_cookie(port, Some(&cookie)).await;
        (server != home).then_some(set)
    })
    .await;
    let new_cookie = moved.expect("a moved client gets a new cookie");
    assert_ne!(new_cookie, cookie);
}
