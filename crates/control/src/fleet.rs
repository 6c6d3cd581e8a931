//! What this instance tells its fleet (`zookeeper.fleet`): its name, zone,
//! version, start time, configuration generation and, per ZooKeeper-backed
//! backend, the path it watches and the `applied_zxid` live in its table.
//! `zkgate fleet status` and `--wait-fleet` read these.

use std::collections::BTreeMap;

use serde::Serialize;
use zkgate_config::Config;
use zkgate_discovery::announce::Announcement;

use crate::members::Members;

/// An instance's announcement, as its znode holds it (JSON).
#[derive(Serialize)]
struct Instance<'a> {
    name: &'a str,
    zone: Option<&'a str>,
    version: &'static str,
    /// Seconds since the Unix epoch.
    started: u64,
    config_generation: u64,
    backends: BTreeMap<&'a str, Watched<'a>>,
}

#[derive(Serialize)]
struct Watched<'a> {
    path: &'a str,
    applied_zxid: i64,
}

/// The announcement for `config` with `members` applied, if the fleet is on.
pub(crate) fn announcement(
    config: &Config,
    members: &Members,
    config_generation: u64,
    started: u64,
) -> Option<Announcement> {
    let fleet = config.zookeeper.as_ref()?.fleet.as_ref()?;
    let backends = config
        .backends
        .iter()
        .filter_map(|backend| {
            let watch = backend.discovery.as_ref()?;
            let applied_zxid = members.get(&backend.name).map_or(0, |m| m.applied_zxid());
            let watched = Watched {
                path: &watch.path,
                applied_zxid,
            };
            Some((backend.name.as_str(), watched))
        })
        .collect();
    let instance = Instance {
        name: &fleet.name,
        zone: config.zone.as_deref(),
        version: env!("CARGO_PKG_VERSION"),
        started,
        config_generation,
        backends,
    };
    Some(Announcement {
        path: fleet.path.clone(),
        name: fleet.name.clone(),
        data: serde_json::to_vec(&instance).expect("plain data serializes"),
    })
}
