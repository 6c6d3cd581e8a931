//! The admin endpoints: counters that move by exactly the traffic driven,
//! the status API, and the stats page as a browser shows it.

mod common;

use std::time::Duration;

use zkgate_testkit::{free_port, http_get, wait_until, HttpServer, Zkgate, ZooKeeper};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_the_traffic_driven() {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    routes: [{{ path_prefix: /none, backend: empty }}]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n  empty: {{ servers: [] }}\n",
        servers(&[(a.addr, 1), (b.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr = ([127, 0, 0, 1], port).into();
    for _ in 0..6 {
        assert_eq!(http_get(addr, "/").await.unwrap().status, 200);
    }
    for _ in 0..4 {
        assert_eq!(http_get(addr, "/status/404").await.unwrap().status, 404);
    }
    for _ in 0..2 {
        assert_eq!(http_get(addr, "/status/500").await.unwrap().status, 500);
    }
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/none").await.unwrap().status, 503);
    }
    let expect = [
        (
            r#"zkgate_frontend_requests_total{frontend="web"}"#.to_owned(),
            15.0,
        ),
        (
            r#"zkgate_frontend_connections_total{frontend="web"}"#.to_owned(),
            15.0,
        ),
        (
            r#"zkgate_backend_responses_total{backend="web",code="2xx"}"#.to_owned(),
            6.0,
        ),
        (
            r#"zkgate_backend_responses_total{backend="web",code="4xx"}"#.to_owned(),
            4.0,
        ),
        (
            r#"zkgate_backend_responses_total{backend="web",code="5xx"}"#.to_owned(),
            2.0,
        ),
        (
            r#"zkgate_backend_responses_total{backend="empty",code="5xx"}"#.to_owned(),
            3.0,
        ),
        (
            r#"zkgate_backend_no_server_total{backend="empty"}"#.to_owned(),
            3.0,
        ),
        (
            r#"zkgate_backend_response_seconds_count{backend="web"}"#.to_owned(),
            12.0,
        ),
        (
            format!(
                "zkgate_server_requests_total{{backend=\"web\",server=\"{}\"}}",
                a.addr
            ),
            6.0,
        ),
        (
            format!(
                "zkgate_server_requests_total{{backend=\"web\",server=\"{}\"}}",
                b.addr
            ),
            6.0,
        ),
        (
            r#"zkgate_backend_connect_errors_total{backend="web"}"#.to_owned(),
            0.0,
        ),
        ("zkgate_routing_table_generation".to_owned(), 1.0),
    ];
    for (series, value) in &expect {
        assert_eq!(zkgate.metric(series).await, Some(*value), "{series}");
    }
    // Bytes are counted after each write: wait for the last response's.
    wait_until("byte counters", Duration::from_secs(5), || async {
        let sent = zkgate
            .metric(r#"zkgate_frontend_bytes_sent_total{frontend="web"}"#)
            .await?;
        let received = zkgate
            .metric(r#"zkgate_frontend_bytes_received_total{frontend="web"}"#)
            .await?;
        (sent > 15.0 * 60.0 && received > 15.0 * 25.0).then_some(())
    })
    .await;
    // Each connection is released just after its last byte: poll for it.
    wait_until(
        "every connection to be released",
        Duration::from_secs(5),
        || async {
            let active = zkgate
                .metric(r#"zkgate_frontend_active_connections{frontend="web"}"#)
                .await;
            (active == Some(0.0)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_shows_servers_discovery_and_reloads() {
    let zk = ZooKeeper::standalone();
    let client = zk_client(&zk).await;
    let (web, fixed) = (
        HttpServer::start("web").await,
        HttpServer::start("fixed").await,
    );
    register(&client, "/services/web", web.addr, 3, "drain").await;
    create(&client, "/services/web/garbage", b"{").await;
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    servers: {}\n    zookeeper: {{ path: /services/web }}\n",
        zk.connect_string(),
        servers(&[(fixed.addr, 1)])
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let status: serde_json::Value = serde_json::from_str(
        &http_get(zkgate.admin, "/api/v1/status")
            .await
            .unwrap()
            .text(),
    )
    .unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["config_generation"], 1);
    assert!(
        status["table_generation"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert_eq!(status["zookeeper"]["connected"], true);
    assert_eq!(status["discovery"]["web"]["synced"], true);
    assert_eq!(status["discovery"]["web"]["invalid_members"], 1);
    let servers = status["backends"][0]["servers"].as_array().unwrap();
    let by_address = |addr: std::net::SocketAddr| {
        servers
            .iter()
            .find(|s| s["address"] == addr.to_string())
            .unwrap()
            .clone()
    };
    let fixed_status = by_address(fixed.addr);
    assert_eq!(
        (
            fixed_status["source"].as_str(),
            fixed_status["state"].as_str(),
            fixed_status["up"].as_bool()
        ),
        (Some("static"), Some("ready"), Some(true))
    );
    let web_status = by_address(web.addr);
    assert_eq!(
        (
            web_status["source"].as_str(),
            web_status["state"].as_str(),
            web_status["weight"].as_u64(),
            web_status["up"].as_bool()
        ),
        (Some("zookeeper"), Some("drain"), Some(3), Some(false))
    );
    assert_eq!(web_status["health"], "unchecked");

    zkgate.reload("frontends: [broken").await;
    let status: serde_json::Value = serde_json::from_str(
        &http_get(zkgate.admin, "/api/v1/status")
            .await
            .unwrap()
            .text(),
    )
    .unwrap();
    assert_eq!(status["last_reload"]["result"], "error");
    assert!(
        status["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid YAML"),
        "{status}"
    );
    assert_eq!(status["config_generation"], 1);
}

/// Headless Chromium, as the Debian package installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_shows_a_person_every_server_and_its_state() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with: sudo apt-get install -y chromium (./scripts/test.sh does this)"
    );
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let port = free_port();
    let config = format!(
        "frontends:\n  shop:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: catalog\nbackends:\n  catalog:\n    health_check: {{ kind: http, path: /healthz, interval: 100ms, timeout: 2s, fall: 3 }}\n    servers: [{{ address: \"{}\", weight: 7 }}, {{ address: \"{}\", weight: 2 }}]\n",
        a.addr, b.addr
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    b.set_healthy(false);
    let up = format!(
        "zkgate_server_up{{backend=\"catalog\",server=\"{}\"}}",
        b.addr
    );
    wait_until("b down", Duration::from_secs(10), || async {
        (zkgate.metric(&up).await == Some(0.0)).then_some(())
    })
    .await;
    for _ in 0..5 {
        http_get(([127, 0, 0, 1], port).into(), "/").await.unwrap();
    }

    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("stats.png");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/stats", zkgate.admin);
    let chromium = |extra: &[String]| {
        std::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let dom = chromium(&["--dump-dom".to_owned()]);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let page = String::from_utf8_lossy(&dom.stdout);
    for seen in [
        "zkgate",
        "Frontends",
        "shop",
        "Backend catalog",
        "1/2 up",
        &a.addr.to_string(),
        &b.addr.to_string(),
        "down",
        "responses 1xx 0 · 2xx 5",
    ] {
        assert!(
            page.contains(seen),
            "the page does not show `{seen}`:\n{page}"
        );
    }
    let shot = chromium(&[
        format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,800".to_owned(),
    ]);
    assert!(
        shot.status.success(),
        "screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot looks empty ({} bytes)",
        png.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_line_per_request_and_connection() {
    let web = HttpServer::start("w").await;
    let echo = zkgate_testkit::TcpServer::start("e").await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let (http_port, tcp_port) = (free_port(), free_port());
    let config = format!(
        "access_log: {{ format: json, path: {} }}\nfrontends:\n  web: {{ bind: [\"127.0.0.1:{http_port}\"], default_backend: web }}\n  db: {{ bind: [\"127.0.0.1:{tcp_port}\"], mode: tcp, default_backend: db }}\nbackends:\n  web: {{ servers: {} }}\n  db: {{ mode: tcp, servers: {} }}\n",
        log_path.display(),
        servers(&[(web.addr, 1)]),
        servers(&[(echo.addr, 1)])
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    http_get(([127, 0, 0, 1], http_port).into(), "/download/1000?x=1")
        .await
        .unwrap();
    http_get(([127, 0, 0, 1], http_port).into(), "/status/404")
        .await
        .unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .unwrap();
        stream.write_all(b"hello").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
    }
    let lines = wait_until("three log lines", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines.len() == 3).then_some(lines)
    })
    .await;
    // A line is written once its exchange ends, after the client has its last
    // byte, so lines from different workers may land in either order.
    let line = |key: &str, value: &str| {
        lines
            .iter()
            .find(|l| l[key].as_str() == Some(value))
            .unwrap_or_else(|| panic!("no line with {key} {value}: {lines:?}"))
    };
    let first = line("path", "/download/1000?x=1");
    assert_eq!(
        (
            first["frontend"].as_str(),
            first["backend"].as_str(),
            first["status"].as_u64()
        ),
        (Some("web"), Some("web"), Some(200))
    );
    assert_eq!(
        (
            first["method"].as_str(),
            first["path"].as_str(),
            first["bytes"].as_u64()
        ),
        (Some("GET"), Some("/download/1000?x=1"), Some(1000))
    );
    assert_eq!(first["server"], web.addr.to_string());
    assert!(first["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(line("path", "/status/404")["status"], 404);
    let tcp = line("frontend", "db");
    assert_eq!(
        (
            tcp["frontend"].as_str(),
            tcp["bytes_in"].as_u64(),
            tcp["bytes_out"].as_u64()
        ),
        (Some("db"), Some(5), Some(5 + "served-by e\n".len() as u64))
    );
}
