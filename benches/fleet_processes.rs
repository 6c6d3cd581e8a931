//! A fleet of real zkgate processes on one ZooKeeper ensemble (the test
//! kit's 3 nodes on loopback): `FLEET_PROCESSES` (100) processes, each with
//! one worker, all following one backend of `FLEET_MEMBERS` (1,000)
//! members, and how long a change written to ZooKeeper takes to be live in
//! every one of them, measured on traffic: two members are real servers,
//! one ready and one draining (the others draining addresses that take no
//! traffic); a change swaps them in one multi-write, and a client per
//! process, asking every `PROBE_MS` (5 ms) on a kept-alive connection from
//! the write on, notes when the other server answers. A probe's period
//! bounds the resolution. The probes ask nothing between changes (they
//! did once: 20,000 requests a second on the two cores the processes and
//! the ensemble share).
//!
//! Run: `cargo bench --bench fleet_processes` (`FLEET_PROCESSES`,
//! `FLEET_MEMBERS`, `FLEET_CHANGES` (20) change the shape; the first
//! `FLEET_WARM_UP` (30) changes are not measured).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use zkgate_testkit::{free_port, HttpServer, Zkgate, ZooKeeper};
use zookeeper_client::{Acls, Client, CreateMode};

const ZKGATE: &str = env!("CARGO_BIN_EXE_zkgate");
const PATH: &str = "/bench/fleet-processes";
/// One worker each, and the log at its default level, as a fleet runs (the
/// test kit's debug log writes several lines a change).
const PROCESS_ENV: [(&str, &str); 2] = [("ZKGATE_WORKERS", "1"), ("ZKGATE_LOG", "info")];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn member(address: SocketAddr, ready: bool) -> String {
    let state = if ready { "ready" } else { "drain" };
    format!(r#"{{"address":"{address}","weight":1,"state":"{state}"}}"#)
}

/// A change as written: when (since the bench's origin) and which server
/// (0 or 1) answers once it is live.
#[derive(Clone, Copy, Default)]
struct Written {
    since_ns: u64,
    target: u8,
}

/// After each change `written` announces, asks `addr` every `period`
/// which server answers, until it is the one the change names; the time
/// since the write goes to `seen`. Between changes it asks nothing: on
/// this machine a hundred probes asking all the time take the cores the
/// processes and the ensemble apply the change on. `asked` counts the
/// requests.
async fn probe(
    addr: SocketAddr,
    period: Duration,
    mut written: tokio::sync::watch::Receiver<Written>,
    seen: tokio::sync::mpsc::UnboundedSender<Duration>,
    asked: Arc<AtomicU64>,
    origin: Instant,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut reported = 0u64;
    loop {
        let Ok(change) = written
            .wait_for(|w| w.since_ns > reported)
            .await
            .map(|w| *w)
        else {
            return;
        };
        reported = change.since_ns;
        let wanted: &[u8] = if change.target == 0 { b"a" } else { b"b" };
        loop {
            if sender.ready().await.is_err() {
                return;
            }
            let request = http::Request::get("/")
                .header("host", "bench")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let Ok(response) = sender.send_request(request).await else {
                return;
            };
            asked.fetch_add(1, Ordering::Relaxed);
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            if body.as_deref().ok() == Some(wanted) {
                let now = origin.elapsed().as_nanos() as u64;
                let wait = Duration::from_nanos(now.saturating_sub(change.since_ns));
                if seen.send(wait).is_err() {
                    return;
                }
                break;
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Member `n`'s znode.
fn node_of(n: usize) -> String {
    format!("{PATH}/m{n:06}")
}

/// Creates the backend's `members` members: the first two are `servers`
/// (the first ready), the others draining addresses nobody connects to.
async fn register(client: &Client, members: usize, servers: [SocketAddr; 2]) {
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(PATH, &open).await.expect("mkdir");
    for chunk in (0..members).collect::<Vec<_>>().chunks(500) {
        let mut writer = client.new_multi_writer();
        for &n in chunk {
            let data = match n {
                0 | 1 => member(servers[n], n == 0),
                n => member(([10, 9, (n / 256) as u8, (n % 256) as u8], 9).into(), false),
            };
            writer
                .add_create(&node_of(n), data.as_bytes(), &open)
                .expect("create");
        }
        writer.commit().await.expect("commit");
    }
}

/// Makes `servers[next]` the ready one and the other draining, in one
/// multi-write, announcing it to the probes just before.
async fn swap(
    client: &Client,
    servers: [SocketAddr; 2],
    next: usize,
    write: &tokio::sync::watch::Sender<Written>,
    origin: Instant,
) {
    let mut writer = client.new_multi_writer();
    for (n, server) in servers.into_iter().enumerate() {
        let data = member(server, n == next);
        writer
            .add_set_data(&node_of(n), data.as_bytes(), None)
            .expect("set");
    }
    let since_ns = origin.elapsed().as_nanos() as u64;
    write.send_replace(Written {
        since_ns,
        target: next as u8,
    });
    writer.commit().await.expect("commit");
}

/// CPU time (user + system) the processes `pids` have used so far.
fn cpu(pids: &[u32]) -> Duration {
    cpu_field(pids, 11) + cpu_field(pids, 12)
}

/// One of the CPU times of `/proc/PID/stat` summed over `pids`: its
/// `field` after the command (11: user time, 12: system time).
fn cpu_field(pids: &[u32], field: usize) -> Duration {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // The fields after the command's closing parenthesis.
            let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let value = rest.split_whitespace().nth(field);
            value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A process's watch events and tables published so far.
async fn counts(zkgate: &Zkgate) -> (f64, f64) {
    let events = zkgate.metric("zkgate_zookeeper_watch_events_total").await;
    let tables = zkgate.metric("zkgate_routing_table_swaps_total").await;
    (events.unwrap_or(0.0), tables.unwrap_or(0.0))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let processes = env_number("FLEET_PROCESSES", 100);
    let members = env_number("FLEET_MEMBERS", 1_000);
    let changes = env_number("FLEET_CHANGES", 20);
    let period = Duration::from_millis(env_number("PROBE_MS", 5) as u64);
    let zk = ZooKeeper::ensemble_as_shipped();
    let client = Client::connect(&zk.connect_string())
        .await
        .expect("connect");
    let (a, b) = (HttpServer::start("a").await, HttpServer::start("b").await);
    register(&client, members, [a.addr, b.addr]).await;

    let started = Instant::now();
    let mut fleet = Vec::with_capacity(processes);
    let mut ports = Vec::with_capacity(processes);
    for _ in 0..processes {
        let port = free_port();
        let config = format!(
            "zookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: {PATH} }}\n",
            zk.connect_string()
        );
        fleet.push(Zkgate::start_with_env(ZKGATE, &config, &PROCESS_ENV).await);
        ports.push(port);
    }
    println!(
        "{processes} zkgate processes (one worker each), one backend of {members} members: all started and ready in {:.1} s (one after the other)",
        started.elapsed().as_secs_f64()
    );

    let origin = Instant::now();
    let (write, written) = tokio::sync::watch::channel(Written::default());
    let asked = Arc::new(AtomicU64::new(0));
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    for &port in &ports {
        tokio::spawn(probe(
            ([127, 0, 0, 1], port).into(),
            period,
            written.clone(),
            seen_tx.clone(),
            Arc::clone(&asked),
            origin,
        ));
    }
    let pids: Vec<u32> = fleet.iter().map(Zkgate::pid).collect();
    // What the processes spend idle (sessions' pings, timers), to tell
    // the changes' cost from it.
    let idle = cpu(&pids);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_per_second = (cpu(&pids) - idle).as_secs_f64() / 3.0;
    let mut waits = Vec::with_capacity(processes * changes);
    // The first changes are not measured: they warm up the ensemble's
    // JVMs (their compilers otherwise take a tenth of the machine for
    // the first seconds of changes) and the processes, as a long-running
    // fleet's are.
    let warm_up = env_number("FLEET_WARM_UP", 30);
    let mut counted_before = (0.0, 0.0);
    let (mut cpu_before, mut changes_began) = (cpu(&pids), Instant::now());
    let mut kernel_before = cpu_field(&pids, 12);
    for change in 0..warm_up + changes {
        if change == warm_up {
            waits.clear();
            asked.store(0, Ordering::Relaxed);
            counted_before = counts(&fleet[0]).await;
            (cpu_before, changes_began) = (cpu(&pids), Instant::now());
            kernel_before = cpu_field(&pids, 12);
        }
        swap(&client, [a.addr, b.addr], (change + 1) % 2, &write, origin).await;
        for _ in 0..processes {
            let wait = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .expect("every process within 30 s")
                .expect("probes alive");
            waits.push(wait);
        }
        // Let the probes settle on the new server before the next change.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_all = cpu(&pids) - cpu_before;
    let kernel = (cpu_field(&pids, 12) - kernel_before).as_secs_f64() / in_all.as_secs_f64();
    let spent = in_all.as_secs_f64() - idle_per_second * changes_began.elapsed().as_secs_f64();
    let counted = counts(&fleet[0]).await;
    println!(
        "the first process, per change: {:.2} watch events, {:.2} tables published",
        (counted.0 - counted_before.0) / changes as f64,
        (counted.1 - counted_before.1) / changes as f64
    );
    waits.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "CPU per change and process, the idle share taken out: {:.2} ms ({:.0} ms of CPU a change in all, on 2 cores), with {:.1} probe requests; the kernel's share of the processes' CPU: {:.0} %",
        spent * 1000.0 / (changes * processes) as f64,
        spent * 1000.0 / changes as f64,
        asked.load(Ordering::Relaxed) as f64 / (changes * processes) as f64,
        kernel * 100.0
    );
    println!(
        "a change live in all {processes}: over {changes} changes × {processes} processes, p50 {} ms, p99 {} ms, max {} ms (probing every {} ms; from before the write was sent)",
        ms(percentile(&waits, 0.5)),
        ms(percentile(&waits, 0.99)),
        ms(*waits.last().unwrap()),
        period.as_millis()
    );
    drop(fleet);
}
