//! Active health checks end to end.

mod common;

use std::time::Duration;

use zkgate_testkit::{free_port, wait_until, HttpServer, TcpServer, Zkgate};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_leaves_rotation_after_fall_checks_and_returns_after_rise() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    health_check: {{ kind: http, path: /healthz, interval: 100ms, timeout: 2s, rise: 2, fall: 2 }}\n    servers: {}\n",
        servers(&[(a.addr, 1), (b.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    wait_for_spread(addr, "/", &[("a", 5), ("b", 5)]).await;

    a.set_healthy(false);
    wait_for_spread(addr, "/", &[("b", 10)]).await;
    let failures = format!(
        "zkgate_server_health_check_failures_total{{backend=\"web\",server=\"{}\"}}",
        a.addr
    );
    assert!(zkgate.metric(&failures).await >= Some(2.0));
    let up = format!("zkgate_server_up{{backend=\"web\",server=\"{}\"}}", a.addr);
    assert_eq!(zkgate.metric(&up).await, Some(0.0));

    a.set_healthy(true);
    wait_for_spread(addr, "/", &[("a", 5), ("b", 5)]).await;
    assert_eq!(zkgate.metric(&up).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_causes_no_client_error_with_retries_and_is_taken_out() {
    let a = HttpServer::start("a").await;
    let b = HttpServer::start("b").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    retries: 1\n    health_check: {{ kind: tcp, interval: 100ms, timeout: 2s, fall: 2 }}\n    servers: {}\n",
        servers(&[(a.addr, 1), (b.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    wait_for_spread(addr, "/", &[("a", 5), ("b", 5)]).await;
    let dead = a.addr;
    drop(a);
    // Every request succeeds: connect failures go to b until the check takes a out.
    for _ in 0..20 {
        let reply = zkgate_testkit::http_get(addr, "/").await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
    }
    let up = format!("zkgate_server_up{{backend=\"web\",server=\"{dead}\"}}");
    wait_until(
        "the dead server to be marked down",
        Duration::from_secs(10),
        || async { (zkgate.metric(&up).await == Some(0.0)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_checks_can_send_and_expect_like_a_zookeeper_ruok() {
    // The echo server answers what it is sent: `ruok` expects `ruok`, `imok` is never seen.
    let echo = TcpServer::start("e").await;
    let port = free_port();
    let make = |expect: &str| {
        format!(
            "frontends:\n  db:\n    bind: [\"127.0.0.1:{port}\"]\n    mode: tcp\n    default_backend: db\nbackends:\n  db:\n    mode: tcp\n    health_check: {{ kind: tcp, send: ruok, expect: {expect}, interval: 100ms, timeout: 2s, fall: 1 }}\n    servers: {}\n",
            servers(&[(echo.addr, 1)])
        )
    };
    let zkgate = Zkgate::start(ZKGATE, &make("ruok")).await;
    let up = format!(
        "zkgate_server_up{{backend=\"db\",server=\"{}\"}}",
        echo.addr
    );
    wait_until(
        "the echo server to pass",
        Duration::from_secs(10),
        || async { (zkgate.metric(&up).await == Some(1.0)).then_some(()) },
    )
    .await;
    zkgate.reload(&make("imok")).await;
    wait_until(
        "the echo server to fail",
        Duration::from_secs(10),
        || async { (zkgate.metric(&up).await == Some(0.0)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_added_in_zookeeper_gets_traffic_only_once_its_first_check_passes() {
    let zk = zkgate_testkit::ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (healthy, sick) = (
        HttpServer::start("healthy").await,
        HttpServer::start("sick").await,
    );
    sick.set_healthy(false);
    register(&client, "/services/web", healthy.addr, 1, "ready").await;
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: /services/web }}\n    health_check: {{ kind: http, path: /healthz, interval: 100ms, timeout: 2s }}\n",
        zk.connect_string()
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    wait_for_spread(addr, "/", &[("healthy", 4)]).await;

    register(&client, "/services/web", sick.addr, 1, "ready").await;
    let checked = format!(
        "zkgate_server_health_check_failures_total{{backend=\"web\",server=\"{}\"}}",
        sick.addr
    );
    wait_until(
        "the new member to be checked",
        Duration::from_secs(10),
        || async { (zkgate.metric(&checked).await >= Some(1.0)).then_some(()) },
    )
    .await;
    assert_eq!(spread(addr, "/", 10).await.get("healthy"), Some(&10));

    sick.set_healthy(true);
    wait_for_spread(addr, "/", &[("healthy", 5), ("sick", 5)]).await;
}
