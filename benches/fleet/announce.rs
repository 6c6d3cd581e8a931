//! A fleet that announces itself (`zookeeper.fleet`): what the
//! announcements' writes cost the ensemble under member churn, against its
//! write capacity measured in the same run, and how fast `zkgate fleet
//! status` and `server set --wait-fleet` answer over the whole fleet.

use std::process::Command;
use std::time::{Duration, Instant};

use zkgate_testkit::ZooKeeper;
use zookeeper_client::{Acls, CreateMode};

use crate::ensemble::mntr_sums;
use crate::light::{announcing, until_all, Light, FLEET};
use crate::{node, path};

/// What the announcing fleet measured.
pub struct Announced {
    pub instances: usize,
    /// Writes per second at the ensemble under the churn, less the churn's own.
    pub announcement_writes: f64,
    pub churn: usize,
    /// The slowest of three `fleet status` runs.
    pub status: Duration,
    /// `server set --wait-fleet`: how long it took, and how long after the
    /// last instance had applied the change it returned.
    pub wait_fleet: Duration,
    pub wait_fleet_after_last: Duration,
}

/// `n` announcing instances; `churn` member changes a second for ten
/// seconds; then `fleet status` and `server set --wait-fleet`.
pub async fn announcing_fleet(
    zk: &ZooKeeper,
    zookeeper: &zkgate_config::ZookeeperConfig,
    client: &zookeeper_client::Client,
    n: usize,
    backends: usize,
    listing: &[i64],
    churn: usize,
) -> Announced {
    let started = Instant::now();
    let fleet: Vec<Light> = (0..n)
        .map(|i| announcing(zookeeper, backends, Some(format!("light-{i}"))))
        .collect();
    until_all(&fleet, listing, started, Duration::from_secs(300)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.list_children(FLEET).await.map_or(0, |c| c.len()) < n {
        assert!(
            Instant::now() < deadline,
            "the fleet did not announce itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the announcements of the cold start settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let [writes_before] = mntr_sums(zk, ["zk_cnt_updatelatency"]);
    let began = Instant::now();
    let changes = churn * 10;
    for change in 0..changes {
        let at = began + Duration::from_secs(10).mul_f64(change as f64 / changes as f64);
        tokio::time::sleep_until(at.into()).await;
        let member = 2 + change % 1000;
        let data = format!(
            r#"{{"address":"10.0.0.2:{}","weight":{}}}"#,
            20_000 + member,
            1 + change % 5
        );
        client
            .set_data(&node(member, backends), data.as_bytes(), None)
            .await
            .expect("set");
    }
    // Reads the counters one announcement interval after the churn, so the
    // writes it caused are all in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let [writes_after] = mntr_sums(zk, ["zk_cnt_updatelatency"]);
    let seconds = began.elapsed().as_secs_f64();
    // `zk_cnt_updatelatency` counts on every node a client is connected to
    // for the writes its own clients send: each write once.
    let announcement_writes =
        (writes_after - writes_before) as f64 / seconds - changes as f64 / seconds;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let connect = zk.connect_string();
    let mut status = Duration::ZERO;
    for _ in 0..3 {
        let began = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_zkgate"))
            .args(["fleet", "status", "--zk", &connect, "--path", FLEET])
            .output()
            .expect("zkgate fleet status");
        status = status.max(began.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("fleet agrees: {n} instances")),
            "{text}"
        );
    }

    let (wait_fleet, wait_fleet_after_last) = wait_fleet(&fleet, &connect, backends).await;
    Announced {
        instances: n,
        announcement_writes,
        churn,
        status,
        wait_fleet,
        wait_fleet_after_last,
    }
}

/// `server set --wait-fleet` on member 1 (address `10.0.0.1:20001`): how
/// long it took, and how long after the last instance applied the write.
async fn wait_fleet(fleet: &[Light], connect: &str, backends: usize) -> (Duration, Duration) {
    let before: i64 = fleet
        .iter()
        .map(|l| l.caught_up.borrow()[1 % backends])
        .max()
        .unwrap_or(0);
    let began = Instant::now();
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkgate"));
    cli.args([
        "server",
        "set",
        "--zk",
        connect,
        "--path",
        &path(1 % backends),
    ])
    .args([
        "10.0.0.1:20001",
        "--weight",
        "7",
        "--wait-fleet",
        FLEET,
        "--timeout",
        "60s",
    ])
    .stdout(std::process::Stdio::null());
    let cli = cli.status().await.expect("zkgate server set");
    let returned = Instant::now();
    assert!(cli.success(), "--wait-fleet failed");
    let mut want = vec![0i64; backends];
    want[1 % backends] = before + 1;
    until_all(fleet, &want, began, Duration::from_secs(60)).await;
    // No other change came since: each instance's last catching up is this one.
    let last = fleet
        .iter()
        .map(|l| *l.caught_up_at.borrow())
        .max()
        .unwrap_or(began);
    let late: Vec<(usize, i64)> = fleet
        .iter()
        .enumerate()
        .filter(|(_, l)| *l.caught_up_at.borrow() > returned)
        .map(|(i, l)| (i, l.caught_up.borrow()[1 % backends]))
        .collect();
    assert!(
        late.is_empty(),
        "--wait-fleet returned before these instances (index, zxid) had applied the change (zxid > {before}): {late:?}"
    );
    (returned - began, returned - last)
}

/// The ensemble's write capacity: `writers` sessions each rewriting a
/// znode of its own as fast as they can for `seconds`; writes per second.
pub async fn max_write_rate(connect: &str, writers: usize, seconds: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let connect = connect.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = zookeeper_client::Client::connect(&connect)
                .await
                .expect("connect");
            let node = format!("/bench-writes/w{writer}");
            let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
            client.mkdir(&node, &open).await.expect("mkdir");
            let mut writes = 0u64;
            while Instant::now() < until {
                client.set_data(&node, b"x", None).await.expect("write");
                writes += 1;
            }
            writes
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("writer");
    }
    total as f64 / seconds as f64
}
