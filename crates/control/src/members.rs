//! What ZooKeeper says each backend's members are, as the control plane
//! keeps it between updates, and the set it decides to put in service.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tracing::{info, warn};
use zkgate_config::{OnEmpty, ServerConfig};
use zkgate_discovery::{Change, Listed};

/// A member as last read, with the zxid of the write it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The server it names.
    pub server: ServerConfig,
    /// The ZooKeeper transaction that last wrote its znode.
    pub zxid: i64,
}

/// The membership of one ZooKeeper-backed backend.
#[derive(Debug, Default)]
pub struct BackendMembers {
    members: BTreeMap<String, Member>,
    invalid: BTreeSet<String>,
    /// A full listing has been received at least once.
    pub synced: bool,
    /// The members are the last-known ones from `state_dir`, served
    /// until ZooKeeper's first listing replaces them.
    stale: bool,
    last_non_empty: Vec<ServerConfig>,
    keeping_last: bool,
}

impl BackendMembers {
    /// Applies one change from the backend's watcher. The set as it was just
    /// before a change emptied it is remembered for `on_empty: keep_last`
    /// (copied only then, not at every change).
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Reset(listing) => {
                let before = std::mem::take(&mut self.members);
                self.invalid.clear();
                for listed in listing {
                    self.put(listed);
                }
                if self.members.is_empty() && !before.is_empty() {
                    self.last_non_empty = before.into_values().map(|m| m.server).collect();
                }
                self.synced = true;
                self.stale = false;
            }
            Change::Upsert(listed) => self.put(listed),
            Change::Remove(name) => {
                self.invalid.remove(&name);
                self.remove(&name);
            }
        }
    }

    /// Serves `members`, the last known from `state_dir`, until the first
    /// listing from ZooKeeper replaces them; only before that listing.
    pub fn serve_last_known(&mut self, members: BTreeMap<String, Member>) {
        if !self.synced {
            self.members = members;
            self.stale = true;
        }
    }

    /// Whether the members served are the last-known ones from `state_dir`.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The members as last read, by child name.
    pub fn current(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    fn put(&mut self, listed: Listed) {
        match listed.decoded {
            Ok(server) => {
                self.invalid.remove(&listed.name);
                let member = Member {
                    server,
                    zxid: listed.zxid,
                };
                self.members.insert(listed.name, member);
            }
            // A member whose data no longer parses is skipped, not kept stale.
            Err(_) => {
                self.remove(&listed.name);
                self.invalid.insert(listed.name);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(removed) = self.members.remove(name) {
            if self.members.is_empty() {
                self.last_non_empty = vec![removed.server];
            }
        }
    }

    /// Children whose data does not parse.
    pub fn invalid(&self) -> usize {
        self.invalid.len()
    }

    /// Whether the last non-empty set is being kept for an empty listing.
    pub fn keeping_last(&self) -> bool {
        self.keeping_last
    }

    /// The members to put in service, applying `on_empty`.
    pub fn in_service(&mut self, backend: &str, on_empty: OnEmpty) -> Vec<ServerConfig> {
        let current: Vec<ServerConfig> = self.members.values().map(|m| m.server.clone()).collect();
        let keep =
            current.is_empty() && on_empty == OnEmpty::KeepLast && !self.last_non_empty.is_empty();
        if keep != self.keeping_last {
            if keep {
                warn!(
                    backend,
                    kept = self.last_non_empty.len(),
                    "ZooKeeper lists no members: keeping the last ones in service (on_empty: keep_last)"
                );
            } else {
                info!(
                    backend,
                    members = current.len(),
                    "ZooKeeper lists members again"
                );
            }
            self.keeping_last = keep;
        }
        if keep {
            return self.last_non_empty.clone();
        }
        current
    }
}

/// Every ZooKeeper-backed backend's membership, by backend name.
pub type Members = HashMap<String, BackendMembers>;

#[cfg(test)]
mod tests {
    use super::*;
    use zkgate_config::{AdminState, ServerAddress};

    fn server(address: &str) -> ServerConfig {
        ServerConfig {
            address: ServerAddress::parse(address).unwrap(),
            weight: 1,
            state: AdminState::Ready,
        }
    }

    fn ok(name: &str, address: &str) -> Listed {
        Listed {
            name: name.into(),
            decoded: Ok(server(address)),
            zxid: 1,
        }
    }

    fn bad(name: &str) -> Listed {
        Listed {
            name: name.into(),
            decoded: Err("bad".into()),
            zxid: 1,
        }
    }

    fn ports(servers: &[ServerConfig]) -> Vec<u16> {
        servers.iter().map(|s| s.address.port).collect()
    }

    #[test]
    fn reset_replaces_and_upsert_remove_edit() {
        let mut members = BackendMembers::default();
        assert!(!members.synced);
        members.apply(Change::Reset(vec![
            ok("a", "10.0.0.1:1"),
            ok("b", "10.0.0.1:2"),
        ]));
        assert!(members.synced);
        members.apply(Change::Upsert(ok("c", "10.0.0.1:3")));
        members.apply(Change::Remove("a".into()));
        assert_eq!(ports(&members.in_service("web", OnEmpty::Apply)), [2, 3]);
        members.apply(Change::Reset(vec![ok("z", "10.0.0.1:9")]));
        assert_eq!(ports(&members.in_service("web", OnEmpty::Apply)), [9]);
    }

    #[test]
    fn a_member_that_stops_parsing_is_skipped_and_counted() {
        let mut members = BackendMembers::default();
        members.apply(Change::Reset(vec![ok("a", "10.0.0.1:1"), bad("b")]));
        assert_eq!(members.invalid(), 1);
        members.apply(Change::Upsert(bad("a")));
        assert_eq!(members.invalid(), 2);
        assert!(members.in_service("web", OnEmpty::Apply).is_empty());
        members.apply(Change::Remove("b".into()));
        assert_eq!(members.invalid(), 1);
    }

    #[test]
    fn keep_last_holds_the_last_non_empty_set_until_members_return() {
        let mut members = BackendMembers::default();
        members.apply(Change::Reset(vec![ok("a", "10.0.0.1:1")]));
        assert_eq!(ports(&members.in_service("web", OnEmpty::KeepLast)), [1]);
        members.apply(Change::Remove("a".into()));
        assert_eq!(ports(&members.in_service("web", OnEmpty::KeepLast)), [1]);
        assert!(members.keeping_last());
        members.apply(Change::Upsert(ok("b", "10.0.0.1:2")));
        assert_eq!(ports(&members.in_service("web", OnEmpty::KeepLast)), [2]);
        assert!(!members.keeping_last());
    }

    #[test]
    fn keep_last_remembers_the_set_just_before_it_emptied() {
        let mut members = BackendMembers::default();
        members.apply(Change::Reset(vec![
            ok("a", "10.0.0.1:1"),
            ok("b", "10.0.0.1:2"),
        ]));
        // Removed one by one (or an empty listing after a reconnect): the set
        // as it was before the last removal stays in service.
        members.apply(Change::Remove("a".into()));
        members.apply(Change::Upsert(bad("b")));
        assert_eq!(ports(&members.in_service("web", OnEmpty::KeepLast)), [2]);
        members.apply(Change::Reset(vec![
            ok("c", "10.0.0.1:3"),
            ok("d", "10.0.0.1:4"),
        ]));
        members.apply(Change::Reset(Vec::new()));
        assert_eq!(ports(&members.in_service("web", OnEmpty::KeepLast)), [3, 4]);
    }

    #[test]
    fn apply_obeys_an_empty_listing() {
        let mut members = BackendMembers::default();
        members.apply(Change::Reset(vec![ok("a", "10.0.0.1:1")]));
        members.in_service("web", OnEmpty::Apply);
        members.apply(Change::Reset(Vec::new()));
        assert!(members.in_service("web", OnEmpty::Apply).is_empty());
    }
}
