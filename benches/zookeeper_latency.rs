//! How fast ZooKeeper changes reach traffic, measured end to end with a real
//! ZooKeeper, real servers and the zkgate binary (all on loopback):
//!
//! * latency from a `setData` acknowledged by ZooKeeper to the first request
//!   answered by the server that change brought in (p50/p99 over 300 changes);
//! * initial sync: zkgate start → `/ready` for backends of 1,000 and 10,000 members.
//!
//! Run: `cargo bench --bench zookeeper_latency`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use zkgate_testkit::{free_port, http_get, HttpServer, Zkgate, ZooKeeper};
use zookeeper_client::{Acls, Client, CreateMode};

const ZKGATE: &str = env!("CARGO_BIN_EXE_zkgate");
const CHANGES: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn keep_alive_loop(
    addr: SocketAddr,
    names: [String; 2],
    target: Arc<AtomicU8>,
    first_seen: Arc<AtomicU64>,
    seen: Arc<tokio::sync::Notify>,
    origin: Instant,
    stop: Arc<AtomicBool>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    while !stop.load(Ordering::Relaxed) {
        sender.ready().await.unwrap();
        let request = http::Request::get("/")
            .header("host", "bench")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let now = origin.elapsed().as_nanos() as u64;
        let wanted = &names[target.load(Ordering::Acquire) as usize];
        let first = body == wanted.as_bytes()
            && first_seen
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if first {
            seen.notify_one();
        }
    }
}

async fn change_latency(zk: &ZooKeeper, client: &Client) {
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir("/bench/latency", &options).await.unwrap();
    let member = |addr: SocketAddr| format!(r#"{{"address":"{addr}"}}"#);
    client
        .create("/bench/latency/svc", member(a.addr).as_bytes(), &options)
        .await
        .unwrap();
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: /bench/latency }}\n",
        zk.connect_string()
    );
    let _zkgate = Zkgate::start(ZKGATE, &config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    let origin = Instant::now();
    let (target, first_seen, stop) = (
        Arc::new(AtomicU8::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let names = [a.name.clone(), b.name.clone()];
    let seen = Arc::new(tokio::sync::Notify::new());
    let clients: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(keep_alive_loop(
                addr,
                names.clone(),
                target.clone(),
                first_seen.clone(),
                seen.clone(),
                origin,
                stop.clone(),
            ))
        })
        .collect();

    let (mut from_ack, mut from_send) = (Vec::with_capacity(CHANGES), Vec::with_capacity(CHANGES));
    for i in 0..CHANGES {
        let next = ((i + 1) % 2) as u8;
        first_seen.store(0, Ordering::Release);
        target.store(next, Ordering::Release);
        let server = if next == 0 { a.addr } else { b.addr };
        let sent = origin.elapsed().as_nanos() as u64;
        client
            .set_data("/bench/latency/svc", member(server).as_bytes(), None)
            .await
            .unwrap();
        let acked = origin.elapsed().as_nanos() as u64;
        let first = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let notified = seen.notified();
                let first = first_seen.load(Ordering::Acquire);
                if first != 0 {
                    return first;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("change {i} never reached traffic"));
        from_ack.push(Duration::from_nanos(first.saturating_sub(acked)));
        from_send.push(Duration::from_nanos(first.saturating_sub(sent)));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    for (what, mut latencies) in [
        ("setData acknowledged", from_ack),
        ("setData sent", from_send),
    ] {
        latencies.sort();
        println!(
            "{what} -> first answer from the new server, {CHANGES} changes: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
        );
    }
}

async fn initial_sync(zk: &ZooKeeper, client: &Client, members: usize) {
    let path = format!("/bench/sync{members}");
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(&path, &options).await.unwrap();
    for batch in (0..members).collect::<Vec<_>>().chunks(500) {
        let mut writer = client.new_multi_writer();
        for i in batch {
            // Loopback addresses: no traffic is ever sent to these backends.
            let address = format!("127.2.{}.{}:8080", i / 250, i % 250 + 1);
            writer
                .add_create(&format!("{path}/{address}"), b"", &options)
                .unwrap();
        }
        writer.commit().await.unwrap();
    }
    let port = free_port();
    let config = format!(
        "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: idle\nbackends:\n  idle: {{ servers: [] }}\n  big:\n    zookeeper: {{ path: {path} }}\n",
        zk.connect_string()
    );
    let started = Instant::now();
    let zkgate = Zkgate::start(ZKGATE, &config).await;
    let ready = started.elapsed();
    let metrics = http_get(zkgate.admin, "/metrics").await.unwrap().text();
    let synced = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zkgate_discovery_members{backend=\"big\"} "))
        .unwrap_or("?");
    let sum: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("zkgate_routing_table_build_seconds_sum ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let count: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("zkgate_routing_table_build_seconds_count ")?
                .parse()
                .ok()
        })
        .unwrap_or(1.0);
    println!(
        "initial sync of {members} members: process start -> /ready {ready:?} ({synced} members in service; {count} table builds, mean {:.2} ms)",
        sum / count * 1e3
    );
}

fn main() {
    // `cargo test --all-targets` runs benches as tests: there, do nothing.
    if std::env::args().any(|a| a == "--test" || a == "--list")
        || !std::env::args().any(|a| a == "--bench")
    {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let zk = ZooKeeper::standalone();
        let client = Client::connect(&zk.connect_string()).await.unwrap();
        change_latency(&zk, &client).await;
        initial_sync(&zk, &client, 1_000).await;
        initial_sync(&zk, &client, 10_000).await;
    });
}
