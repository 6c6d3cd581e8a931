//! HTTP/3 end to end: QUIC beside a TLS frontend, through the same routes,
//! rules and backends as HTTP/1.1 and HTTP/2, with its limits and defences.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use zkgate_testkit::h3_client::H3Client;
use zkgate_testkit::http_server::{pattern, Checksum};
use zkgate_testkit::pki::{https_get, CertFiles, Pki};
use zkgate_testkit::{free_port, free_udp_port, HttpServer, Zkgate};

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

fn app_backend(server: SocketAddr) -> String {
    format!("  app:\n    servers: [{{ address: \"{server}\" }}]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_a_one_mebibyte_post_and_download_go_through_and_tcp_answers_offer_h3() {
    let app = HttpServer::start("app").await;
    let pki = Pki::new("edge CA");
    let cert = pki.issue("edge", &["edge.test"]);
    let (tcp, udp) = (free_port(), free_udp_port());
    let config = h3_config(
        tcp,
        udp,
        &[&cert],
        "    default_backend: app\n",
        &app_backend(app.addr),
    );
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut client = H3Client::connect(addr(udp), "edge.test", &pki)
        .await
        .expect("HTTP/3 connection");

    let reply = client.get("edge.test", "/").await.unwrap();
    assert_eq!(reply.head.status(), 200);
    assert_eq!(reply.text(), "app");

    // The server sees the request as from any HTTPS client.
    let headers = client.get("edge.test", "/headers").await.unwrap().text();
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

    let reply = client.get("edge.test", "/download/1048576").await.unwrap();
    assert_eq!(reply.body.len(), 1024 * 1024);
    assert!(reply
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(i as u64)));

    // The TCP side offers HTTP/3 on the UDP port.
    let tls = pki.client_config(&["http/1.1"]);
    let (reply, _) = https_get(addr(tcp), tls, "edge.test", "/").await.unwrap();
    assert_eq!(
        reply.header("alt-svc"),
        Some(format!("h3=\":{udp}\"; ma=86400").as_str())
    );

    let metrics = zkgate.metrics().await;
    assert!(
        metrics.contains("zkgate_http3_connections_total{frontend=\"web\"} 1"),
        "{metrics}"
    );
}
