//! Passive outlier detection: a server that fails `consecutive_failures`
//! times in a row (connect errors, resets, timeouts, 5xx answers) is ejected
//! for `ejection`, longer each time it is ejected again soon after. The data
//! plane records outcomes here and skips ejected servers at once; the control
//! plane rebuilds the table without them, and again when they return.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use zkgate_config::OutlierConfig;

/// Ejections count towards a longer ejection only this long after the last one.
const MEMORY: Duration = Duration::from_secs(300);
/// The longest ejection, as a multiple of `ejection`.
const MAX_MULTIPLE: u64 = 8;

/// One server's outcome counters.
#[derive(Debug, Default)]
pub struct Outlier {
    failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
}

impl Outlier {
    /// Whether the server is ejected at `now_ms` (see [`crate::clock::now_ms`]).
    #[inline]
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now_ms
    }

    /// When the current or last ejection ends (0 if never ejected).
    pub fn ejected_until_ms(&self) -> u64 {
        self.ejected_until_ms.load(Relaxed)
    }

    /// A request or connection went well.
    #[inline]
    pub fn success(&self) {
        // Read first: the common case writes nothing, so busy servers' cache lines stay shared.
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
    }

    /// A request or connection failed. Returns the ejection's length if this
    /// failure ejected the server; `may_eject` is asked only then (it checks
    /// the backend's `max_ejected_percent`).
    pub fn failure(
        &self,
        config: &OutlierConfig,
        now_ms: u64,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Duration> {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if failures < config.consecutive_failures || self.is_ejected(now_ms) || !may_eject() {
            return None;
        }
        self.failures.store(0, Relaxed);
        let last_end = self.ejected_until_ms.load(Relaxed);
        let recent = last_end != 0 && now_ms.saturating_sub(last_end) < MEMORY.as_millis() as u64;
        let times = if recent {
            self.ejections.fetch_add(1, Relaxed) + 1
        } else {
            self.ejections.store(1, Relaxed);
            1
        };
        let length = config.ejection * u64::from(times).min(MAX_MULTIPLE) as u32;
        self.ejected_until_ms
            .store(now_ms + length.as_millis() as u64, Relaxed);
        Some(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: OutlierConfig = OutlierConfig {
        consecutive_failures: 3,
        ejection: Duration::from_secs(10),
        max_ejected_percent: 50,
    };

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let outlier = Outlier::default();
        assert_eq!(outlier.failure(&CONFIG, 1000, || true), None);
        assert_eq!(outlier.failure(&CONFIG, 1000, || true), None);
        outlier.success();
        assert_eq!(outlier.failure(&CONFIG, 1000, || true), None);
        assert_eq!(outlier.failure(&CONFIG, 1000, || true), None);
        assert_eq!(
            outlier.failure(&CONFIG, 1000, || true),
            Some(Duration::from_secs(10))
        );
        assert!(outlier.is_ejected(10_999));
        assert!(!outlier.is_ejected(11_000));
    }

    #[test]
    fn repeated_ejections_last_longer_and_the_limit_can_refuse() {
        let outlier = Outlier::default();
        for _ in 0..2 {
            outlier.failure(&CONFIG, 1000, || true);
        }
        assert_eq!(
            outlier.failure(&CONFIG, 1000, || true),
            Some(Duration::from_secs(10))
        );
        // Back at 11 s, failing again at once: twice as long.
        for _ in 0..2 {
            outlier.failure(&CONFIG, 12_000, || true);
        }
        assert_eq!(
            outlier.failure(&CONFIG, 12_000, || true),
            Some(Duration::from_secs(20))
        );
        // The backend's limit says no: not ejected, still counting.
        let other = Outlier::default();
        for _ in 0..5 {
            assert_eq!(other.failure(&CONFIG, 1000, || false), None);
        }
        assert!(!other.is_ejected(1000));
    }
}
