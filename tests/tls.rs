//! TLS end to end: certificates chosen by SNI, HTTP/2 by ALPN, old protocol
//! versions refused, sessions resumed, certificates re-read on reload, TLS on
//! tcp frontends, and TLS to servers verified against a private CA.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zkgate_testkit::pki::{https_get, session_of, tls_connect, CertFiles, Pki};
use zkgate_testkit::{free_port, HttpServer, TcpServer, Zkgate};

use common::*;

fn pair(files: &CertFiles) -> String {
    format!(
        "{{ cert: \"{}\", key: \"{}\" }}",
        files.cert.display(),
        files.key.display()
    )
}

/// An https frontend `web` on `port` presenting `certificates`, in front of `server`.
fn https_config(port: u16, certificates: &[&CertFiles], server: SocketAddr) -> String {
    let list: Vec<String> = certificates.iter().map(|c| pair(c)).collect();
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    tls: {{ certificates: [{}] }}\n    default_backend: app\nbackends:\n  app:\n    servers: [{{ address: \"{server}\" }}]\n",
        list.join(", ")
    )
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_exact_wildcard_or_default_and_requests_are_proxied() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let default = pki.issue("default", &["default.test"]);
    let exact = pki.issue("api", &["api.example.com"]);
    let wildcard = pki.issue("wildcard", &["*.example.com"]);
    let port = free_port();
    let _zkgate = Zkgate::start(
        ZKGATE,
        &https_config(port, &[&default, &exact, &wildcard], app.addr),
    )
    .await;
    let client = pki.client_config(&["http/1.1"]);

    let (reply, session) = https_get(addr(port), client.clone(), "api.example.com", "/headers")
        .await
        .unwrap();
    assert_eq!(session.cert, exact.der());
    assert_eq!(session.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.status, 200);
    let headers = reply.text();
    assert!(headers.contains("x-forwarded-proto: https"), "{headers}");
    assert!(headers.contains("x-forwarded-for: 127.0.0.1"), "{headers}");

    let (_, session) = https_get(addr(port), client.clone(), "www.example.com", "/")
        .await
        .unwrap();
    assert_eq!(session.cert, wildcard.der());

    let (reply, session) = https_get(addr(port), client.clone(), "default.test", "/")
        .await
        .unwrap();
    assert_eq!(session.cert, default.der());
    assert_eq!(reply.text(), "app");

    // An unknown name gets the default certificate, which this client
    // (rightly) refuses as not valid for the name it asked for.
    let unknown = https_get(addr(port), client, "unknown.test", "/").await;
    let err = unknown.expect_err("the default certificate does not match");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_is_negotiated_by_alpn_and_http_1_1_stays_available() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("edge", &["edge.test"]);
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &https_config(port, &[&cert], app.addr)).await;

    let stream = tls_connect(
        addr(port),
        pki.client_config(&["h2", "http/1.1"]),
        "edge.test",
    )
    .await
    .unwrap();
    assert_eq!(
        session_of(stream.get_ref().1).alpn.as_deref(),
        Some(&b"h2"[..])
    );
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Several streams on the one connection, in parallel.
    let mut answers = Vec::new();
    for _ in 0..10 {
        let request = http::Request::get("https://edge.test/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request);
        answers.push(async move {
            let response = response.await.unwrap();
            assert_eq!(response.version(), http::Version::HTTP_2);
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        });
    }
    for (status, body) in futures_util::future::join_all(answers).await {
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"app");
    }
    // A body of many TLS records and HTTP/2 frames arrives whole.
    let request = http::Request::get("https://edge.test/download/3000000")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 3_000_000);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == zkgate_testkit::http_server::pattern(i as u64)));

    let (reply, session) = https_get(
        addr(port),
        pki.client_config(&["http/1.1"]),
        "edge.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(session.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.text(), "app");
}

/// A TLS 1.1 ClientHello (no `supported_versions` extension), as an old
/// client sends it.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused_tls_1_2_and_1_3_are_served_and_sessions_resume() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("edge", &["edge.test"]);
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &https_config(port, &[&cert], app.addr)).await;

    let mut old = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    old.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), old.read_to_end(&mut answer))
        .await
        .expect("zkgate closes the connection")
        .ok();
    // One fatal alert record (rustls says handshake_failure), then the end.
    assert_eq!(answer.first(), Some(&0x15), "{answer:02x?}");
    assert_eq!(answer.get(5), Some(&2), "a fatal alert: {answer:02x?}");
    assert_eq!(answer.len(), 7, "{answer:02x?}");

    let tls12 = pki.client_config_for(&[&rustls::version::TLS12], &["http/1.1"]);
    let (reply, session) = https_get(addr(port), tls12.clone(), "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(reply.text(), "app");
    assert_eq!(session.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert!(!session.resumed);
    let (_, session) = https_get(addr(port), tls12, "edge.test", "/")
        .await
        .unwrap();
    assert!(session.resumed, "TLS 1.2 session resumption");

    let tls13 = pki.client_config(&["http/1.1"]);
    let (_, session) = https_get(addr(port), tls13.clone(), "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(session.version, Some(rustls::ProtocolVersion::TLSv1_3));
    let (_, session) = https_get(addr(port), tls13, "edge.test", "/")
        .await
        .unwrap();
    assert!(session.resumed, "TLS 1.3 session resumption");

    let series = |result: &str| {
        format!("zkgate_tls_handshakes_total{{frontend=\"web\",result=\"{result}\"}}")
    };
    assert_eq!(zkgate.metric(&series("ok")).await, Some(2.0));
    assert_eq!(zkgate.metric(&series("resumed")).await, Some(2.0));
    assert_eq!(zkgate.metric(&series("error")).await, Some(1.0));
    assert_eq!(zkgate.metric(&series("timeout")).await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_client_header_and_counted() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("edge", &["edge.test"]);
    let port = free_port();
    let config = https_config(port, &[&cert], app.addr).replace(
        "    default_backend: app\n",
        "    default_backend: app\n    timeouts: { client_header: 300ms }\n",
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut silent = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let mut buffer = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buffer))
        .await
        .expect("zkgate closes a connection that never starts its handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let series = "zkgate_tls_handshakes_total{frontend=\"web\",result=\"timeout\"}";
    assert_eq!(zkgate.metric(series).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_re_read_on_reload_and_a_bad_pair_is_refused() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let first = pki.issue("first", &["edge.test"]);
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &https_config(port, &[&first], app.addr)).await;
    let client = pki.client_config(&["http/1.1"]);
    let (_, session) = https_get(addr(port), client.clone(), "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(session.cert, first.der());

    // Renewed in place: same file names, new certificate.
    let renewed = pki.issue("renewed", &["edge.test"]);
    std::fs::copy(&renewed.cert, &first.cert).unwrap();
    std::fs::copy(&renewed.key, &first.key).unwrap();
    zkgate
        .reload(&https_config(port, &[&first], app.addr))
        .await;
    // A new client: a resumed session would not show the certificate again.
    let client = pki.client_config(&["http/1.1"]);
    let (_, session) = https_get(addr(port), client.clone(), "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(session.cert, renewed.der());

    // A key that belongs to another certificate: refused, the running one stays.
    let other = pki.issue("other", &["other.test"]);
    let broken = CertFiles {
        cert: first.cert.clone(),
        key: other.key.clone(),
    };
    zkgate
        .reload(&https_config(port, &[&broken], app.addr))
        .await;
    assert!(
        zkgate.log().contains("does not belong to the certificate"),
        "{}",
        zkgate.log()
    );
    let client = pki.client_config(&["http/1.1"]);
    let (reply, session) = https_get(addr(port), client, "edge.test", "/")
        .await
        .unwrap();
    assert_eq!(session.cert, renewed.der());
    assert_eq!(reply.text(), "app");
}

#[test]
fn check_names_the_field_of_a_bad_certificate_or_key() {
    let pki = Pki::new("edge CA");
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let mismatched = CertFiles {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let yaml = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:8443\"]\n    tls:\n      certificates:\n        - {}\n        - {{ cert: /nonexistent/edge.pem, key: \"{}\" }}\n    default_backend: app\nbackends:\n  app:\n    servers: [{{ address: \"127.0.0.1:8080\" }}]\n    tls: {{ ca: /nonexistent/ca.pem }}\n",
        pair(&mismatched),
        a.key.display()
    );
    let (ok, text) = check(&yaml);
    assert!(!ok);
    assert!(
        text.contains("frontends.web.tls.certificates[0]: the key in"),
        "{text}"
    );
    assert!(
        text.contains("frontends.web.tls.certificates[1].cert: cannot read /nonexistent/edge.pem"),
        "{text}"
    );
    assert!(
        text.contains("backends.app.tls.ca: cannot read /nonexistent/ca.pem"),
        "{text}"
    );
    assert!(text.contains("3 errors"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_frontends_terminate_tls_too() {
    let echo = TcpServer::start("db").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("db", &["db.test"]);
    let port = free_port();
    let config = format!(
        "frontends:\n  db:\n    bind: [\"127.0.0.1:{port}\"]\n    mode: tcp\n    tls: {{ certificates: [{}] }}\n    default_backend: db\nbackends:\n  db:\n    mode: tcp\n    servers: [{{ address: \"{}\" }}]\n",
        pair(&cert),
        echo.addr
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut stream = tls_connect(addr(port), pki.client_config(&[]), "db.test")
        .await
        .unwrap();
    stream.write_all(b"hello over tls").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok();
    assert_eq!(answer, "hello over tlsserved-by db\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_behind_tls_are_verified_against_the_backend_ca() {
    let servers_ca = Pki::new("servers CA");
    let other_ca = Pki::new("another CA");
    let secure_cert = servers_ca.issue("secure", &["internal.test", "127.0.0.1"]);
    let secure = HttpServer::start_tls(
        "secure",
        servers_ca.server_config(&secure_cert, &["http/1.1"]),
    )
    .await;
    let port = free_port();
    let config = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    routes:\n      - {{ path_prefix: /wrong, backend: wrong }}\n      - {{ path_prefix: /by-ip, backend: by_ip }}\n    default_backend: good\nbackends:\n  good:\n    servers: [{{ address: \"{server}\" }}]\n    tls: {{ ca: \"{ca}\", sni: internal.test }}\n  by_ip:\n    servers: [{{ address: \"{server}\" }}]\n    tls: {{ ca: \"{ca}\" }}\n  wrong:\n    retries: 0\n    servers: [{{ address: \"{server}\" }}]\n    tls: {{ ca: \"{other}\", sni: internal.test }}\n",
        server = secure.addr,
        ca = servers_ca.ca.display(),
        other = other_ca.ca.display(),
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    for path in ["/", "/by-ip/x"] {
        let reply = zkgate_testkit::http_get(addr(port), path).await.unwrap();
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.text(), "secure");
    }
    // Keep-alive to the server: TLS connections are pooled (per zkgate
    // worker thread, one per core), not opened per request.
    let before = secure.connections();
    for _ in 0..20 {
        let reply = zkgate_testkit::http_get(addr(port), "/").await.unwrap();
        assert_eq!(reply.text(), "secure");
    }
    let workers = std::thread::available_parallelism().unwrap().get();
    assert!(
        secure.connections() <= before + workers,
        "{} new connections for 20 requests",
        secure.connections() - before
    );

    let reply = zkgate_testkit::http_get(addr(port), "/wrong")
        .await
        .unwrap();
    assert_eq!(reply.status, 502, "an untrusted server fails closed");
    assert!(
        zkgate.log().contains("TLS handshake failed"),
        "{}",
        zkgate.log()
    );
    assert_eq!(
        zkgate
            .metric("zkgate_backend_connect_errors_total{backend=\"wrong\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslscan_finds_only_tls_1_2_and_1_3_and_only_strong_ciphers() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("edge", &["edge.test"]);
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &https_config(port, &[&cert], app.addr)).await;
    let target = format!("127.0.0.1:{port}");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sslscan")
            .args(["--no-colour", "--sni-name=edge.test", &target])
            .output()
    })
    .await
    .unwrap()
    .expect("sslscan is needed: sudo apt-get install -y sslscan (./scripts/test.sh installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    for refused in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(refused) && l.contains("disabled")),
            "{refused} must be disabled:\n{report}"
        );
    }
    for offered in ["TLSv1.2", "TLSv1.3"] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(offered) && l.contains("enabled")),
            "{offered} must be enabled:\n{report}"
        );
    }
    let ciphers: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("Accepted") || l.starts_with("Preferred"))
        .collect();
    assert!(ciphers.len() >= 4, "{report}");
    for line in ciphers {
        let name = line.split_whitespace().nth(4).unwrap_or_default();
        let aead = name.contains("GCM")
            || name.contains("CHACHA20-POLY1305")
            || name.contains("CHACHA20_POLY1305");
        let forward_secret = name.starts_with("TLS_") || name.starts_with("ECDHE-");
        assert!(
            aead && forward_secret,
            "weak cipher offered: {line}\n{report}"
        );
    }
    assert!(
        report.contains("Session renegotiation not supported"),
        "{report}"
    );
}
