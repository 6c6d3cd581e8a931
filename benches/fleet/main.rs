//! The ZooKeeper side of a fleet: N light instances on one 3-node ensemble
//! (the test kit's, on loopback, `maxClientCnxns=0`), each the real
//! discovery code — its own session, persistent watch, reads and member
//! updates — without the table build (one machine cannot hold the CPU of a
//! thousand proxies; the instance side is measured by `benches/churn.rs`
//! and `benches/table_build.rs`). For each N: the cold start of all N at
//! once (until every instance has caught up with the listing), and one
//! `setData` (until every instance has caught up with its zxid: p50, p99,
//! max), with the requests and reads the ensemble served (`mntr`, summed
//! over the nodes; see `ensemble.rs`) and its CPU time. The cold start is
//! set against a floor measured in the same run: every member read by
//! every instance at the rate plain readers get reading members the way
//! an instance does (multi-reads of 256, each backend's own znode
//! packed with them), and each backend's watch at the rate they get
//! single reads.
//!
//! Run: `cargo bench --bench fleet` (`ZKGATE_LOG=warn` for the light
//! instances' log; `FLEET_JVM=test` for the test kit's trimmed ZooKeeper
//! JVMs; `FLEET_SIZES=100,300`,
//! `FLEET_MEMBERS=10000`, `FLEET_CHANGES=20` to change the shape;
//! `FLEET_EXPIRE=N` instances for the every-session-expired scenario and
//! `FLEET_ANNOUNCE=N` for announcing instances under `FLEET_CHURN` member
//! changes a second (50), each the largest size by default, 0 to skip).

use std::time::{Duration, Instant};

use zkgate_config::ZookeeperConfig;

mod announce;
mod ensemble;
mod light;

use ensemble::{cpu_seconds, max_read_rate, mntr_sums, peak_rates, served, timeline, Rates};
use light::{light, only, until_all, Light};
use zkgate_testkit::ZooKeeper;
use zookeeper_client::{Acls, CreateMode};

/// Backend `b`'s path.
fn path(b: usize) -> String {
    format!("/services/b{b}")
}

/// Where member `n` (of all backends) lives: its backend's path and name.
fn node(n: usize, backends: usize) -> String {
    format!("{}/m{}", path(n % backends), n / backends)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every session expired at once: `n` instances reach the ensemble through
/// relays, which stop passing bytes for longer than the session timeout (a
/// partition) and then pass them again. How long until every instance read
/// its backends again in a new session after the heal, the peak request
/// rate meanwhile, and the connections the ensemble refused.
async fn all_sessions_expired(
    zk: &ZooKeeper,
    zookeeper: &ZookeeperConfig,
    n: usize,
    backends: usize,
    listing: &[i64],
) -> (Duration, Rates, u64, Work) {
    let mut relays = Vec::new();
    for i in 0..zk.len() {
        relays.push(zkgate_testkit::Relay::start(zk.client_addr(i)).await);
    }
    let through = ZookeeperConfig {
        connect: relays
            .iter()
            .map(|r| r.addr.to_string())
            .collect::<Vec<_>>()
            .join(","),
        ..zookeeper.clone()
    };
    let started = Instant::now();
    let fleet: Vec<Light> = (0..n).map(|_| light(&through, backends)).collect();
    until_all(&fleet, listing, started, Duration::from_secs(300)).await;
    let before: Vec<u64> = fleet.iter().map(|l| *l.listings.borrow()).collect();
    let [rejected] = mntr_sums(zk, ["zk_connection_rejected"]);
    for relay in &relays {
        relay.pause();
    }
    // Longer than the session timeout: the ensemble expires every session.
    tokio::time::sleep(zookeeper.session_timeout + Duration::from_secs(5)).await;
    for relay in &relays {
        relay.resume();
    }
    let healed = Since::now(zk);
    let (took, peak, work) = reread(zk, &fleet, before, healed, "the heal").await;
    let rejected = mntr_sums(zk, ["zk_connection_rejected"])[0] - rejected;
    drop(fleet);
    (took, peak, rejected, work)
}

/// The leader killed: how long until every instance read its backend
/// again, and the peak request rate meanwhile. The node is restarted after.
async fn leader_killed(zk: &mut ZooKeeper, fleet: &[Light]) -> (Duration, Rates, Work) {
    let leader = (0..zk.len())
        .find(|&i| zk.mode(i).as_deref() == Some("leader"))
        .expect("a leader");
    let before: Vec<u64> = fleet.iter().map(|l| *l.listings.borrow()).collect();
    let killed = Since::now(zk);
    tokio::task::block_in_place(|| zk.kill(leader));
    let (took, peak, work) = reread(zk, fleet, before, killed, "the leader's death").await;
    tokio::task::block_in_place(|| zk.restart(leader));
    (took, peak, work)
}

/// When something happened, and the CPU time used until then.
struct Since {
    at: Instant,
    ensemble: Vec<Option<f64>>,
    instances: f64,
}

impl Since {
    fn now(zk: &ZooKeeper) -> Self {
        Since {
            ensemble: ensemble::node_cpu(zk),
            instances: ensemble::own_cpu_seconds(),
            at: Instant::now(),
        }
    }
}

/// A fleet's re-read after `since` (`what` happened then; `before` are the
/// instances' listings so far): printed as the ensemble's reads over time
/// and each instance's time; how long until the last was done, the peak
/// rates, and the CPU it took.
async fn reread(
    zk: &ZooKeeper,
    fleet: &[Light],
    before: Vec<u64>,
    since: Since,
    what: &str,
) -> (Duration, Rates, Work) {
    let (times, peak, reads) = peak_rates(zk, reread_times(fleet, before, since.at)).await;
    println!("  reads/s every 0.5 s from {what}: {}", timeline(&reads));
    println!(
        "  each instance's backends read again, s after {what}: {}",
        spread(&times)
    );
    let work = Work {
        ensemble: ensemble::node_cpu_since(zk, &since.ensemble),
        instances: ensemble::own_cpu_seconds() - since.instances,
    };
    (*times.last().expect("instances"), peak, work)
}

/// The CPU seconds a fleet's re-read took: the ensemble's, the instances'.
struct Work {
    ensemble: f64,
    instances: f64,
}

impl Work {
    /// The re-read measured in halves, as if each instance had a machine
    /// of its own: the ensemble's work at the pace it reads at full speed
    /// (`full_speed` CPU seconds a second) or the re-read wait's spread,
    /// whichever is longer, then one instance's own read (`alone`).
    fn halves(&self, full_speed: f64, spread: Duration, alone: Duration) -> String {
        let zookeeper_side = self.ensemble / full_speed;
        format!(
            "the ensemble's CPU {:.1} s ({zookeeper_side:.2} s at full speed), the instances' {:.1} s on the same two cores; the halves added: {:.2} s (the longer of that and the {:.1} s spread, plus one instance's read alone, {:.2} s)",
            self.ensemble,
            self.instances,
            zookeeper_side.max(spread.as_secs_f64()) + alone.as_secs_f64(),
            spread.as_secs_f64(),
            alone.as_secs_f64()
        )
    }
}

/// The longest a re-read waits after a reconnect, with `members` in all
/// (the discovery's bound: half a second plus 2 ms a member, at most 25 s).
fn resync_spread(members: usize) -> Duration {
    (Duration::from_millis(500) + Duration::from_millis(2) * members as u32)
        .min(Duration::from_secs(25))
}

/// When each instance had read all its backends again (sorted), from `from`;
/// `before` are their listings so far.
async fn reread_times(fleet: &[Light], before: Vec<u64>, from: Instant) -> Vec<Duration> {
    let each = fleet.iter().zip(before).map(|(instance, before)| {
        let mut listings = instance.listings.clone();
        async move {
            let reread = tokio::time::timeout(
                Duration::from_secs(120),
                listings.wait_for(|n| *n >= before + instance.backends),
            )
            .await;
            assert!(
                matches!(reread, Ok(Ok(_))),
                "an instance did not read its backends again within 120 s"
            );
            from.elapsed()
        }
    });
    let mut times = futures_util::future::join_all(each).await;
    times.sort();
    times
}

/// p10, p50, p90, p99 and the last of sorted `times`, in seconds.
fn spread(times: &[Duration]) -> String {
    let s = |d: Duration| format!("{:.1}", d.as_secs_f64());
    format!(
        "p10 {}, p50 {}, p90 {}, p99 {}, last {}",
        s(percentile(times, 0.1)),
        s(percentile(times, 0.5)),
        s(percentile(times, 0.9)),
        s(percentile(times, 0.99)),
        s(*times.last().expect("instances"))
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The light instances' own log (reconnects, re-reads), with ZKGATE_LOG=warn.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("ZKGATE_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let sizes = env_list("FLEET_SIZES", &[100, 300, 1000]);
    let member_count = env_number("FLEET_MEMBERS", 10_000);
    let changes = env_number("FLEET_CHANGES", 20);
    // `FLEET_JVM=test`: the test kit's trimmed JVMs, to compare.
    let mut zk = if std::env::var("FLEET_JVM").as_deref() == Ok("test") {
        ZooKeeper::ensemble()
    } else {
        ZooKeeper::ensemble_as_shipped()
    };
    // The bench's own writer: a long session, so that the two cores the
    // thousand instances and the ensemble saturate (this process starved
    // for seconds at a time) do not expire it.
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(60))
        .connect(&zk.connect_string())
        .await
        .expect("connect");
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let backends = env_number("FLEET_BACKENDS", 1);
    for b in 0..backends {
        client.mkdir(&path(b), &open).await.expect("mkdir");
    }
    for chunk in (0..member_count).collect::<Vec<_>>().chunks(500) {
        let mut writer = client.new_multi_writer();
        for &n in chunk {
            let port = 20_000 + (n % 40_000) as u16;
            let host = format!("10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256);
            let data = format!(r#"{{"address":"{host}:{port}","weight":1}}"#);
            writer
                .add_create(&node(n, backends), data.as_bytes(), &open)
                .expect("create");
        }
        writer.commit().await.expect("commit");
    }
    let mut listing = Vec::new();
    for b in 0..backends {
        let stat = client
            .check_stat(&path(b))
            .await
            .expect("stat")
            .expect("path");
        listing.push(stat.pzxid);
    }
    let zookeeper = ZookeeperConfig {
        connect: zk.connect_string(),
        chroot: None,
        config_node: None,
        session_timeout: Duration::from_secs(10),
        auth: None,
        fleet: None,
    };
    println!("ensemble: 3 nodes on loopback; {backends} backend(s), {member_count} members in all");
    // The ensemble's capacity first: what it serves at full speed, its JVMs
    // warmed up (a first round, not counted) as a long-running ensemble's
    // are before a fleet starts.
    let members: Vec<String> = (0..member_count).map(|n| node(n, backends)).collect();
    max_read_rate(&zk, 64, 5, 1, &members).await;
    let plain = max_read_rate(&zk, 64, 5, 1, &members).await;
    println!("the ensemble's read rate, 64 sessions reading one znode as fast as they can: {:.0} reads/s", plain.requests);
    let batched = max_read_rate(&zk, 64, 5, READ_BATCH, &members).await;
    println!(
        "the ensemble's read rate, 64 sessions reading members {READ_BATCH} to a multi-read as fast as they can: {:.0} znodes/s ({:.0} requests/s), {:.2} CPU s per second",
        batched.znodes, batched.requests, batched.cpu
    );
    let (alone, lone_set) =
        one_instance_alone(&zk, &client, &zookeeper, backends, &listing, changes).await;
    println!(
        "one instance alone: read every member in {:.2} s; a `setData` applied in p50 {} ms, p99 {} ms, max {} ms",
        alone.as_secs_f64(),
        ms(percentile(&lone_set.waits, 0.5)),
        ms(percentile(&lone_set.waits, 0.99)),
        ms(*lone_set.waits.last().unwrap()),
    );
    println!("| instances | cold start s | requests per instance at start | reads/s at start (mean) | ensemble CPU s at start | setData p50 ms | p99 ms | max ms | requests per change | of which reads (less idle pings) ÷ N | idle requests/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut colds = Vec::new();
    let mut set_datas = Vec::new();
    for &n in &sizes {
        let (fleet, cold) = cold_start(&zk, &zookeeper, n, backends, &listing).await;
        // What the sessions cost idle (pings), to tell reads from it.
        let idle_from = served(&zk);
        let idle_cpu_from = (cpu_seconds(&zk), ensemble::own_cpu_seconds());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_per_second = served(&zk).rates_since(&idle_from).requests;
        let idle_cpu = (
            (cpu_seconds(&zk) - idle_cpu_from.0) / 3.0,
            (ensemble::own_cpu_seconds() - idle_cpu_from.1) / 3.0,
        );
        let set = set_data_rounds(&zk, &client, &fleet, changes, backends).await;
        let idle = idle_per_second * set.took.as_secs_f64();
        let per_change = set.requests / changes as f64;
        let reads_per_change = (set.requests - idle) / changes as f64;
        let waits = &set.waits;
        println!(
            "| {n} | {:.2} | {:.1} | {:.0} | {:.1} | {} | {} | {} | {:.0} | {:.2} | {:.0} |",
            cold.took.as_secs_f64(),
            cold.requests as f64 / n as f64,
            cold.mean_reads(),
            cold.cpu,
            ms(percentile(waits, 0.5)),
            ms(percentile(waits, 0.99)),
            ms(*waits.last().unwrap()),
            per_change,
            reads_per_change / n as f64,
            idle_per_second
        );
        // What the change itself cost: less the idle sessions' share of
        // the time each change took, the waits between them included.
        let idle_share = set.took.as_secs_f64() / changes as f64;
        let cpu = (
            set.ensemble_cpu - idle_cpu.0 * idle_share,
            set.instances_cpu - idle_cpu.1 * idle_share,
        );
        set_datas.push((n, cpu));
        if n == *sizes.iter().max().unwrap() {
            let deploy = env_number("FLEET_DEPLOY", 1000);
            let converged = a_deploy(&zk, &client, &fleet, deploy, member_count, backends).await;
            println!();
            println!("{n} instances, a deploy of {deploy} member changes over 10 s: all converged {:.2} s after it began ({:.2} s after the last write)", converged.as_secs_f64(), converged.as_secs_f64() - 10.0);
            let (took, peak, work) = leader_killed(&mut zk, &fleet).await;
            println!(
                "{n} instances, the leader killed: all read their backends again within {:.2} s; peak {:.0} requests/s and {:.0} reads/s at the ensemble ({:.1} × and {:.1} × the cold start's mean)",
                took.as_secs_f64(),
                peak.requests,
                peak.reads,
                peak.requests / cold.mean_requests(),
                peak.reads / cold.mean_reads(),
            );
            let spread = resync_spread(member_count);
            println!("  {}", work.halves(batched.cpu, spread, alone));
        }
        colds.push((n, cold));
        drop(fleet);
        // The sessions close; let the ensemble settle before the next size.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let expire = env_number("FLEET_EXPIRE", *sizes.iter().max().unwrap_or(&0));
    if expire > 0 {
        let (took, peak, rejected, work) =
            all_sessions_expired(&zk, &zookeeper, expire, backends, &listing).await;
        println!("{expire} instances, every session expired by a partition longer than the session timeout, then healed: all read their backends again within {:.2} s of the heal; peak {:.0} requests/s and {:.0} reads/s at the ensemble; {rejected} connections refused", took.as_secs_f64(), peak.requests, peak.reads);
        if let Some((_, cold)) = colds.iter().find(|(n, _)| *n == expire) {
            println!(
                "  ({:.1} × and {:.1} × the cold start's mean)",
                peak.requests / cold.mean_requests(),
                peak.reads / cold.mean_reads()
            );
        }
        let spread = resync_spread(member_count);
        println!("  {}", work.halves(batched.cpu, spread, alone));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let announce = env_number("FLEET_ANNOUNCE", *sizes.iter().max().unwrap_or(&0));
    let announced = if announce > 0 {
        let churn = env_number("FLEET_CHURN", 50);
        let announced = announce::announcing_fleet(
            &zk, &zookeeper, &client, announce, backends, &listing, churn,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Some(announced)
    } else {
        None
    };
    if let Some(a) = announced {
        let capacity = announce::max_write_rate(&zk.connect_string(), 64, 5).await;
        println!("the ensemble's write rate (64 sessions each rewriting a znode as fast as they can): {capacity:.0} writes/s");
        println!(
            "{} announcing instances under {} member changes/s: announcements {:.0} writes/s, {:.1} % of the write rate; `fleet status` {:.2} s; `server set --wait-fleet` {:.2} s, returned {:.2} s after the last instance applied the change",
            a.instances,
            a.churn,
            a.announcement_writes,
            100.0 * a.announcement_writes / capacity,
            a.status.as_secs_f64(),
            a.wait_fleet.as_secs_f64(),
            a.wait_fleet_after_last.as_secs_f64(),
        );
    }
    for &(n, (ensemble_cpu, instances_cpu)) in &set_datas {
        // The two halves of a fleet's `setData`, where each instance has a
        // machine of its own: the ensemble's work for it (the event to
        // every instance, and every instance's read) at the pace it works
        // at full speed, then one instance's own wait with the ensemble to
        // itself. Here both halves share two cores.
        let zookeeper_side = ensemble_cpu / batched.cpu;
        let lone = percentile(&lone_set.waits, 0.99).as_secs_f64();
        println!(
            "`setData` to {n}: the CPU of each change here (less what the sessions cost idle): the ensemble {:.1} ms, the instances {:.1} ms ({:.0} µs each), on two cores",
            1e3 * ensemble_cpu,
            1e3 * instances_cpu,
            1e6 * instances_cpu / n as f64,
        );
        println!(
            "  the halves added: ZooKeeper side {:.1} ms (its CPU per change at its full-speed {:.2} CPU s per second) + one instance alone (p99) {:.1} ms = {:.1} ms",
            1e3 * zookeeper_side,
            batched.cpu,
            1e3 * lone,
            1e3 * (zookeeper_side + lone),
        );
    }
    for (n, cold) in &colds {
        // What a cold start must read: every member, by every instance, and
        // each backend's own znode (its data and children, packed with the
        // members), at the rate of multi-reads; and the watch on each
        // backend, a request the size of a single read.
        let znodes = (member_count + 2 * backends) as f64;
        let watches = backends as f64 / plain.requests;
        let floor = *n as f64 * (znodes / batched.znodes + watches);
        let cpu_floor = floor * batched.cpu;
        // The two halves of a fleet's cold start, where each instance has a
        // machine of its own: the ensemble's work at the pace it reads at
        // full speed, then one instance's own.
        let zookeeper_side = cold.cpu / batched.cpu;
        let halves = zookeeper_side + alone.as_secs_f64();
        println!(
            "cold start of {n}: {:.2} s here against a floor of {floor:.2} s (every member and backend znode read by every instance at the ensemble's batched rate, each backend's watch at its single rate): {:.2} ×; the ensemble's CPU {:.1} s against {cpu_floor:.1} s at that rate: {:.2} ×; the instances' CPU {:.1} s on the same two cores",
            cold.took.as_secs_f64(),
            cold.took.as_secs_f64() / floor,
            cold.cpu,
            cold.cpu / cpu_floor,
            cold.instances_cpu,
        );
        println!(
            "  the halves added: ZooKeeper side {zookeeper_side:.2} s + one instance alone {:.2} s = {halves:.2} s: {:.2} × the floor",
            alone.as_secs_f64(),
            halves / floor,
        );
    }
}

/// Children an instance reads per multi-read (the discovery code's batch).
const READ_BATCH: usize = 256;

/// What a cold start of a fleet cost.
struct Cold {
    /// Until every instance had read every member.
    took: Duration,
    requests: u64,
    reads: u64,
    /// The ensemble's CPU seconds meanwhile.
    cpu: f64,
    /// This process's (the instances') CPU seconds meanwhile.
    instances_cpu: f64,
}

impl Cold {
    fn mean_requests(&self) -> f64 {
        self.requests as f64 / self.took.as_secs_f64()
    }

    fn mean_reads(&self) -> f64 {
        self.reads as f64 / self.took.as_secs_f64()
    }
}

/// `n` instances started at once, and what it took until all were synced.
async fn cold_start(
    zk: &ZooKeeper,
    zookeeper: &ZookeeperConfig,
    n: usize,
    backends: usize,
    listing: &[i64],
) -> (Vec<Light>, Cold) {
    let before = served(zk);
    let cpu = cpu_seconds(zk);
    let own = ensemble::own_cpu_seconds();
    let started = Instant::now();
    let fleet: Vec<Light> = (0..n).map(|_| light(zookeeper, backends)).collect();
    let waits = until_all(&fleet, listing, started, Duration::from_secs(300)).await;
    let after = served(zk);
    let cold = Cold {
        took: waits.into_iter().max().unwrap_or_default(),
        requests: after.requests - before.requests,
        reads: after.reads - before.reads,
        cpu: cpu_seconds(zk) - cpu,
        instances_cpu: ensemble::own_cpu_seconds() - own,
    };
    (fleet, cold)
}

/// One instance with the ensemble to itself: its cold start, the
/// instance side of a fleet's, then `changes` `setData`s, the instance
/// side of a fleet's `setData`.
async fn one_instance_alone(
    zk: &ZooKeeper,
    client: &zookeeper_client::Client,
    zookeeper: &ZookeeperConfig,
    backends: usize,
    listing: &[i64],
    changes: usize,
) -> (Duration, SetData) {
    let started = Instant::now();
    let one = [light(zookeeper, backends)];
    let took = until_all(&one, listing, started, Duration::from_secs(60)).await;
    let set = set_data_rounds(zk, client, &one, changes, backends).await;
    (took[0], set)
}

/// What `setData`s read by a fleet cost.
struct SetData {
    /// Until each instance had each change, sorted.
    waits: Vec<Duration>,
    /// Requests the ensemble served meanwhile.
    requests: f64,
    /// The whole run, the waits between changes included.
    took: Duration,
    /// CPU seconds per change: the ensemble's, this process's (the
    /// instances').
    ensemble_cpu: f64,
    instances_cpu: f64,
}

/// `changes` `setData`s of one member, one at a time: each waits until
/// every instance of `fleet` has it.
async fn set_data_rounds(
    zk: &ZooKeeper,
    client: &zookeeper_client::Client,
    fleet: &[Light],
    changes: usize,
    backends: usize,
) -> SetData {
    let mut waits = Vec::new();
    let before = served(zk);
    let began = Instant::now();
    let (ensemble_before, own_before) = (cpu_seconds(zk), ensemble::own_cpu_seconds());
    for change in 0..changes {
        // One change at a time, each on its own: changes to a backend
        // closer together than an instance's read spacing are read
        // together (the deploy is that case).
        tokio::time::sleep(Duration::from_millis(250)).await;
        let data = format!(
            r#"{{"address":"10.0.0.0:20000","weight":{}}}"#,
            1 + change % 9
        );
        let written = Instant::now();
        let stat = client
            .set_data(&node(0, backends), data.as_bytes(), None)
            .await
            .expect("set");
        let want = only(backends, 0, stat.mzxid);
        waits.extend(until_all(fleet, &want, written, Duration::from_secs(60)).await);
    }
    waits.sort();
    let per_change = |cpu: f64| cpu / changes.max(1) as f64;
    SetData {
        waits,
        requests: (served(zk).requests - before.requests) as f64,
        took: began.elapsed(),
        ensemble_cpu: per_change(cpu_seconds(zk) - ensemble_before),
        instances_cpu: per_change(ensemble::own_cpu_seconds() - own_before),
    }
}

/// A deploy: `deploy` member changes spread over 10 s; how long after it
/// began every instance had applied the last of them.
async fn a_deploy(
    zk: &ZooKeeper,
    client: &zookeeper_client::Client,
    fleet: &[Light],
    deploy: usize,
    member_count: usize,
    backends: usize,
) -> Duration {
    let before = served(zk);
    let began = Instant::now();
    let mut last = vec![0i64; backends];
    for change in 0..deploy {
        let at = began + Duration::from_secs(10).mul_f64(change as f64 / deploy as f64);
        tokio::time::sleep_until(at.into()).await;
        let member = change % member_count;
        let data = format!(
            r#"{{"address":"10.0.0.1:{}","weight":{}}}"#,
            20_000 + member % 40_000,
            1 + change % 7
        );
        let stat = client
            .set_data(&node(member, backends), data.as_bytes(), None)
            .await
            .expect("set");
        last[member % backends] = stat.mzxid;
    }
    let converged = until_all(fleet, &last, began, Duration::from_secs(120)).await;
    let served = served(zk);
    println!(
        "  during the deploy: {:.0} requests and {:.0} reads per change at the ensemble ({:.2} and {:.2} per instance)",
        (served.requests - before.requests) as f64 / deploy as f64,
        (served.reads - before.reads) as f64 / deploy as f64,
        (served.requests - before.requests) as f64 / (deploy * fleet.len()) as f64,
        (served.reads - before.reads) as f64 / (deploy * fleet.len()) as f64,
    );
    converged.into_iter().max().unwrap_or_default()
}
