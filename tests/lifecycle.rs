//! Admin endpoints and shutdown.

mod common;

use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate};

use common::{servers, ZKGATE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_health_readiness_and_metrics() {
    let server = HttpServer::start("s").await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 7)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    assert_eq!(
        http_get(zkgate.admin, "/healthz").await.unwrap().status,
        200
    );
    let ready = http_get(zkgate.admin, "/ready").await.unwrap();
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (200, "ready\n")
    );
    assert_eq!(http_get(zkgate.admin, "/nope").await.unwrap().status, 404);
    let metrics = zkgate.metrics().await;
    assert!(
        metrics.contains(&format!(
            "zkgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    let server_label = format!("backend=\"web\",server=\"{}\"", server.addr);
    assert!(
        metrics.contains(&format!("zkgate_server_weight{{{server_label}}} 7")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("zkgate_server_up{{{server_label}}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkgate_backend_servers{backend=\"web\",state=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkgate_routing_table_generation 1"),
        "{metrics}"
    );

    http_get(([127, 0, 0, 1], port).into(), "/").await.unwrap();
    let requests = format!("zkgate_server_requests_total{{{server_label}}}");
    assert_eq!(zkgate.metric(&requests).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_finishes_requests_in_flight_and_exits_0() {
    let server = HttpServer::start("slow").await;
    let port = free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server.addr, 1)])
    );
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    let in_flight: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { http_get(addr, "/delay/800").await }))
        .collect();
    wait_until("20 requests in flight", Duration::from_secs(10), || async {
        (server.requests() == 20).then_some(())
    })
    .await;

    let exit = tokio::task::spawn_blocking(move || {
        let status = zkgate.terminate();
        (status, zkgate)
    });
    for request in in_flight {
        let reply = request.await.unwrap().unwrap();
        assert_eq!(reply.status, 200);
    }
    let (status, _zkgate) = exit.await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after exit"
    );
}
