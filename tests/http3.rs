//! HTTP/3 end to end: QUIC beside a TLS frontend, through the same routes,
//! rules and backends as HTTP/1.1 and HTTP/2, with its limits and defences.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use zkgate_testkit::h3_client::H3Client;
use zkgate_testkit::http_server::{pattern, Checksum};
use zkgate_testkit::pki::{https_get, CertFiles, Pki};
use zkgate_testkit::{free_port, free_udp_port, wait_until, HttpServer, Zkgate};

use common::load::udp_sockets;
use common::*;

fn pair(files: &CertFiles) -> String {
    format!(
        "{{ cert: \"{}\", key: \"{}\" }}",
        files.cert.display(),
        files.key.display()
    )
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A TLS frontend `web` on TCP `tcp` and UDP `udp` presenting
/// `certificates`, with `extra` lines under it, in front of `backends`.
fn h3_config(
    tcp: u16,
    udp: u16,
    certificates: &[&CertFiles],
    extra: &str,
    backends: &str,
) -> String {
    let list: Vec<String> = certificates.iter().map(|c| pair(c)).collect();
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{tcp}\"]\n    tls: {{ certificates: [{}] }}\n    http3: {{ bind: [\"127.0.0.1:{udp}\"] }}\n{extra}backends:\n{backends}",
        list.join(", ")
    )
}

/// A TLS frontend `web` with HTTP/3, on free TCP and UDP ports, presenting
/// a certificate for `edge.test` from a CA of its own.
struct Edge {
    pki: Pki,
    cert: CertFiles,
    tcp: u16,
    udp: u16,
}

impl Edge {
    fn new() -> Self {
        let pki = Pki::new("edge CA");
        let cert = pki.issue("edge", &["edge.test"]);
        Edge {
            pki,
            cert,
            tcp: free_port(),
            udp: free_udp_port(),
        }
    }

    /// Its configuration, with `extra` lines under the frontend.
    fn config(&self, extra: &str, backends: &str) -> String {
        h3_config(self.tcp, self.udp, &[&self.cert], extra, backends)
    }

    /// An HTTP/3 connection to it, naming `edge.test`.
    async fn connect(&self) -> Result<H3Client, String> {
        H3Client::connect(addr(self.udp), "edge.test", &self.pki).await
    }
}

fn app_backend(server: SocketAddr) -> String {
    format!("  app:\n    servers: [{{ address: \"{server}\" }}]\n")
}

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

/// A server that promises 100,000 bytes, sends 10 and dies.
fn dies_mid_answer(_: &str) -> zkgate_testkit::Answer {
    zkgate_testkit::Answer {
        close: true,
        ..zkgate_testkit::Answer::bytes(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789",
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dying_mid_answer_resets_the_stream_and_the_connection_lives_on() {
    let dying = zkgate_testkit::RecordingOrigin::start(dies_mid_answer).await;
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let routes = "    routes:\n      - path_prefix: /dying\n        backend: dying\n    default_backend: app\n";
    let backends = format!(
        "{}  dying:\n    retries: 0\n    servers: [{{ address: \"{}\" }}]\n",
        app_backend(app.addr),
        dying.addr
    );
    let _zkgate = Zkgate::start(ZKGATE, &edge.config(routes, &backends)).await;
    let mut client = edge.connect().await.unwrap();

    let cut = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get("edge.test", "/dying"),
    )
    .await
    .expect("an error, not a hang");
    let err = cut.expect_err("a cut answer is not a whole one");
    assert!(
        err.to_lowercase().contains("reset") || err.contains("INTERNAL"),
        "{err}"
    );
    // Its neighbours on the connection are not affected.
    let reply = client.get("edge.test", "/").await.unwrap();
    assert_eq!(reply.text(), "app");
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// `count` QUIC Initial packets of distinct connection attempts to
/// `server`, as a real client would send them first, never continued.
fn initials(count: usize, server: SocketAddr, pki: &Pki) -> Vec<Vec<u8>> {
    let config = zkgate_testkit::h3_client::client_config(pki);
    let mut endpoint = quinn_proto::Endpoint::new(Default::default(), None, false, None);
    let now = std::time::Instant::now();
    (0..count)
        .map(|_| {
            let (_, mut attempt) = endpoint
                .connect(now, config.clone(), server, "edge.test")
                .unwrap();
            let mut packet = Vec::new();
            let sent = attempt.poll_transmit(now, 1, &mut packet).unwrap();
            packet.truncate(sent.size);
            packet
        })
        .collect()
}

/// The memory zkgate may grow by under the flood below: 64 handshakes in
/// progress and 4,096 waiting attempts at most (docs/security.md).
const FLOOD_MEMORY_BOUND: u64 = 32 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_flood_from_random_ports_is_bounded_and_real_clients_are_served() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    timeouts: { client_header: 30s }\n    default_backend: app\n";
    let config = edge.config(extra, &app_backend(app.addr));
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    // Warm: a served client first, so the flood's growth is the flood's.
    let mut client = edge.connect().await.unwrap();
    client.get("edge.test", "/").await.unwrap();
    let before = rss(zkgate.pid());

    let packets = initials(5_000, addr(edge.udp), &edge.pki);
    let flood = std::thread::spawn(move || {
        for packet in packets {
            // A new socket each: a new source port each. From another
            // loopback address, so that no port the other tests are about
            // to bind on 127.0.0.1 is taken meanwhile.
            let socket = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
            socket.send_to(&packet, addr(edge.udp)).unwrap();
        }
    });
    // A new client during the flood is served (after a Retry, if asked).
    let during = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut client = edge.connect().await?;
        client.get("edge.test", "/").await
    })
    .await
    .expect("served within 20 s during the flood")
    .unwrap();
    assert_eq!(during.text(), "app");
    flood.join().unwrap();

    let after = rss(zkgate.pid());
    assert!(
        after.saturating_sub(before) < FLOOD_MEMORY_BOUND,
        "grew from {before} to {after} bytes"
    );
    // The connection opened before the flood still works.
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    let mut late = edge.connect().await.unwrap();
    assert_eq!(late.get("edge.test", "/").await.unwrap().text(), "app");
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
async fn a_body_longer_or_shorter_than_its_content_length_never_reaches_a_server_whole() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let config = edge.config("    default_backend: app\n", &app_backend(app.addr));
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = edge.connect().await.unwrap();
    for (stated, sent) in [(10, 20), (20, 10)] {
        let upload = Request::post("https://edge.test/upload")
            .header("content-length", stated)
            .body(())
            .unwrap();
        let reply = client.send(upload, Bytes::from(vec![b'x'; sent])).await;
        let reply = reply.unwrap();
        assert_eq!(
            reply.head.status(),
            400,
            "{stated} stated, {sent} sent: {reply:?}"
        );
    }
    // The connection serves on.
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    // And an empty stated length is refused before routing.
    let empty = Request::post("https://edge.test/upload")
        .header("content-length", "")
        .body(())
        .unwrap();
    let reply = client
        .send(empty, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(reply.head.status(), 400);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_limit_is_refused_at_the_handshake_and_counted() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    max_connections_per_client: 1\n    default_backend: app\n";
    let zkgate = Zkgate::start(ZKGATE, &edge.config(extra, &app_backend(app.addr))).await;
    let mut first = edge.connect().await.unwrap();
    assert_eq!(first.get("edge.test", "/").await.unwrap().text(), "app");
    let second = edge.connect().await;
    let err = second.err().expect("the second connection is refused");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_denied_total{frontend="web",reason="max_connections"}"#)
            .await,
        Some(1.0)
    );
    // Once the first is gone, the client may connect again.
    drop(first);
    let again = wait_until(
        "a new connection to be taken",
        std::time::Duration::from_secs(10),
        || async { edge.connect().await.ok() },
    )
    .await;
    drop(again);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_request_for_client_idle_is_closed() {
    let app = HttpServer::start("app").await;
    let edge = Edge::new();
    let extra = "    timeouts: { client_idle: 1s }\n    default_backend: app\n";
    let _zkgate = Zkgate::start(ZKGATE, &edge.config(extra, &app_backend(app.addr))).await;
    let mut client = edge.connect().await.unwrap();
    assert_eq!(client.get("edge.test", "/").await.unwrap().text(), "app");
    let began = std::time::Instant::now();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.connection.closed(),
    )
    .await
    .expect("closed by zkgate within 10 s");
    let after = began.elapsed();
    assert!(
        after >= std::time::Duration::from_millis(900),
        "closed after {after:?}: {closed}"
    );
    // Closed in good order (H3_NO_ERROR), not timed out by the client.
    assert!(closed.to_string().contains("closed by peer"), "{closed}");
}
