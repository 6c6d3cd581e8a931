//! HTTP/3 end to end: QUIC beside a TLS frontend, through the same routes,
//! rules and backends as HTTP/1.1 and HTTP/2, with its limits and defences.

mod common;

use bytes::Bytes;
use http::Request;
use zkgate_testkit::h3_client::H3Client;
use zkgate_testkit::http_server::{pattern, Checksum};
use zkgate_testkit::pki::{https_get, CertFiles, Pki};
use zkgate_testkit::{free_port, free_udp_port, wait_until, HttpServer, Zkgate};

use common::edge::*;
use common::load::udp_sockets;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_a_one_mebibyte_post_and_download_go_through_and_tcp_answers_offer_h3() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = edge.connect().await.expect("HTTP/3 connection");

    let reply = client.get("edge.test", "/").await.unwrap();
    assert_eq!(reply.head.status(), 200);
    assert_eq!(reply.text(), "app");

    // A client whose address changes (a new port: NAT rebinding, another
    // network) keeps its connection: the server follows it (migration).
    client.rebind().unwrap();
    let moved = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get("edge.test", "/"),
    )
    .await
    .expect("answered on the new path")
    .unwrap();
    assert_eq!(moved.text(), "app");

    // The server sees the request as from any HTTPS client, with the
    // cookies an HTTP/3 client may send apart in one field.
    let request = Request::get("https://edge.test/headers")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap();
    let headers = client.send(request, Bytes::new()).await.unwrap().text();
    assert!(headers.contains("cookie: a=1; b=2\n"), "{headers}");
    assert!(headers.contains("host: edge.test"), "{headers}");
    assert!(headers.contains("x-forwarded-proto: https"), "{headers}");
    assert!(
        !headers.contains("transfer-encoding"),
        "a GET has no body: {headers}"
    );

    let body: Vec<u8> = (0..1024 * 1024u64).map(pattern).collect();
    let mut expected = Checksum::default();
    expected.update(&body);
    let upload = Request::post("https://edge.test/upload")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let reply = client
        .send(upload, Bytes::from(body.clone()))
        .await
        .unwrap();
    assert_eq!(reply.text(), expected.summary());
    // Without a length, streamed.
    let upload = Request::post("https://edge.test/upload").body(()).unwrap();
    let reply = client.send(upload, Bytes::from(body)).await.unwrap();
    assert_eq!(reply.text(), expected.summary());

    let head = Request::head("https://edge.test/").body(()).unwrap();
    let reply = client.send(head, Bytes::new()).await.unwrap();
    assert_eq!((reply.head.status().as_u16(), reply.body.len()), (200, 0));

    let reply = client.get("edge.test", "/download/1048576").await.unwrap();
    assert_eq!(reply.body.len(), 1024 * 1024);
    assert!(reply
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(i as u64)));

    // The TCP side offers HTTP/3 on the UDP port.
    let tls = edge.pki.client_config(&["http/1.1"]);
    let (reply, _) = https_get(addr(edge.tcp), tls, "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(
        reply.header("alt-svc"),
        Some(format!("h3=\":{}\"; ma=86400", edge.udp).as_str())
    );

    let metrics = zkgate.metrics().await;
    assert!(
        metrics.contains("zkgate_http3_connections_total{frontend=\"web\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_routes_and_header_rules_apply() {
    let (app, api) = (
        HttpServer::start("app").await,
        HttpServer::start("api").await,
    );
    let pki = Pki::new("edge CA");
    let first = pki.issue("first", &["first.test"]);
    let second = pki.issue("second", &["second.test"]);
    let (tcp, udp) = (free_port(), free_udp_port());
    let routes = "    routes:\n      - host: second.test\n        backend: api\n        request_headers: { set: { x-env: prod } }\n        response_headers: { set: { x-route: second }, remove: [x-served-by] }\n    default_backend: app\n";
    let backends = format!(
        "{}  api:\n    servers: [{{ address: \"{}\" }}]\n",
        app_backend(app.addr),
        api.addr
    );
    let _zkgate = Zkgate::start(
        ZKGATE,
        &h3_config(tcp, udp, &[&first, &second], routes, &backends),
    )
    .await;

    for (name, cert) in [("first.test", &first), ("second.test", &second)] {
        let client = H3Client::connect(addr(udp), name, &pki).await.unwrap();
        let identity = client.connection.peer_identity().unwrap();
        let chain = identity
            .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .unwrap();
        assert_eq!(chain[0], cert.der(), "{name}");
    }

    let mut client = H3Client::connect(addr(udp), "second.test", &pki)
        .await
        .unwrap();
    let reply = client.get("second.test", "/").await.unwrap();
    assert_eq!(reply.text(), "api");
    assert_eq!(reply.header("x-route"), Some("second"));
    assert_eq!(reply.header("x-served-by"), None);
    let headers = client.get("second.test", "/headers").await.unwrap().text();
    assert!(headers.contains("x-env: prod"), "{headers}");
    // The authority routes, not the name the connection was opened with.
    let reply = client.get("first.test", "/").await.unwrap();
    assert_eq!(reply.text(), "app");
    assert_eq!(reply.header("x-route"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_streams_on_one_connection_are_all_answered() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let client = edge.connect().await.unwrap();

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..100u32 {
        let mut sender = client.sender();
        requests.spawn(async move {
            // Each waits a while at the server, so all are open at once.
            let request = Request::get(format!("https://edge.test/delay/{}", 200 + i % 3))
                .body(())
                .unwrap();
            let mut stream = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            stream.finish().await.map_err(|e| e.to_string())?;
            let head = stream.recv_response().await.map_err(|e| e.to_string())?;
            let mut body = Vec::new();
            while let Some(chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
                use bytes::Buf;
                body.extend_from_slice(chunk.chunk());
            }
            Ok::<_, String>((head.status().as_u16(), body))
        });
    }
    let mut answered = 0;
    while let Some(done) = requests.join_next().await {
        let (status, body) = done.unwrap().expect("an answer on every stream");
        assert_eq!((status, body.as_slice()), (200, &b"app"[..]));
        answered += 1;
    }
    assert_eq!(answered, 100);
    assert!(app.connections() > 1, "the requests ran side by side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_socket_and_open_connections_and_new_ones_get_new_certificates() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let first = pki.issue("first", &["edge.test"]);
    let second = pki.issue("second", &["edge.test"]);
    let (tcp, udp) = (free_port(), free_udp_port());
    let config = |cert: &CertFiles, extra: &str| {
        h3_config(
            tcp,
            udp,
            &[cert],
            &format!("{extra}    default_backend: app\n"),
            &app_backend(app.addr),
        )
    };
    let zkgate = Zkgate::start(ZKGATE, &config(&first, "")).await;
    let mut open = H3Client::connect(addr(udp), "edge.test", &pki)
        .await
        .unwrap();
    assert_eq!(open.get("edge.test", "/").await.unwrap().text(), "app");

    let rules = "    routes:\n      - path_prefix: /\n        backend: app\n        response_headers: { set: { x-generation: two } }\n";
    zkgate.reload(&config(&second, rules)).await;
    assert!(
        zkgate.log().contains("configuration reloaded"),
        "{}",
        zkgate.log()
    );
    // The connection opened before goes on, under the new table.
    let reply = open.get("edge.test", "/").await.unwrap();
    assert_eq!(reply.header("x-generation"), Some("two"));
    let fresh = H3Client::connect(addr(udp), "edge.test", &pki)
        .await
        .unwrap();
    let identity = fresh.connection.peer_identity().unwrap();
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    assert_eq!(chain[0], second.der());

    // Without http3, the port stops taking new connections.
    let plain = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{tcp}\"]\n    tls: {{ certificates: [{}] }}\n    default_backend: app\nbackends:\n{}",
        pair(&second),
        app_backend(app.addr)
    );
    zkgate.reload(&plain).await;
    // Dropped unanswered: the client would wait for its own timeout.
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        H3Client::connect(addr(udp), "edge.test", &pki),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a new HTTP/3 connection after http3 was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_request_in_flight_finishes_and_the_process_exits() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let mut zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = edge.connect().await.unwrap();
    let slow = tokio::spawn(async move {
        let reply = client.get("edge.test", "/delay/1500").await;
        (reply, client)
    });
    wait_until(
        "the request to reach the server",
        std::time::Duration::from_secs(10),
        || async { (app.requests() > 0).then_some(()) },
    )
    .await;
    zkgate.signal("TERM");
    let (reply, _client) = slow.await.unwrap();
    assert_eq!(reply.expect("answered despite the shutdown").text(), "app");
    let status = zkgate.exited(std::time::Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_the_udp_socket_to_the_new_process() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let dir = tempfile::tempdir().unwrap();
    let upgrade_socket = dir.path().join("upgrade.sock");
    let env = [("ZKGATE_UPGRADE_SOCKET", upgrade_socket.to_str().unwrap())];
    let mut old = Zkgate::start_with_env(ZKGATE, &config, &env).await;
    let sockets = udp_sockets(edge.udp);
    assert_eq!(sockets.len(), 1, "one UDP socket");
    let mut before = edge.connect().await.unwrap();
    assert_eq!(before.get("edge.test", "/").await.unwrap().text(), "app");

    let new = Zkgate::start_with_env(ZKGATE, &config, &env).await;
    assert!(
        new.log()
            .contains("took over the previous process's listening sockets"),
        "{}",
        new.log()
    );
    assert_eq!(
        udp_sockets(edge.udp),
        sockets,
        "the same socket, not a new one"
    );
    let status = tokio::task::spawn_blocking(move || old.terminate())
        .await
        .unwrap();
    assert!(status.success(), "old process exit: {status}");
    let mut after = edge.connect().await.unwrap();
    assert_eq!(after.get("edge.test", "/").await.unwrap().text(), "app");
    assert_eq!(
        new.metric(r#"zkgate_http3_connections_total{frontend="web"}"#)
            .await,
        Some(1.0)
    );
    drop(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_over_http3_reaches_an_http2_server_and_its_trailers_come_back() {
    let grpc = zkgate_testkit::grpc::GrpcServer::start().await;
    let edge = Edge::new();
    let backends = format!(
        "  grpc:\n    protocol: http2\n    servers: [{{ address: \"{}\" }}]\n",
        grpc.addr
    );
    let config = edge.config("    default_backend: grpc\n", &backends);
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = edge.connect().await.unwrap();
    let call = Request::post("https://edge.test/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let reply = client
        .send(call, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(reply.head.status(), 200);
    assert_eq!(reply.text(), "received 10 bytes");
    assert_eq!(reply.header("x-saw-te-trailers"), Some("yes"));
    let trailers = reply.trailers.expect("trailers reach the client");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("grpc-message").unwrap(), "ok");
}

/// The Python of the virtual environment `scripts/test.sh` creates with
/// aioquic in it.
fn aioquic_python() -> std::path::PathBuf {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/aioquic-venv/bin/python");
    let ready = std::process::Command::new(&python)
        .args(["-c", "import aioquic"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "aioquic is missing: run `python3 -m venv target/aioquic-venv && target/aioquic-venv/bin/pip install aioquic==1.7.2` (scripts/test.sh does)"
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_a_second_http3_implementation_is_served_too() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    routes:\n      - path_prefix: /\n        backend: app\n        response_headers: { set: { x-rule: applied } }\n";
    let _zkgate = Zkgate::start(ZKGATE, &edge.config(extra, &app_backend(app.addr))).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aioquic_client.py");
    let ca = edge.pki.dir().join("ca.pem");
    let output = tokio::process::Command::new(aioquic_python())
        .arg(script)
        .args(["127.0.0.1", &edge.udp.to_string(), "edge.test"])
        .arg(&ca)
        // No HEAD: aioquic's client checks an answer's content-length
        // against its DATA without knowing the request was a HEAD, which
        // RFC 9114 §4.1.2 allows to differ; zkgate keeps the server's length.
        .args([
            "GET:/",
            "POST:/upload:300000",
            "GET:/headers",
            "GET:/download/100000",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), 4, "{answers:?} {stderr}");
    assert_eq!(answers[0]["status"], 200);
    assert_eq!(answers[0]["text"], "app");
    assert_eq!(answers[0]["headers"]["x-rule"], "applied");
    let mut sum = Checksum::default();
    sum.update(&(0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    assert_eq!(answers[1]["text"], sum.summary());
    let headers = answers[2]["text"].as_str().unwrap();
    assert!(headers.contains("host: edge.test"), "{headers}");
    assert_eq!(answers[3]["status"], 200);
    assert_eq!(answers[3]["length"], 100_000);
}
