//! When an instance reads its backends again after a reconnect: at a
//! random time, so that a fleet reconnecting at once (after a leader
//! election, or a partition that expired every session) does not read at
//! once, and at one time for all of an instance's backends, so that their
//! reads are asked together and packed into few multi-reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A re-read after a reconnect waits a random time below this, plus
/// `RESYNC_PER_CHILD` per child the instance's backends had, at most
/// `RESYNC_MAX`: a fleet then reads over a time that grows with what each
/// instance has to read — 20 s for 10,000 members — rather than all in the
/// same second. With one backend, two milliseconds a child keep a thousand
/// instances' re-reads below what the ensemble serves (at one millisecond
/// they were above it, and it was saturated until all had read).
/// Meanwhile the backends serve the members they had.
const RESYNC_SPREAD: Duration = Duration::from_millis(500);
const RESYNC_PER_CHILD: Duration = Duration::from_millis(2);
const RESYNC_MAX: Duration = Duration::from_secs(25);
/// Watchers that see a reconnect (or a failed read) within this of the
/// first one to see it take its re-read time.
const SAME_RECONNECT: Duration = Duration::from_secs(1);

/// How many children each backend's last full read found, shared by a
/// discovery's watchers across its sessions.
pub type KnownChildren = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// The children `known` to an instance's backends, all together.
pub fn children(known: &KnownChildren) -> usize {
    known.lock().map_or(0, |known| known.values().sum())
}

/// How long a re-read after a reconnect waits, for `children` to read
/// (also how long a new session after an expired one waits to open).
pub fn resync_wait(children: usize) -> Duration {
    let spread = RESYNC_SPREAD + RESYNC_PER_CHILD * children.min(u32::MAX as usize) as u32;
    spread.min(RESYNC_MAX).mul_f64(fastrand::f64())
}

/// A session's re-read time: drawn by the first watcher to need one, and
/// taken by the others that need one within `SAME_RECONNECT`.
#[derive(Default)]
pub(crate) struct Resync(Mutex<Option<Drawn>>);

#[derive(Clone, Copy)]
struct Drawn {
    when: Instant,
    at: Instant,
}

impl Resync {
    /// When to re-read, for a reconnect seen now with `children` to read.
    pub(crate) fn at(&self, children: usize) -> Instant {
        let now = Instant::now();
        let Ok(mut drawn) = self.0.lock() else {
            return now + resync_wait(children);
        };
        match *drawn {
            Some(same) if now.duration_since(same.when) < SAME_RECONNECT => same.at,
            _ => {
                let at = now + resync_wait(children);
                *drawn = Some(Drawn { when: now, at });
                at
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn watchers_that_see_one_reconnect_share_its_time_and_a_later_one_draws_anew() {
        let resync = Resync::default();
        let first = resync.at(10_000);
        assert!(first <= Instant::now() + Duration::from_millis(20_500));
        tokio::time::advance(Duration::from_millis(900)).await;
        assert_eq!(resync.at(10_000), first);
        tokio::time::advance(Duration::from_millis(200)).await;
        let later = resync.at(0);
        assert!(later >= Instant::now() && later < Instant::now() + RESYNC_SPREAD);
    }
}
