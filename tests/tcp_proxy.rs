//! End to end through the binary: the TCP (layer 4) proxy.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_testkit::{free_port, wait_until, TcpServer, Zkgate};

use common::{servers, ZKGATE};

fn tcp_config(port: u16, servers_yaml: &str, extra: &str) -> String {
    format!(
        "frontends:\n  db:\n    bind: [\"127.0.0.1:{port}\"]\n    mode: tcp\n    default_backend: db\n{extra}backends:\n  db:\n    mode: tcp\n    servers: {servers_yaml}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_echo_both_ways_and_a_half_closed_client_still_reads_the_reply() {
    let echo = TcpServer::start("echo-1").await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &tcp_config(port, &servers(&[(echo.addr, 1)]), "")).await;

    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"ping");

    // Half-close: the client is done writing but keeps reading.
    stream.write_all(b"last words").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut rest))
        .await
        .expect("the server's reply after half-close")
        .unwrap();
    assert_eq!(rest, "last wordsserved-by echo-1\n");

    // Counted just after each write: poll rather than race the last one.
    for (series, bytes) in [
        (
            r#"zkgate_frontend_bytes_received_total{frontend="db"}"#,
            14.0,
        ),
        (r#"zkgate_frontend_bytes_sent_total{frontend="db"}"#, 31.0),
    ] {
        wait_until(series, Duration::from_secs(5), || async {
            (zkgate.metric(series).await == Some(bytes)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_data_passes_whole_and_counted_both_ways() {
    // Megabytes each way fill the relay's buffer: it splices them.
    const SIZE: usize = 8 << 20;
    let echo = TcpServer::start("bulk").await;
    let port = free_port();
    let zkgate = Zkgate::start(ZKGATE, &tcp_config(port, &servers(&[(echo.addr, 1)]), "")).await;
    let sent: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = async {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    };
    let reader = async {
        let mut echoed = Vec::with_capacity(SIZE + 64);
        read.read_to_end(&mut echoed).await.unwrap();
        echoed
    };
    let (_, echoed) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(writer, reader)
    })
    .await
    .expect("8 MiB each way through the tunnel");
    let goodbye = b"served-by bulk\n";
    assert_eq!(echoed.len(), SIZE + goodbye.len());
    assert!(echoed[..SIZE] == sent[..], "the bytes came back in order");
    assert_eq!(&echoed[SIZE..], goodbye);
    for (series, bytes) in [
        (
            r#"zkgate_frontend_bytes_received_total{frontend="db"}"#,
            SIZE,
        ),
        (
            r#"zkgate_frontend_bytes_sent_total{frontend="db"}"#,
            SIZE + goodbye.len(),
        ),
    ] {
        wait_until(series, Duration::from_secs(5), || async {
            (zkgate.metric(series).await == Some(bytes as f64)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_are_spread_round_robin() {
    let (a, b) = (TcpServer::start("a").await, TcpServer::start("b").await);
    let port = free_port();
    let zkgate = Zkgate::start(
        ZKGATE,
        &tcp_config(port, &servers(&[(a.addr, 1), (b.addr, 1)]), ""),
    )
    .await;

    let clients = (0..200).map(|i| {
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let message = format!("client-{i}");
            stream.write_all(message.as_bytes()).await.unwrap();
            let mut echoed = vec![0u8; message.len()];
            stream.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, message.as_bytes());
            stream.shutdown().await.unwrap();
            let mut goodbye = String::new();
            stream.read_to_string(&mut goodbye).await.unwrap();
            goodbye
        })
    });
    let mut by_server: HashMap<String, usize> = HashMap::new();
    for client in clients.collect::<Vec<_>>() {
        let goodbye = tokio::time::timeout(Duration::from_secs(20), client)
            .await
            .unwrap()
            .unwrap();
        *by_server.entry(goodbye).or_default() += 1;
    }
    assert_eq!(by_server.get("served-by a\n"), Some(&100), "{by_server:?}");
    assert_eq!(by_server.get("served-by b\n"), Some(&100), "{by_server:?}");
    assert_eq!(
        zkgate
            .metric(r#"zkgate_frontend_connections_total{frontend="db"}"#)
            .await,
        Some(200.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_after_the_tunnel_timeout() {
    let echo = TcpServer::start("e").await;
    let port = free_port();
    let config = tcp_config(
        port,
        &servers(&[(echo.addr, 1)]),
        "    timeouts: { tunnel: 300ms }\n",
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer))
        .await
        .expect("zkgate closes the idle tunnel")
        .ok();
    assert_eq!(buffer, b"x");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_closed_when_no_server_is_reachable() {
    let port = free_port();
    let dead = common::dead_addr();
    let zkgate = Zkgate::start(ZKGATE, &tcp_config(port, &servers(&[(dead, 1)]), "")).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "connection not closed");
    assert!(buffer.is_empty());
    assert!(
        zkgate
            .metric(r#"zkgate_backend_connect_errors_total{backend="db"}"#)
            .await
            >= Some(1.0)
    );
}
