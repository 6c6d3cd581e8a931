//! What ZooKeeper says each backend's members are, as the control plane
//! keeps it between updates, and the set it decides to put in service.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use tracing::{info, warn};
use zkgate_config::{OnEmpty, Protect, ServerConfig};
use zkgate_discovery::{Change, Listed};

pub use crate::member::Member;
use crate::protect::{Guard, Held, Removal};

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
    /// Removals held by `protect`.
    guard: Guard,
    /// Every change up to this zxid has been applied (see `docs/znodes.md`).
    caught_up: i64,
}

impl BackendMembers {
    /// Applies one change from `backend`'s watcher, holding removals
    /// `protect` does not admit. The set as it was just before a change
    /// emptied it is remembered for `on_empty: keep_last` (copied only
    /// then, not at every change).
    pub fn apply(&mut self, backend: &str, change: Change, protect: Option<&Protect>) {
        let now = Instant::now();
        match change {
            Change::CaughtUp(zxid) => self.caught_up = self.caught_up.max(zxid),
            Change::Directives(directives) => {
                if self.guard.directives(&directives) {
                    self.release_all(backend, "`zkgate server release`");
                }
            }
            Change::Reset(listing) => {
                // Counted only where `protect` will ask (a walk of every member).
                let ready = protect.map(|_| self.ready_count());
                let before = std::mem::take(&mut self.members);
                self.invalid.clear();
                for listed in listing {
                    self.put(listed);
                }
                // Last-known members from `state_dir` were never ZooKeeper's
                // word in this process: replacing them removes nothing.
                let judged = if self.stale {
                    BTreeMap::new()
                } else {
                    before.clone()
                };
                for (name, old) in &judged {
                    self.judge(backend, name, Some(old), ready, protect, now);
                }
                let held: Vec<String> = self.guard.held().keys().cloned().collect();
                for name in held.iter().filter(|n| !before.contains_key(*n)) {
                    self.judge(backend, name, None, ready, protect, now);
                }
                if self.members.is_empty() && !before.is_empty() {
                    self.last_non_empty = before.into_values().map(|m| m.server).collect();
                }
                self.synced = true;
                self.stale = false;
                self.guard.sync_done();
            }
            Change::Upsert(listed) => {
                let name = listed.name.clone();
                let old = self.members.get(&name).cloned();
                self.put(listed);
                self.judge(backend, &name, old.as_ref(), None, protect, now);
            }
            Change::Remove(name) => {
                let old = self.members.get(&name).cloned();
                self.invalid.remove(&name);
                self.remove(&name);
                self.judge(backend, &name, old.as_ref(), None, protect, now);
            }
        }
    }

    /// After ZooKeeper's word on `name` was applied (`old`: what it was
    /// before): a held member that is ready again comes back; one still
    /// gone stays held with ZooKeeper's word noted; a ready member that
    /// went is held if `protect` does not admit its removal. `ready` is
    /// how many members took traffic before the change, as the caller
    /// counted them; `None` for a change to `name` alone (then counted
    /// from the present members and `name`, and only if `protect` asks:
    /// it walks every member) or when there is no `protect` to ask.
    fn judge(
        &mut self,
        backend: &str,
        name: &str,
        old: Option<&Member>,
        ready: Option<usize>,
        protect: Option<&Protect>,
        now: Instant,
    ) {
        let current = self.members.get(name);
        if self.guard.held().contains_key(name) {
            if current.is_some_and(Member::ready) {
                self.guard.release(name);
                info!(backend, member = name, "a held member is back in ZooKeeper");
            } else {
                let now_said = self.members.remove(name);
                self.guard.update(name, now_said);
            }
            return;
        }
        let why = match (old, current) {
            (Some(old), None) if old.ready() && self.invalid.contains(name) => Removal::Unreadable,
            (Some(old), None) if old.ready() => Removal::Deleted,
            (Some(old), Some(new)) if old.ready() && !new.ready() => Removal::NotReady,
            _ => return,
        };
        let (members, held) = (&self.members, self.guard.held().len());
        let ready = || ready.unwrap_or_else(|| ready_in(members, held) + 1);
        if self.guard.admit(protect, name, ready, now) {
            return;
        }
        let old = old.expect("a removal had a member").clone();
        let now_said = self.members.remove(name);
        warn!(
            backend,
            member = name,
            address = %old.server.address,
            reason = why.as_str(),
            "holding a member: more removals than `protect` allows within its window; it keeps serving while healthy"
        );
        self.guard.hold(name.to_owned(), old, now_said, why);
    }

    /// Members that take traffic, the held ones included.
    fn ready_count(&self) -> usize {
        ready_in(&self.members, self.guard.held().len())
    }

    /// Lets every held member go (`why`, for the log).
    pub fn release_all(&mut self, backend: &str, why: &str) -> usize {
        let released = self.guard.release_all();
        for (name, held) in &released {
            if let Some(now) = &held.now {
                self.members.insert(name.clone(), now.clone());
            }
        }
        if self.members.is_empty() && !released.is_empty() {
            // What served last, for `on_empty: keep_last`.
            self.last_non_empty = released.values().map(|h| h.member.server.clone()).collect();
        }
        if !released.is_empty() {
            info!(
                backend,
                members = released.len(),
                "released the held members: {why}"
            );
        }
        released.len()
    }

    /// Lets the held member at `address` go: a health check failed it.
    pub fn release_failing(&mut self, backend: &str, address: SocketAddr) -> bool {
        let name = self.guard.held().iter().find_map(|(name, held)| {
            // Members name servers by IP (hostnames resolve only in the
            // table): a held hostname member waits for the other releases.
            (held.member.server.address.literal() == Some(address)).then(|| name.clone())
        });
        let Some(name) = name else {
            return false;
        };
        if let Some(held) = self.guard.release(&name) {
            if let Some(now) = held.now {
                self.members.insert(name.clone(), now);
            }
        }
        info!(backend, member = %name, %address, "released a held member: its health check fails");
        true
    }

    /// When the held members go if ZooKeeper is connected then.
    pub fn release_at(&self, protect: Option<&Protect>) -> Option<Instant> {
        self.guard.release_at(protect)
    }

    /// The window passed while ZooKeeper was away: it starts again.
    pub fn postpone_release(&mut self) {
        self.guard.postpone(Instant::now());
    }

    /// The held members.
    pub fn held(&self) -> &BTreeMap<String, Held> {
        self.guard.held()
    }

    /// Serves `members`, the last known from `state_dir`, until the first
    /// listing from ZooKeeper replaces them; only before that listing.
    pub fn serve_last_known(&mut self, members: BTreeMap<String, Member>) {
        if !self.synced {
            self.members = members;
            self.stale = true;
        }
    }

    /// The newest zxid whose effect on this backend's members has been
    /// applied: once a table is built from them, live.
    pub fn applied_zxid(&self) -> i64 {
        self.caught_up
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

    /// Applies `on_empty` to the members now listed: whether the last
    /// non-empty set is kept in service (logged when that turns). Call
    /// before [`BackendMembers::in_service`].
    pub fn settle(&mut self, backend: &str, on_empty: OnEmpty) {
        let listed = self.members.len() + self.guard.held().len();
        let keep = listed == 0 && on_empty == OnEmpty::KeepLast && !self.last_non_empty.is_empty();
        if keep != self.keeping_last {
            if keep {
                warn!(
                    backend,
                    kept = self.last_non_empty.len(),
                    "ZooKeeper lists no members: keeping the last ones in service (on_empty: keep_last)"
                );
            } else {
                info!(backend, members = listed, "ZooKeeper lists members again");
            }
            self.keeping_last = keep;
        }
    }

    /// The members to put in service (the held ones included), as
    /// [`BackendMembers::settle`] last decided.
    pub fn in_service(&self) -> Vec<&ServerConfig> {
        if self.keeping_last {
            return self.last_non_empty.iter().collect();
        }
        let held = self.guard.held().values().map(|h| &h.member.server);
        self.members
            .values()
            .map(|m| &m.server)
            .chain(held)
            .collect()
    }
}

/// The members that take traffic, and the `held` ones (they serve on).
fn ready_in(members: &BTreeMap<String, Member>, held: usize) -> usize {
    members.values().filter(|m| m.ready()).count() + held
}

/// Every ZooKeeper-backed backend's membership, by backend name.
pub type Members = HashMap<String, BackendMembers>;

#[cfg(test)]
mod tests {
    use super::*;
    use zkgate_config::{AdminState, Protect, ServerAddress};

    fn server(address: &str) -> ServerConfig {
        ServerConfig {
            address: ServerAddress::parse(address).unwrap(),
            weight: 1,
            state: AdminState::Ready,
            zone: None,
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

    /// The ports of the members put in service, `on_empty` applied.
    fn serving(members: &mut BackendMembers, on_empty: OnEmpty) -> Vec<u16> {
        members.settle("web", on_empty);
        ports(&members.in_service())
    }

    fn ports(servers: &[&ServerConfig]) -> Vec<u16> {
        servers.iter().map(|s| s.address.port).collect()
    }

    #[test]
    fn reset_replaces_and_upsert_remove_edit() {
        let mut members = BackendMembers::default();
        assert!(!members.synced);
        members.apply(
            "web",
            Change::Reset(vec![ok("a", "10.0.0.1:1"), ok("b", "10.0.0.1:2")]),
            None,
        );
        assert!(members.synced);
        members.apply("web", Change::Upsert(ok("c", "10.0.0.1:3")), None);
        members.apply("web", Change::Remove("a".into()), None);
        assert_eq!(serving(&mut members, OnEmpty::Apply), [2, 3]);
        members.apply("web", Change::Reset(vec![ok("z", "10.0.0.1:9")]), None);
        assert_eq!(serving(&mut members, OnEmpty::Apply), [9]);
    }

    #[test]
    fn a_member_that_stops_parsing_is_skipped_and_counted() {
        let mut members = BackendMembers::default();
        members.apply(
            "web",
            Change::Reset(vec![ok("a", "10.0.0.1:1"), bad("b")]),
            None,
        );
        assert_eq!(members.invalid(), 1);
        members.apply("web", Change::Upsert(bad("a")), None);
        assert_eq!(members.invalid(), 2);
        assert!(serving(&mut members, OnEmpty::Apply).is_empty());
        members.apply("web", Change::Remove("b".into()), None);
        assert_eq!(members.invalid(), 1);
    }

    #[test]
    fn keep_last_holds_the_last_non_empty_set_until_members_return() {
        let mut members = BackendMembers::default();
        members.apply("web", Change::Reset(vec![ok("a", "10.0.0.1:1")]), None);
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [1]);
        members.apply("web", Change::Remove("a".into()), None);
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [1]);
        assert!(members.keeping_last());
        members.apply("web", Change::Upsert(ok("b", "10.0.0.1:2")), None);
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [2]);
        assert!(!members.keeping_last());
    }

    #[test]
    fn keep_last_remembers_the_set_just_before_it_emptied() {
        let mut members = BackendMembers::default();
        members.apply(
            "web",
            Change::Reset(vec![ok("a", "10.0.0.1:1"), ok("b", "10.0.0.1:2")]),
            None,
        );
        // Removed one by one (or an empty listing after a reconnect): the set
        // as it was before the last removal stays in service.
        members.apply("web", Change::Remove("a".into()), None);
        members.apply("web", Change::Upsert(bad("b")), None);
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [2]);
        members.apply(
            "web",
            Change::Reset(vec![ok("c", "10.0.0.1:3"), ok("d", "10.0.0.1:4")]),
            None,
        );
        members.apply("web", Change::Reset(Vec::new()), None);
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [3, 4]);
    }

    #[test]
    fn protect_holds_removals_beyond_the_share_and_lets_them_go() {
        let protect = Protect {
            max_removed_percent: 50,
            window: std::time::Duration::from_secs(30),
        };
        let mut members = BackendMembers::default();
        let names = ["a", "b", "c", "d"];
        let listing = names
            .iter()
            .enumerate()
            .map(|(i, n)| ok(n, &format!("10.0.0.1:{}", i + 1)))
            .collect();
        members.apply("web", Change::Reset(listing), Some(&protect));
        for name in names {
            members.apply("web", Change::Remove(name.into()), Some(&protect));
        }
        // Two of four go; two are held and serve on.
        assert_eq!(members.held().len(), 2);
        assert_eq!(serving(&mut members, OnEmpty::Apply), [3, 4]);
        // One comes back: no longer held, a member again.
        members.apply("web", Change::Upsert(ok("c", "10.0.0.1:3")), Some(&protect));
        assert_eq!(members.held().len(), 1);
        // A failing health check lets the other go.
        assert!(members.release_failing("web", "10.0.0.1:4".parse().unwrap()));
        assert_eq!(serving(&mut members, OnEmpty::Apply), [3]);
        // With all gone, keep_last keeps what served last.
        members.apply("web", Change::Remove("c".into()), Some(&protect));
        assert_eq!(members.held().len(), 1);
        members.release_all("web", "test");
        assert_eq!(serving(&mut members, OnEmpty::KeepLast), [3]);
        assert!(serving(&mut members, OnEmpty::Apply).is_empty());
    }

    #[test]
    fn apply_obeys_an_empty_listing() {
        let mut members = BackendMembers::default();
        members.apply("web", Change::Reset(vec![ok("a", "10.0.0.1:1")]), None);
        serving(&mut members, OnEmpty::Apply);
        members.apply("web", Change::Reset(Vec::new()), None);
        assert!(serving(&mut members, OnEmpty::Apply).is_empty());
    }
}
