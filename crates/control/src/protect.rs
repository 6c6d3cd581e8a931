//! The mass-removal guard (`protect`). A bad deploy script, a registrar
//! bug or a partition between the services and ZooKeeper can remove most
//! of a backend's members in seconds; a proxy that follows ZooKeeper
//! faithfully then sends all traffic to what is left (Eureka's
//! self-preservation answers the same). With `protect`, removals beyond
//! `max_removed` of the members within `window` are held: those servers
//! keep serving with what ZooKeeper said of them before, until a health
//! check fails them, they come back, `zkgate server release` lets them go,
//! or the window after the last removal passes with ZooKeeper connected.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use zkgate_config::Protect;

use crate::member::Member;

/// Why a member is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its znode was deleted (or its session expired).
    Deleted,
    /// ZooKeeper says it takes no traffic (drain, maint).
    NotReady,
    /// Its data no longer parses.
    Unreadable,
}

impl Removal {
    /// In words, for logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Removal::Deleted => "removed from ZooKeeper",
            Removal::NotReady => "no longer ready in ZooKeeper",
            Removal::Unreadable => "its data no longer parses",
        }
    }
}

/// A member kept in service although ZooKeeper removed it.
#[derive(Debug, Clone)]
pub struct Held {
    /// What ZooKeeper said of it before the removal: what serves.
    pub member: Member,
    /// What ZooKeeper says now (`None`: nothing), applied on release.
    pub now: Option<Member>,
    /// Why it is held.
    pub why: Removal,
    /// Since when (seconds since the Unix epoch).
    pub since_unix: u64,
}

/// One backend's guard.
#[derive(Debug, Default)]
pub struct Guard {
    /// Members ready when the current window's first removal came.
    base: usize,
    /// Removals applied in the current window.
    applied: usize,
    last_removal: Option<Instant>,
    held: BTreeMap<String, Held>,
    /// Children whose change of this sync was made with `--force`.
    forced: BTreeSet<String>,
    /// The last `release` directive seen, once one was seen.
    release: Option<u64>,
    directives_zxid: i64,
}

impl Guard {
    /// Whether removing `name` (one of `ready` members ready before it) may
    /// take effect now; if not, the caller holds it.
    pub fn admit(
        &mut self,
        protect: Option<&Protect>,
        name: &str,
        ready: impl FnOnce() -> usize,
        now: Instant,
    ) -> bool {
        let Some(protect) = protect else {
            return true;
        };
        if self.forced.contains(name) {
            return true;
        }
        if self
            .last_removal
            .is_none_or(|at| now >= at + protect.window)
        {
            self.base = ready();
            self.applied = 0;
        }
        self.last_removal = Some(now);
        let allowed = self.base * usize::from(protect.max_removed_percent) / 100;
        if self.applied < allowed {
            self.applied += 1;
            true
        } else {
            false
        }
    }

    /// Holds `member` (which ZooKeeper now says is `now`).
    pub fn hold(&mut self, name: String, member: Member, now: Option<Member>, why: Removal) {
        let since_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let held = Held {
            member,
            now,
            why,
            since_unix,
        };
        self.held.insert(name, held);
    }

    /// The held members.
    pub fn held(&self) -> &BTreeMap<String, Held> {
        &self.held
    }

    /// Stops holding `name`; what ZooKeeper says of it now, if anything.
    pub fn release(&mut self, name: &str) -> Option<Held> {
        self.held.remove(name)
    }

    /// Stops holding every member; what ZooKeeper says of each now.
    pub fn release_all(&mut self) -> BTreeMap<String, Held> {
        std::mem::take(&mut self.held)
    }

    /// Notes what ZooKeeper says of a held member now (it stays held).
    pub fn update(&mut self, name: &str, now: Option<Member>) {
        if let Some(held) = self.held.get_mut(name) {
            held.now = now;
        }
    }

    /// When the held members are let go if ZooKeeper is connected then.
    pub fn release_at(&self, protect: Option<&Protect>) -> Option<Instant> {
        let window = protect?.window;
        (!self.held.is_empty()).then_some(self.last_removal? + window)
    }

    /// Starts the window again from `now` (ZooKeeper was not connected
    /// when it passed: the removals are not trusted yet).
    pub fn postpone(&mut self, now: Instant) {
        self.last_removal = Some(now);
    }

    /// Takes the directives of a (re)sync: the children forced in it, and
    /// whether a new `server release` asks to let every held member go.
    pub fn directives(&mut self, directives: &zkgate_discovery::directives::Directives) -> bool {
        let new = directives.zxid != self.directives_zxid;
        self.directives_zxid = directives.zxid;
        self.forced = if new {
            directives.forced.iter().cloned().collect()
        } else {
            BTreeSet::new()
        };
        let released = self.release.is_some_and(|seen| seen != directives.release);
        self.release = Some(directives.release);
        released
    }

    /// The sync's forced children no longer apply.
    pub fn sync_done(&mut self) {
        self.forced.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HALF: Protect = Protect {
        max_removed_percent: 50,
        window: Duration::from_secs(30),
    };

    #[test]
    fn removals_beyond_the_share_within_the_window_are_not_admitted() {
        let mut guard = Guard::default();
        let now = Instant::now();
        let admitted = (0..8)
            .filter(|n| guard.admit(Some(&HALF), &format!("m{n}"), || 10, now))
            .count();
        assert_eq!(admitted, 5);
        // A window later, the count starts again from what is left.
        let later = now + Duration::from_secs(31);
        assert!(guard.admit(Some(&HALF), "m9", || 5, later));
        assert!(guard.admit(Some(&HALF), "m10", || 5, later));
        assert!(!guard.admit(Some(&HALF), "m11", || 5, later));
        // Without protect, everything goes.
        assert!((0..10).all(|n| Guard::default().admit(None, &format!("m{n}"), || 10, now)));
    }

    #[test]
    fn forced_children_of_a_new_directive_pass_and_a_new_release_is_seen() {
        use zkgate_discovery::directives::Directives;
        let mut guard = Guard::default();
        let first = Directives {
            release: 3,
            forced: vec!["a".into()],
            zxid: 7,
        };
        assert!(
            !guard.directives(&first),
            "the first release seen is where we start"
        );
        let now = Instant::now();
        assert!(guard.admit(Some(&HALF), "a", || 2, now));
        assert!(guard.admit(Some(&HALF), "b", || 2, now));
        assert!(!guard.admit(Some(&HALF), "c", || 2, now));
        guard.sync_done();
        // The same directives again (a resync): `a` is no longer forced.
        assert!(!guard.directives(&first));
        assert!(!guard.admit(Some(&HALF), "a", || 2, now));
        let release = Directives {
            release: 4,
            forced: vec!["a".into()],
            zxid: 8,
        };
        assert!(guard.directives(&release));
    }
}
