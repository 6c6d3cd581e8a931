//! What membership churn costs traffic: zkgate in front of a 1,000-member
//! backend kept in ZooKeeper, with and without 50 membership changes per
//! second, in alternation. zkgate is pinned to core 1 with one worker thread;
//! everything else runs on core 0, as the load generator and the origins do
//! in `benches/compare.sh`: wrk, the origin (`zkgate_testkit::responder`,
//! which this program runs as a child: one thread listening on the 1,000
//! members' ports), ZooKeeper and the writer of changes (this process). So zkgate's core carries zkgate alone, as where
//! ZooKeeper runs on other machines, and what churn costs it is its own
//! work: watches, reads and table builds. Besides the throughput change the
//! report gives zkgate's CPU per request, the share of a core its table
//! builds took and ZooKeeper's own share, and how busy the load core was
//! (if it saturates, ZooKeeper's share comes out of the rate).
//!
//! Run: `cargo bench --bench churn` (needs wrk and taskset:
//! `sudo apt-get install -y wrk util-linux`; `benches/compare.sh` installs them).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zkgate_testkit::{free_port, http_get, wait_until, ZooKeeper};
use zookeeper_client::{Acls, CreateMode};

const ZKGATE: &str = env!("CARGO_BIN_EXE_zkgate");
const MEMBERS: u16 = 1_000;
/// Backend ports: a benchmark's fixed range on loopback.
const FIRST_PORT: u16 = 19_000;
const CHANGES_PER_SECOND: u64 = 50;
/// Rounds of (quiet, churning) and seconds per run: `CHURN_ROUNDS`,
/// `CHURN_SECONDS` (default 3 and 10; more, shorter rounds average out
/// this machine's noise better).
fn rounds() -> usize {
    std::env::var("CHURN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn seconds() -> u64 {
    std::env::var("CHURN_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn member(port: u16, weight: u32) -> String {
    format!(r#"{{"address":"127.0.0.1:{port}","weight":{weight}}}"#)
}

/// One run of wrk.
struct Run {
    rate: f64,
    /// zkgate's CPU time per request, µs.
    cpu: f64,
    /// How busy core 0 (load, origin, ZooKeeper) was, %.
    load_core: f64,
}

/// One wrk run against zkgate (`pid`).
fn wrk(url: &str, pid: u32) -> Run {
    let cpu_before = cpu_seconds(pid);
    let core_before = core0_ticks();
    let output = Command::new("taskset")
        .args([
            "-c",
            "0",
            "wrk",
            "-t1",
            "-c64",
            &format!("-d{}s", seconds()),
            url,
        ])
        .output()
        .expect("wrk is needed: sudo apt-get install -y wrk");
    let cpu = cpu_seconds(pid) - cpu_before;
    let (busy, idle) = core0_ticks();
    let load_core = 100.0 * (busy - core_before.0) / (busy - core_before.0 + idle - core_before.1);
    let text = String::from_utf8_lossy(&output.stdout);
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    Run {
        rate,
        cpu: cpu * 1e6 / (rate * seconds() as f64),
        load_core,
    }
}

/// Busy and idle ticks of core 0, from /proc/stat.
fn core0_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let line = stat.lines().find(|l| l.starts_with("cpu0 ")).unwrap();
    let t: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal …
    (t[0] + t[1] + t[2] + t[5] + t[6] + t[7], t[3] + t[4])
}

/// utime + stime of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let mut origin = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                ORIGIN_ARG,
                &format!("{FIRST_PORT}-{}", FIRST_PORT + MEMBERS - 1),
            ])
            .spawn()
            .expect("the origin runs"),
    );
    let first_member = std::net::SocketAddr::from(([127, 0, 0, 1], FIRST_PORT));
    wait_until("the origin listens", Duration::from_secs(10), || async {
        http_get(first_member, "/").await.ok().map(|_| ())
    })
    .await;
    assert!(
        origin.0.try_wait().unwrap().is_none(),
        "the origin exited: are ports {FIRST_PORT}-{} free?",
        FIRST_PORT + MEMBERS - 1
    );

    let zk = ZooKeeper::standalone();
    let client = zookeeper_client::Client::connect(&zk.connect_string())
        .await
        .unwrap();
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir("/bench/churn", &options).await.unwrap();
    for batch in (0..MEMBERS).collect::<Vec<_>>().chunks(250) {
        let mut writer = client.new_multi_writer();
        for i in batch {
            let port = FIRST_PORT + i;
            writer
                .add_create(
                    &format!("/bench/churn/m{i}"),
                    member(port, 1).as_bytes(),
                    &options,
                )
                .unwrap();
        }
        writer.commit().await.unwrap();
    }

    let (port, admin) = (free_port(), free_port());
    let config = dir.path().join("zkgate.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{ bind: \"127.0.0.1:{admin}\" }}\nzookeeper:\n  connect: \"{}\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n  web:\n    zookeeper: {{ path: /bench/churn }}\n",
            zk.connect_string()
        ),
    )
    .unwrap();
    let _zkgate = Killed(
        Command::new("taskset")
            .args(["-c", "1", ZKGATE, "run", "-c"])
            .arg(&config)
            .env("ZKGATE_WORKERS", "1")
            .env("ZKGATE_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin_addr = ([127, 0, 0, 1], admin).into();
    wait_until("zkgate ready", Duration::from_secs(30), || async {
        let reply = http_get(admin_addr, "/ready").await.ok()?;
        (reply.status == 200).then_some(())
    })
    .await;
    let metric = |name: &'static str| async move {
        let metrics = http_get(admin_addr, "/metrics").await.unwrap().text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let swaps = || metric("zkgate_routing_table_swaps_total");
    let build_seconds = || metric("zkgate_routing_table_build_seconds_sum");

    let pid = _zkgate.0.id();
    let url = format!("http://127.0.0.1:{port}/");
    let (mut quiet, mut churning) = (Vec::new(), Vec::new());
    let mut changes_made = 0;
    let mut swaps_seen = 0.0;
    // Share of a core spent building tables while churning, summed over rounds.
    let mut building = 0.0;
    // And ZooKeeper's CPU, on the load core, churning and quiet.
    let (mut zookeeper, mut zookeeper_quiet) = (0.0, 0.0);
    let zk_pid = zk.pid(0).expect("ZooKeeper runs");
    for round in 0..rounds() {
        // Quiet first in even rounds, churning first in odd ones: a drift of
        // the machine within a round then favours neither.
        let quiet_first = round % 2 == 0;
        if quiet_first {
            let run = measured_run(&url, pid, zk_pid).await;
            quiet.push(run.run);
            zookeeper_quiet += run.zookeeper;
        }
        let before = swaps().await;
        let built_before = build_seconds().await;
        let (churned, changes) = churning_run(&client, &url, pid, zk_pid).await;
        churning.push(churned.run);
        zookeeper += churned.zookeeper;
        swaps_seen += swaps().await - before;
        let built = build_seconds().await - built_before;
        building += built / churned.took.as_secs_f64();
        changes_made += changes;
        if !quiet_first {
            let run = measured_run(&url, pid, zk_pid).await;
            quiet.push(run.run);
            zookeeper_quiet += run.zookeeper;
        }
        let (q, c) = (quiet.last().unwrap(), churning.last().unwrap());
        eprintln!(
            "round: quiet {:.0} req/s at {:.1} µs (load core {:.0}% busy), churning {:.0} req/s at {:.1} µs (load core {:.0}%; {} changes in {:.1?}, {:.1} ms building tables)",
            q.rate,
            q.cpu,
            q.load_core,
            c.rate,
            c.cpu,
            c.load_core,
            changes,
            churned.took,
            built * 1e3
        );
    }
    let rate = |runs: &[Run]| median(runs.iter().map(|r| r.rate).collect());
    let cpu = |runs: &[Run]| median(runs.iter().map(|r| r.cpu).collect());
    let load_core = |runs: &[Run]| median(runs.iter().map(|r| r.load_core).collect());
    let (quiet_rate, churning_rate) = (rate(&quiet), rate(&churning));
    // Changes are the medians of each round's change: rounds run a minute
    // apart at most, and the machine's drift between them does not move it.
    let change = |of: fn(&Run) -> f64| {
        let per_round = quiet
            .iter()
            .zip(&churning)
            .map(|(q, c)| of(c) / of(q) - 1.0);
        median(per_round.collect()) * 100.0
    };
    println!(
        "1,000-member ZooKeeper backend, zkgate on one core: quiet {quiet_rate:.0} req/s at {:.1} µs CPU/request, {CHANGES_PER_SECOND} changes/s {churning_rate:.0} req/s at {:.1} µs: throughput change {:+.1}%, CPU per request {:+.1}% ({changes_made} changes, {swaps_seen} table swaps, table builds {:.2}% of a core; ZooKeeper itself used {:.1}% of a core, {:.1}% quiet; load core {:.0}% busy quiet, {:.0}% churning)",
        cpu(&quiet),
        cpu(&churning),
        change(|run| run.rate),
        change(|run| run.cpu),
        building / rounds() as f64 * 100.0,
        zookeeper / rounds() as f64 * 100.0,
        zookeeper_quiet / rounds() as f64 * 100.0,
        load_core(&quiet),
        load_core(&churning)
    );
}

/// One wrk run, with ZooKeeper's share of a core meanwhile.
struct Measured {
    run: Run,
    zookeeper: f64,
    took: Duration,
}

async fn measured_run(url: &str, pid: u32, zk_pid: u32) -> Measured {
    let (zk_before, started) = (cpu_seconds(zk_pid), Instant::now());
    let url = url.to_owned();
    let run = tokio::task::spawn_blocking(move || wrk(&url, pid))
        .await
        .unwrap();
    let took = started.elapsed();
    Measured {
        run,
        zookeeper: (cpu_seconds(zk_pid) - zk_before) / took.as_secs_f64(),
        took,
    }
}

/// One run while members change 50 times a second, each change a real one:
/// members' weights go from 1 to 2, one member at a time, then back.
/// Returns the run and the changes made.
async fn churning_run(
    client: &zookeeper_client::Client,
    url: &str,
    pid: u32,
    zk_pid: u32,
) -> (Measured, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, stop, made) = (client.clone(), stop.clone(), made.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHANGES_PER_SECOND));
            let mut i: u16 = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let n = made.fetch_add(1, Ordering::Relaxed);
                let weight = 2 - (n / MEMBERS as usize % 2) as u32;
                client
                    .set_data(
                        &format!("/bench/churn/m{i}"),
                        member(FIRST_PORT + i, weight).as_bytes(),
                        None,
                    )
                    .await
                    .unwrap();
                i = (i + 1) % MEMBERS;
            }
        })
    };
    let measured = measured_run(url, pid, zk_pid).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    (measured, made.load(Ordering::Relaxed))
}

/// Pins this process to core 0 before it starts any thread: its threads,
/// ZooKeeper and the origin inherit it. zkgate is started on core 1.
fn pin_to_load_core() {
    let pinned = Command::new("taskset")
        .args(["-p", "-c", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset is needed: sudo apt-get install -y util-linux");
    assert!(
        pinned.success(),
        "taskset could not pin the benchmark to core 0"
    );
}

/// Run as `churn --origin PORTS`, this program is the origin server.
const ORIGIN_ARG: &str = "--origin";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(ORIGIN_ARG) {
        let ports = zkgate_testkit::responder::parse_ports(&args[2]).expect("a port range");
        zkgate_testkit::responder::serve(ports).expect("the origin's ports are free");
        return;
    }
    // `cargo test --all-targets` runs benches as tests: there, do nothing.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    pin_to_load_core();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
