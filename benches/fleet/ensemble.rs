//! What the ensemble serves and what it costs: its `mntr` counters, its
//! processes' CPU time, and its own maximum read rates, measured by plain
//! readers in the same run.

use std::time::{Duration, Instant};

use zkgate_testkit::zookeeper::four_letter;
use zkgate_testkit::ZooKeeper;

/// `mntr` counters summed over the ensemble's nodes, one fetch per node.
pub fn mntr_sums<const N: usize>(zk: &ZooKeeper, keys: [&str; N]) -> [u64; N] {
    let mut total = [0u64; N];
    for mntr in (0..zk.len()).filter_map(|i| four_letter(zk.client_addr(i).port(), "mntr")) {
        for (total, value) in total.iter_mut().zip(sums(&mntr, keys)) {
            *total += value;
        }
    }
    total
}

/// The values of `keys` in one node's `mntr` answer.
fn sums<const N: usize>(mntr: &str, keys: [&str; N]) -> [u64; N] {
    let mut values = [0u64; N];
    for line in mntr.lines() {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            values[i] += value.parse::<u64>().unwrap_or(0);
        }
    }
    values
}

/// What the ensemble has served so far, node by node.
#[derive(Clone)]
pub struct Served {
    /// Every request received (`zk_packets_received`): connections,
    /// session and watch set-up, pings, reads, writes.
    pub requests: u64,
    /// Requests without a transaction (`zk_cnt_readlatency`): reads (a
    /// multi-read counts once), watch registrations and pings.
    pub reads: u64,
    /// Each node's `[requests, reads]` and when it told them; `None` while
    /// it does not answer (a leader election, or too busy to).
    nodes: Vec<Option<([u64; 2], Instant)>>,
}

pub fn served(zk: &ZooKeeper) -> Served {
    let keys = ["zk_packets_received", "zk_cnt_readlatency"];
    let nodes: Vec<Option<([u64; 2], Instant)>> = (0..zk.len())
        .map(|i| {
            let mntr = four_letter(zk.client_addr(i).port(), "mntr")?;
            let values = sums(&mntr, keys);
            mntr.contains(keys[1]).then(|| (values, Instant::now()))
        })
        .collect();
    Served {
        requests: nodes.iter().flatten().map(|(n, _)| n[0]).sum(),
        reads: nodes.iter().flatten().map(|(n, _)| n[1]).sum(),
        nodes,
    }
}

impl Served {
    /// Requests and reads per second from `earlier` to this, node by node
    /// over the time between its two answers: a node that did not answer
    /// in between (its counters outlive a change of role; pass the samples
    /// through [`Served::carry`]) has what it served meanwhile spread over
    /// that time, not counted in the last interval alone.
    pub fn rates_since(&self, earlier: &Served) -> Rates {
        let rate = |k: usize| -> f64 {
            self.nodes
                .iter()
                .zip(&earlier.nodes)
                .filter_map(|(now, then)| {
                    let ((now, at), (then, since)) = (now.as_ref()?, then.as_ref()?);
                    let seconds = at.duration_since(*since).as_secs_f64();
                    (seconds > 0.0).then(|| now[k].saturating_sub(then[k]) as f64 / seconds)
                })
                .sum()
        };
        Rates {
            requests: rate(0),
            reads: rate(1),
        }
    }

    /// This sample, with the last known counters of the nodes that did not
    /// answer taken from `earlier`.
    pub fn carry(mut self, earlier: &Served) -> Served {
        for (now, then) in self.nodes.iter_mut().zip(&earlier.nodes) {
            if now.is_none() {
                *now = *then;
            }
        }
        self
    }
}

/// Per second.
#[derive(Clone, Copy, Default)]
pub struct Rates {
    pub requests: f64,
    pub reads: f64,
}

/// The rates sampled every half second while `done` is pending: their
/// peaks, and the reads per second of each half second.
pub async fn peak_rates<F: std::future::Future>(
    zk: &ZooKeeper,
    done: F,
) -> (F::Output, Rates, Vec<f64>) {
    let mut done = std::pin::pin!(done);
    let mut last = served(zk);
    let mut peak = Rates::default();
    let mut reads = Vec::new();
    loop {
        tokio::select! {
            out = &mut done => return (out, peak, reads),
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                let now = served(zk).carry(&last);
                let rates = now.rates_since(&last);
                peak.requests = peak.requests.max(rates.requests);
                peak.reads = peak.reads.max(rates.reads);
                reads.push(rates.reads);
                last = now;
            }
        }
    }
}

/// Reads per second, half a second apart, as one line.
pub fn timeline(reads: &[f64]) -> String {
    let rates: Vec<String> = reads.iter().map(|r| format!("{r:.0}")).collect();
    rates.join(" ")
}

/// CPU seconds the ensemble's processes have used so far.
pub fn cpu_seconds(zk: &ZooKeeper) -> f64 {
    node_cpu(zk).into_iter().flatten().sum()
}

/// Each node's CPU seconds so far (`None`: not running).
pub fn node_cpu(zk: &ZooKeeper) -> Vec<Option<f64>> {
    (0..zk.len())
        .map(|i| zk.pid(i).map(|pid| process_cpu_seconds(&pid.to_string())))
        .collect()
}

/// The CPU seconds the nodes running both then and now used since `then`
/// (a node killed or started in between counts for nothing).
pub fn node_cpu_since(zk: &ZooKeeper, then: &[Option<f64>]) -> f64 {
    node_cpu(zk)
        .iter()
        .zip(then)
        .filter_map(|(now, then)| Some(now.as_ref()? - then.as_ref()?))
        .sum()
}

/// CPU seconds this process has used so far.
pub fn own_cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

fn process_cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command's closing parenthesis; user and system
    // time are the 12th and 13th of them.
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|ticks| ticks.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A plain reader's result: znodes read per second, requests per second,
/// and the ensemble's CPU seconds per second meanwhile.
pub struct ReadRate {
    pub znodes: f64,
    pub requests: f64,
    pub cpu: f64,
}

/// The ensemble's read capacity: `readers` sessions reading as fast as
/// they can for `seconds`, each request a multi-read of `batch` znodes
/// among `members` (the way an instance reads a backend), or a plain read
/// of one znode if `batch` is 1.
pub async fn max_read_rate(
    zk: &ZooKeeper,
    readers: usize,
    seconds: u64,
    batch: usize,
    members: &[String],
) -> ReadRate {
    let connect = zk.connect_string();
    let cpu_before = cpu_seconds(zk);
    let began = Instant::now();
    let until = began + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let connect = connect.clone();
        let members = members.to_vec();
        tasks.push(tokio::spawn(async move {
            let client = zookeeper_client::Client::connect(&connect)
                .await
                .expect("connect");
            let mut requests = 0u64;
            let mut at = reader * batch;
            while Instant::now() < until {
                if batch == 1 {
                    client.get_data(&members[0]).await.expect("read");
                } else {
                    let mut multi = client.new_multi_reader();
                    for i in 0..batch {
                        multi
                            .add_get_data(&members[(at + i) % members.len()])
                            .expect("add");
                    }
                    multi.commit().await.expect("multi-read");
                    at += batch;
                }
                requests += 1;
            }
            requests
        }));
    }
    let mut requests = 0;
    for task in tasks {
        requests += task.await.expect("reader");
    }
    let seconds = began.elapsed().as_secs_f64();
    ReadRate {
        znodes: (requests * batch as u64) as f64 / seconds,
        requests: requests as f64 / seconds,
        cpu: (cpu_seconds(zk) - cpu_before) / seconds,
    }
}
