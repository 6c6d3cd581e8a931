//! The PROXY protocol: the real client behind an L4 balancer, in and out.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zkgate_proxy::proxy_protocol::{encode, parse, Header};
use zkgate_testkit::{free_port, raw_exchange, HttpServer, Zkgate};

use common::*;

fn http_config(port: u16, server: SocketAddr, extra: &str) -> String {
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    accept_proxy: true\n{extra}    default_backend: web\nbackends:\n  web:\n    servers: {}\n",
        servers(&[(server, 1)])
    )
}

const REQUEST: &[u8] = b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_headers_give_the_real_client_to_x_forwarded_for() {
    let web = HttpServer::start("w").await;
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &http_config(port, web.addr, "")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let wait = Duration::from_secs(5);

    let v1 = [
        &b"PROXY TCP4 192.0.2.9 198.51.100.1 5555 80\r\n"[..],
        REQUEST,
    ]
    .concat();
    let answer = raw_exchange(addr, &v1, wait).await.unwrap();
    assert!(answer.contains("x-forwarded-for: 192.0.2.9\n"), "{answer}");

    // v2, IPv6, with a TLV after the addresses.
    let mut v2 = encode(
        2,
        "[2001:db8::7]:4444".parse().unwrap(),
        "[2001:db8::1]:80".parse().unwrap(),
    );
    let length = u16::from_be_bytes([v2[14], v2[15]]) + 5;
    v2[14..16].copy_from_slice(&length.to_be_bytes());
    v2.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]);
    v2.extend_from_slice(REQUEST);
    let answer = raw_exchange(addr, &v2, wait).await.unwrap();
    assert!(
        answer.contains("x-forwarded-for: 2001:db8::7\n"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_header_is_closed() {
    let web = HttpServer::start("w").await;
    let port = free_port();
    let _zkgate = Zkgate::start(ZKGATE, &http_config(port, web.addr, "")).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for garbage in [
        REQUEST.to_vec(),
        b"PROXY TCP4 nonsense\r\n".to_vec(),
        b"\r\n\r\n\0\r\nQUIT\n\x99\x11\x00\x0c".to_vec(),
    ] {
        let answer = raw_exchange(addr, &garbage, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            answer,
            "",
            "answered {:?}",
            String::from_utf8_lossy(&garbage)
        );
    }
    assert_eq!(web.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_judge_the_address_from_the_header() {
    let web = HttpServer::start("w").await;
    let port = free_port();
    let access = "    access: { deny: [\"192.0.2.0/24\"] }\n";
    let _zkgate = Zkgate::start(ZKGATE, &http_config(port, web.addr, access)).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let denied = [
        &b"PROXY TCP4 192.0.2.9 198.51.100.1 5555 80\r\n"[..],
        REQUEST,
    ]
    .concat();
    assert!(raw_exchange(addr, &denied, Duration::from_secs(5))
        .await
        .unwrap()
        .starts_with("HTTP/1.1 403"));
    let allowed = [
        &b"PROXY TCP4 203.0.113.5 198.51.100.1 5555 80\r\n"[..],
        REQUEST,
    ]
    .concat();
    assert!(raw_exchange(addr, &allowed, Duration::from_secs(5))
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_tells_a_tcp_server_who_the_client_is() {
    for (version, name) in [(1u8, "v1"), (2, "v2")] {
        // A server that reads the header and answers with the source it names.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 256];
            loop {
                let n = stream.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..n]);
                if let Some((header, _)) = parse(&buffer).unwrap() {
                    stream.write_all(b"ok").await.unwrap();
                    return header;
                }
            }
        });
        let port = free_port();
        let config = format!(
            "frontends:\n  db:\n    bind: [\"127.0.0.1:{port}\"]\n    mode: tcp\n    default_backend: db\nbackends:\n  db:\n    mode: tcp\n    send_proxy: {name}\n    servers: {}\n",
            servers(&[(server, 1)])
        );
        let _zkgate = Zkgate::start(ZKGATE, &config).await;
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let me = client.local_addr().unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).await.unwrap();
        let header = seen.await.unwrap();
        assert_eq!(
            header,
            Header::Proxied {
                source: me,
                destination: ([127, 0, 0, 1], port).into()
            },
            "send_proxy {name} (version {version})"
        );
    }
}
