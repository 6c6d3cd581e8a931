//! `zkgate fleet status`, and the `--wait-fleet` of `server add|set|remove`:
//! what the instances of a fleet announce (`zookeeper.fleet`), and whether
//! a change has reached every one of them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use zookeeper_client::{Client, Error, MultiReadResult};

/// Announcements read per multi-read request.
const READ_BATCH: usize = 256;
/// How often `--wait-fleet` reads the fleet again.
const POLL: Duration = Duration::from_millis(100);

/// One instance's announcement (see `crates/control/src/fleet.rs`).
#[derive(Debug, Deserialize, Serialize)]
pub struct Instance {
    pub name: String,
    pub zone: Option<String>,
    pub version: String,
    pub started: u64,
    pub config_generation: u64,
    pub backends: BTreeMap<String, Watched>,
    /// Seconds since the announcement was last written (from its znode).
    #[serde(default)]
    pub age_seconds: u64,
}

/// One backend an instance follows.
#[derive(Debug, Deserialize, Serialize)]
pub struct Watched {
    pub path: String,
    pub applied_zxid: i64,
}

/// The instances live under `fleet` (an announcement that does not parse
/// is listed by name with why).
pub async fn read(client: &Client, fleet: &str) -> Result<Vec<Result<Instance, (String, String)>>> {
    let mut names = match client.list_children(fleet).await {
        Ok(names) => names,
        Err(Error::NoNode) => {
            anyhow::bail!("{fleet} does not exist: no instance announced itself there")
        }
        Err(err) => return Err(err.into()),
    };
    names.sort();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut instances = Vec::with_capacity(names.len());
    // In multi-reads: a thousand instances are four requests, not a
    // thousand (`--wait-fleet` reads them ten times a second).
    for batch in names.chunks(READ_BATCH) {
        let mut reader = client.new_multi_reader();
        for name in batch {
            reader.add_get_data(&format!("{fleet}/{name}"))?;
        }
        for (name, result) in batch.iter().zip(reader.commit().await?) {
            let (data, stat) = match result {
                MultiReadResult::Data { data, stat } => (data, stat),
                // Gone since the listing: no longer live.
                MultiReadResult::Error { err: Error::NoNode } => continue,
                MultiReadResult::Error { err } => return Err(err.into()),
                _ => continue,
            };
            let parsed = serde_json::from_slice::<Instance>(&data)
                .map(|mut instance| {
                    instance.age_seconds = ((now_ms - stat.mtime).max(0) / 1000) as u64;
                    instance
                })
                .map_err(|err| (name.clone(), format!("not an announcement: {err}")));
            instances.push(parsed);
        }
    }
    Ok(instances)
}

/// `fleet status`: one line per instance and whether the fleet agrees.
pub async fn status(client: &Client, fleet: &str, json: bool) -> Result<()> {
    let instances = read(client, fleet).await?;
    if json {
        let ok: Vec<&Instance> = instances.iter().filter_map(|i| i.as_ref().ok()).collect();
        println!("{}", serde_json::to_string_pretty(&ok)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<12} {:<10} {:>6}  BACKENDS (applied zxid, age)",
        "NAME", "ZONE", "VERSION", "CONFIG"
    );
    for instance in &instances {
        match instance {
            Ok(i) => {
                let backends: Vec<String> = i
                    .backends
                    .iter()
                    .map(|(name, w)| format!("{name}={:#x}", w.applied_zxid))
                    .collect();
                println!(
                    "{:<20} {:<12} {:<10} {:>6}  {} ({}s ago)",
                    i.name,
                    i.zone.as_deref().unwrap_or("-"),
                    i.version,
                    i.config_generation,
                    backends.join(" "),
                    i.age_seconds
                );
            }
            Err((name, why)) => println!("{name:<20} ({why})"),
        }
    }
    println!("{}", agreement(&instances));
    Ok(())
}

/// The last line of `fleet status`: whether every instance has applied the
/// same zxid for each path it watches, and runs the same configuration.
fn agreement(instances: &[Result<Instance, (String, String)>]) -> String {
    let live: Vec<&Instance> = instances.iter().filter_map(|i| i.as_ref().ok()).collect();
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for instance in &live {
        for watched in instance.backends.values() {
            let zxid = newest.entry(&watched.path).or_insert(0);
            *zxid = (*zxid).max(watched.applied_zxid);
        }
    }
    let mut behind = Vec::new();
    for instance in &live {
        for watched in instance.backends.values() {
            if watched.applied_zxid < newest[watched.path.as_str()] {
                behind.push(format!("{} is behind on {}", instance.name, watched.path));
            }
        }
    }
    let generations: std::collections::BTreeSet<u64> =
        live.iter().map(|i| i.config_generation).collect();
    if generations.len() > 1 {
        behind.push(format!("configuration generations differ: {generations:?}"));
    }
    match (live.len(), behind.is_empty()) {
        (0, _) => "no instance announced".to_owned(),
        (n, true) => format!(
            "fleet agrees: {n} instance{}",
            if n == 1 { "" } else { "s" }
        ),
        (_, false) => format!("fleet disagrees: {}", behind.join("; ")),
    }
}

/// The instances under `fleet` whose backends watch `path` and have not
/// applied `zxid` yet; an empty list once all have (or none watches it).
async fn laggards(client: &Client, fleet: &str, path: &str, zxid: i64) -> Result<Vec<String>> {
    let mut behind = Vec::new();
    for instance in read(client, fleet).await?.into_iter().flatten() {
        let lagging = instance
            .backends
            .values()
            .any(|w| w.path == path && w.applied_zxid < zxid);
        if lagging {
            behind.push(instance.name);
        }
    }
    Ok(behind)
}

/// Why `--wait-fleet` gave up: the instances that had not applied the write.
#[derive(Debug, thiserror::Error)]
#[error("not applied within {timeout:?} by: {}", laggards.join(", "))]
pub struct NotApplied {
    pub timeout: Duration,
    pub laggards: Vec<String>,
}

/// Waits until every instance under `fleet` watching `path` has applied
/// `zxid`, or `timeout` passes (then [`NotApplied`], exit code 3).
pub async fn wait(
    client: &Client,
    fleet: &str,
    path: &str,
    zxid: i64,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let behind = laggards(client, fleet, path, zxid).await?;
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotApplied {
                timeout,
                laggards: behind,
            }
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The zxid a write under `path` reached: the newest change to `node`'s
/// data or to `path`'s children (a later one is as good: waiting for it
/// includes the write).
pub async fn zxid_of_write(client: &Client, path: &str, node: Option<&str>) -> Result<i64> {
    let mut zxid = client.check_stat(path).await?.map_or(0, |s| s.pzxid);
    if let Some(node) = node {
        zxid = zxid.max(client.check_stat(node).await?.map_or(0, |s| s.mzxid));
    }
    Ok(zxid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, zxid: i64, generation: u64) -> Result<Instance, (String, String)> {
        let watched = Watched {
            path: "/services/web".into(),
            applied_zxid: zxid,
        };
        Ok(Instance {
            name: name.into(),
            zone: None,
            version: "0".into(),
            started: 0,
            config_generation: generation,
            backends: BTreeMap::from([("web".to_owned(), watched)]),
            age_seconds: 0,
        })
    }

    #[test]
    fn the_fleet_agrees_when_every_instance_applied_the_newest_zxid() {
        assert_eq!(
            agreement(&[instance("a", 5, 1), instance("b", 5, 1)]),
            "fleet agrees: 2 instances"
        );
        let line = agreement(&[instance("a", 5, 1), instance("b", 4, 1)]);
        assert_eq!(line, "fleet disagrees: b is behind on /services/web");
        assert!(
            agreement(&[instance("a", 5, 1), instance("b", 5, 2)]).contains("generations differ")
        );
        assert_eq!(agreement(&[]), "no instance announced");
    }
}
