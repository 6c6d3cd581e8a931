//! When this process is ready, and when one that took its sockets from a
//! running process starts accepting on them.

use tracing::{info, warn};
use zkgate_admin::{DiscoveryFacts, ZooKeeperFacts};

use crate::{announce_to_systemd, ControlPlane};

impl ControlPlane {
    /// Starts accepting once ready, or once the process whose sockets this
    /// one took is gone (nobody else accepts on them then); and once ready,
    /// lets that process finish.
    pub(crate) async fn end_hold_if_due(&mut self) {
        let Some(pid) = self.holding_for else { return };
        if self.warming.is_some() {
            // Its table goes into service first; checked again shortly.
            return;
        }
        let gone = rustix::process::Pid::from_raw(pid as i32).is_none_or(|pid| {
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        });
        if !self.ready && !gone {
            return;
        }
        if self.ready {
            info!("ready: accepting");
        } else {
            warn!(pid, "the previous process is gone: accepting before ready");
        }
        self.holding_for = None;
        self.builder.set_accepting(true);
        let config = self.config.clone();
        let table = self.build(&config).await;
        self.publish(table);
        // Only now the service's main process: had this one failed before,
        // systemd would still follow the previous one, which serves.
        announce_to_systemd();
        if self.ready {
            self.succession.ready();
        }
    }

    /// Ready once listeners are bound and every ZooKeeper-backed backend has
    /// synced at least once; also refreshes what the status page shows of
    /// ZooKeeper and discovery.
    pub(crate) fn update_readiness(&mut self) {
        // A backend a reload is warming up for is not served yet.
        let warming = |name: &str| self.warming.as_ref().is_some_and(|w| w.awaits(name));
        let mut unsynced: Vec<String> = self
            .members
            .iter()
            .filter(|(name, m)| !m.synced && !warming(name))
            .map(|(name, _)| format!("backend {name} has not synced from ZooKeeper yet"))
            .collect();
        unsynced.sort();
        let zookeeper = self.config.zookeeper.as_ref().map(|zk| ZooKeeperFacts {
            connect: zk.connect.clone(),
            connected: false,
            session_expirations: 0,
        });
        let discovery = self
            .config
            .backends
            .iter()
            .filter_map(|backend| {
                let watch = backend.discovery.as_ref()?;
                let members = self.members.get(&backend.name)?;
                let facts = DiscoveryFacts {
                    path: watch.path.clone(),
                    format: watch.format.as_str(),
                    synced: members.synced,
                    members: self
                        .metrics
                        .discovery_members
                        .with_label_values(&[&backend.name])
                        .get() as usize,
                    invalid_members: members.invalid(),
                    keeping_last: members.keeping_last(),
                };
                Some((backend.name.clone(), facts))
            })
            .collect();
        self.ready = unsynced.is_empty();
        if self.ready && self.holding_for.is_none() {
            // Everything the previous process served, this one serves too.
            self.succession.ready();
        }
        self.report.update(|facts| {
            facts.not_ready = unsynced;
            facts.zookeeper = zookeeper;
            facts.discovery = discovery;
        });
    }
}
