//! How much CPU server-change builds may take: about 1 % of a core over
//! time, and a burst of [`BURST`] at once (Envoy's update merge window,
//! sized by cost instead of fixed at a second, and spent as a budget
//! rather than after every build).
//!
//! A budget, not a spacing after each build: a change that comes as two
//! updates (the two halves of a multi-write, read apart) or a rare pair of
//! changes is applied at once, however costly its build, while sustained
//! churn drains the burst and is then merged, one build per `100 · d`
//! after a build that cost `d`, as before.

use std::time::{Duration, Instant};

/// Builds use at most 1 / `COST_SHARE` of a core over time.
const COST_SHARE: u32 = 100;
/// CPU time builds may spend at once before changes wait to be merged:
/// room for a change read as two updates (two builds of up to a
/// millisecond, a 10,000-member backend's), and small enough that
/// sustained churn drains it within a second and is merged from there.
const BURST: Duration = Duration::from_millis(2);
/// The longest a change waits to be merged, however costly builds are.
const MAX_WAIT: Duration = Duration::from_millis(250);
/// Builds cheaper than this cost nothing: small tables keep their
/// sub-millisecond change-to-traffic latency at any rate of changes.
const FREE_BELOW: Duration = Duration::from_micros(200);

/// The CPU time builds owe, repaid at `1 / COST_SHARE` of the time that
/// passes.
#[derive(Debug)]
pub(crate) struct BuildBudget {
    owed: Duration,
    at: Instant,
}

impl BuildBudget {
    pub(crate) fn new(now: Instant) -> Self {
        BuildBudget {
            owed: Duration::ZERO,
            at: now,
        }
    }

    /// A build that cost `cost` of CPU time ended at `now`.
    pub(crate) fn spent(&mut self, cost: Duration, now: Instant) {
        self.repay(now);
        if cost >= FREE_BELOW {
            // Owing more than a longest wait repays would make churn that
            // stopped hold the next lone change back.
            self.owed = (self.owed + cost).min(BURST + MAX_WAIT / COST_SHARE);
        }
    }

    /// When the next build may start: `None` for at once.
    pub(crate) fn next_build(&self) -> Option<Instant> {
        let beyond = self.owed.saturating_sub(BURST);
        (!beyond.is_zero()).then(|| self.at + (beyond * COST_SHARE).min(MAX_WAIT))
    }

    fn repay(&mut self, now: Instant) {
        let passed = now.saturating_duration_since(self.at);
        self.owed = self.owed.saturating_sub(passed / COST_SHARE);
        self.at = self.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lone_costly_change_and_the_one_right_after_it_go_at_once() {
        let start = Instant::now();
        let mut budget = BuildBudget::new(start);
        budget.spent(MS, start);
        assert_eq!(budget.next_build(), None);
        budget.spent(MS, start + MS);
        assert_eq!(budget.next_build(), None);
        // A third right after: the burst is spent, it waits.
        budget.spent(MS, start + 2 * MS);
        assert!(budget.next_build().is_some());
    }

    #[test]
    fn sustained_builds_are_spaced_to_a_hundredth_of_a_core() {
        let start = Instant::now();
        let mut budget = BuildBudget::new(start);
        let mut now = start;
        let mut builds = 0u32;
        // Changes come faster than builds may go: each build starts when
        // the budget lets it and costs 2 ms.
        while now < start + Duration::from_secs(20) {
            now = budget.next_build().map_or(now, |at| at.max(now));
            budget.spent(2 * MS, now);
            builds += 1;
        }
        let cpu = 2 * MS * builds;
        // 1 % of 20 s, plus the burst, plus one build's rounding.
        assert!(
            cpu <= 200 * MS + BURST + 2 * MS,
            "{cpu:?} in {builds} builds"
        );
        assert!(
            cpu >= 190 * MS,
            "{cpu:?}: held back more than the share asks"
        );
    }

    #[test]
    fn cheap_builds_never_wait() {
        let start = Instant::now();
        let mut budget = BuildBudget::new(start);
        for i in 0..10_000 {
            budget.spent(
                Duration::from_micros(150),
                start + i * Duration::from_micros(10),
            );
        }
        assert_eq!(budget.next_build(), None);
    }

    #[test]
    fn a_wait_is_bounded_and_churn_that_stopped_leaves_no_debt_for_long() {
        let start = Instant::now();
        let mut budget = BuildBudget::new(start);
        // A huge build: the next change waits at most MAX_WAIT.
        budget.spent(Duration::from_secs(5), start);
        let wait = budget.next_build().expect("waits") - start;
        assert_eq!(wait, MAX_WAIT);
        // After that wait, a lone change goes at once.
        budget.spent(Duration::ZERO, start + MAX_WAIT);
        assert_eq!(budget.next_build(), None);
    }
}
