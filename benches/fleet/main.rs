//! The ZooKeeper side of a fleet: N light instances on one 3-node ensemble
//! (the test kit's, on loopback, `maxClientCnxns=0`), each the real
//! discovery code — its own session, persistent watch, reads and member
//! updates — without the table build (one machine cannot hold the CPU of a
//! thousand proxies; the instance side is measured by `benches/churn.rs`
//! and `benches/table_build.rs`). For each N: the cold start of all N at
//! once (until every instance has caught up with the listing), and one
//! `setData` (until every instance has caught up with its zxid: p50, p99,
//! max), with the requests the ensemble served (`mntr`
//! `zk_packets_received`, summed over the nodes) per instance and per
//! change.
//!
//! Run: `cargo bench --bench fleet` (`FLEET_SIZES=100,300`,
//! `FLEET_MEMBERS=10000`, `FLEET_CHANGES=20` to change the shape;
//! `FLEET_EXPIRE=N` instances for the every-session-expired scenario, the
//! largest size by default, 0 to skip it).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use zkgate_config::{DiscoveryConfig, MemberFormat, OnEmpty, ZookeeperConfig};
use zkgate_discovery::{Change, Discovery, WatchSpec};
use zkgate_testkit::zookeeper::four_letter;
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

/// Requests the ensemble has received so far, summed over its nodes.
fn packets(zk: &ZooKeeper) -> u64 {
    mntr_sum(zk, "zk_packets_received")
}

/// A `mntr` counter summed over the ensemble's nodes.
fn mntr_sum(zk: &ZooKeeper, key: &str) -> u64 {
    (0..zk.len())
        .filter_map(|i| four_letter(zk.client_addr(i).port(), "mntr"))
        .flat_map(|mntr| {
            mntr.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
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
) -> (Duration, f64, u64) {
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
    let rejected = mntr_sum(zk, "zk_connection_rejected");
    for relay in &relays {
        relay.pause();
    }
    // Longer than the session timeout: the ensemble expires every session.
    tokio::time::sleep(zookeeper.session_timeout + Duration::from_secs(5)).await;
    for relay in &relays {
        relay.resume();
    }
    let healed = Instant::now();
    let all_back = async {
        for (instance, before) in fleet.iter().zip(before) {
            let mut listings = instance.listings.clone();
            let reread =
                tokio::time::timeout(Duration::from_secs(120), listings.wait_for(|n| *n > before))
                    .await;
            assert!(
                reread.is_ok(),
                "an instance did not read its backends again within 120 s"
            );
        }
        healed.elapsed()
    };
    let (took, peak) = peak_rate(zk, all_back).await;
    let rejected = mntr_sum(zk, "zk_connection_rejected") - rejected;
    drop(fleet);
    (took, peak, rejected)
}

/// One light instance: the zxid it caught up with, and how many full
/// listings it read, as they move.
struct Light {
    _discovery: Discovery,
    /// How far each backend's watcher caught up (zxid), by backend index.
    caught_up: watch::Receiver<Vec<i64>>,
    listings: watch::Receiver<u64>,
}

fn light(zookeeper: &ZookeeperConfig, backends: usize) -> Light {
    let (updates, mut received) = mpsc::channel(4096);
    let registry = prometheus::Registry::new();
    let metrics = zkgate_metrics::Metrics::register(&registry).expect("metrics");
    let specs = (0..backends)
        .map(|b| WatchSpec {
            backend: format!("b{b}").into(),
            config: DiscoveryConfig {
                path: path(b),
                format: MemberFormat::Zkgate,
                endpoint: None,
                on_empty: OnEmpty::KeepLast,
                protect: None,
            },
        })
        .collect();
    let discovery = Discovery::start(zookeeper.clone(), specs, updates, metrics);
    let (tell, caught_up) = watch::channel(vec![0i64; backends]);
    let (count, listings) = watch::channel(0u64);
    tokio::spawn(async move {
        // The member map an instance keeps, without the table build.
        let mut members = std::collections::HashMap::new();
        while let Some(update) = received.recv().await {
            match update.change {
                Change::Reset(listing) => {
                    for l in listing {
                        members.insert((update.backend.clone(), l.name), l.decoded);
                    }
                    count.send_modify(|n| *n += 1);
                }
                Change::Upsert(listed) => {
                    members.insert((update.backend.clone(), listed.name), listed.decoded);
                }
                Change::Remove(name) => {
                    members.remove(&(update.backend.clone(), name));
                }
                Change::CaughtUp(zxid) => {
                    let index: usize = update.backend[1..].parse().expect("b<index>");
                    tell.send_modify(|by| by[index] = by[index].max(zxid));
                }
                Change::Directives(_) => {}
            }
        }
    });
    Light {
        _discovery: discovery,
        caught_up,
        listings,
    }
}

/// How long until each instance caught up with `zxids` (per backend; 0:
/// any), at most `limit`.
async fn until_all(
    fleet: &[Light],
    zxids: &[i64],
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut waits = Vec::with_capacity(fleet.len());
    for instance in fleet {
        let mut caught_up = instance.caught_up.clone();
        let reached = tokio::time::timeout_at(
            (since + limit).into(),
            caught_up.wait_for(|by| by.iter().zip(zxids).all(|(have, want)| have >= want)),
        )
        .await;
        assert!(
            reached.is_ok(),
            "an instance did not catch up within {limit:?}"
        );
        waits.push(since.elapsed());
    }
    waits
}

/// Per backend, `zxid` for backend `b` and 0 (any) for the others.
fn only(backends: usize, b: usize, zxid: i64) -> Vec<i64> {
    (0..backends)
        .map(|i| if i == b { zxid } else { 0 })
        .collect()
}

/// Requests per second at the ensemble, sampled every half second while
/// `done` is pending; the peak.
async fn peak_rate<F: std::future::Future>(zk: &ZooKeeper, done: F) -> (F::Output, f64) {
    let mut done = std::pin::pin!(done);
    let mut last = (packets(zk), Instant::now());
    let mut peak: f64 = 0.0;
    loop {
        tokio::select! {
            out = &mut done => return (out, peak),
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                let now = (packets(zk), Instant::now());
                let rate = (now.0 - last.0) as f64 / now.1.duration_since(last.1).as_secs_f64();
                peak = peak.max(rate);
                last = now;
            }
        }
    }
}

/// The leader killed: how long until every instance read its backend
/// again, and the peak request rate meanwhile. The node is restarted after.
async fn leader_killed(zk: &mut ZooKeeper, fleet: &[Light]) -> (Duration, f64) {
    let leader = (0..zk.len())
        .find(|&i| zk.mode(i).as_deref() == Some("leader"))
        .expect("a leader");
    let before: Vec<u64> = fleet.iter().map(|l| *l.listings.borrow()).collect();
    let killed = Instant::now();
    tokio::task::block_in_place(|| zk.kill(leader));
    let all_resynced = async {
        for (instance, before) in fleet.iter().zip(before) {
            let mut listings = instance.listings.clone();
            listings
                .wait_for(|n| *n > before)
                .await
                .expect("instance alive");
        }
        killed.elapsed()
    };
    let (took, peak) = peak_rate(zk, all_resynced).await;
    tokio::task::block_in_place(|| zk.restart(leader));
    (took, peak)
}

/// The ensemble's read capacity: `readers` sessions reading one child as
/// fast as they can for `seconds`; reads per second.
async fn max_read_rate(connect: &str, readers: usize, seconds: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let connect = connect.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = zookeeper_client::Client::connect(&connect)
                .await
                .expect("connect");
            let mut reads = 0u64;
            while Instant::now() < until {
                client.get_data(&node(0, 1)).await.expect("read");
                reads += 1;
            }
            reads
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("reader");
    }
    total as f64 / seconds as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes = env_list("FLEET_SIZES", &[100, 300, 1000]);
    let member_count = env_number("FLEET_MEMBERS", 10_000);
    let changes = env_number("FLEET_CHANGES", 20);
    let mut zk = ZooKeeper::ensemble();
    let client = zookeeper_client::Client::connect(&zk.connect_string())
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
    println!("| instances | cold start s | requests per instance at start | setData p50 ms | p99 ms | max ms | requests per change | of which reads (less idle pings) ÷ N | idle requests/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let before = packets(&zk);
        let started = Instant::now();
        let fleet: Vec<Light> = (0..n).map(|_| light(&zookeeper, backends)).collect();
        let cold = until_all(&fleet, &listing, started, Duration::from_secs(300)).await;
        let cold = cold.into_iter().max().unwrap_or_default();
        let at_start = packets(&zk) - before;
        // What the sessions cost idle (pings), to tell reads from it.
        let idle_from = (packets(&zk), Instant::now());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_per_second =
            (packets(&zk) - idle_from.0) as f64 / idle_from.1.elapsed().as_secs_f64();
        let mut waits = Vec::new();
        let before = packets(&zk);
        let changes_began = Instant::now();
        for change in 0..changes {
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
            waits.extend(until_all(&fleet, &want, written, Duration::from_secs(60)).await);
        }
        let total = (packets(&zk) - before) as f64;
        let idle = idle_per_second * changes_began.elapsed().as_secs_f64();
        let per_change = total / changes as f64;
        let reads_per_change = (total - idle) / changes as f64;
        waits.sort();
        println!(
            "| {n} | {:.2} | {:.1} | {} | {} | {} | {:.0} | {:.2} | {:.0} |",
            cold.as_secs_f64(),
            at_start as f64 / n as f64,
            ms(percentile(&waits, 0.5)),
            ms(percentile(&waits, 0.99)),
            ms(*waits.last().unwrap()),
            per_change,
            reads_per_change / n as f64,
            idle_per_second
        );
        if n == *sizes.iter().max().unwrap() {
            // A deploy: `FLEET_DEPLOY` member changes spread over 10 s.
            let deploy = env_number("FLEET_DEPLOY", 1000);
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
            let converged = until_all(&fleet, &last, began, Duration::from_secs(120)).await;
            let converged = converged.into_iter().max().unwrap_or_default();
            println!();
            println!("{n} instances, a deploy of {deploy} member changes over 10 s: all converged {:.2} s after it began ({:.2} s after the last write)", converged.as_secs_f64(), converged.as_secs_f64() - 10.0);
            let (took, peak) = leader_killed(&mut zk, &fleet).await;
            println!("{n} instances, the leader killed: all read their backend again within {:.2} s; peak {:.0} requests/s at the ensemble", took.as_secs_f64(), peak);
        }
        drop(fleet);
        // The sessions close; let the ensemble settle before the next size.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let expire = env_number("FLEET_EXPIRE", *sizes.iter().max().unwrap_or(&0));
    if expire > 0 {
        let (took, peak, rejected) =
            all_sessions_expired(&zk, &zookeeper, expire, backends, &listing).await;
        println!("{expire} instances, every session expired by a partition longer than the session timeout, then healed: all read their backends again within {:.2} s of the heal; peak {peak:.0} requests/s at the ensemble; {rejected} connections refused", took.as_secs_f64());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rate = max_read_rate(&zk.connect_string(), 64, 5).await;
    println!("the ensemble's read rate (64 sessions reading one znode as fast as they can): {rate:.0} reads/s");
}
