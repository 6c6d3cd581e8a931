//! Peak-EWMA latency of a server (as in Finagle and linkerd): an exponentially
//! weighted moving average that jumps up to any slower observation at once
//! and decays with time constant `DECAY`, so a server that turns slow is
//! avoided quickly and forgiven gradually.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Time constant of the decay.
const DECAY: Duration = Duration::from_secs(10);
/// Cost assumed for a server never measured: low, so new servers get tried.
const UNMEASURED_NANOS: f64 = 1_000_000.0;

/// Nanoseconds from a fixed origin to `at`.
fn nanos_at(at: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*ORIGIN.get_or_init(|| at))
        .as_nanos() as u64
}

/// Lock-free peak EWMA; concurrent updates may lose one observation, never corrupt.
#[derive(Debug, Default)]
pub struct PeakEwma {
    /// f64 bits of the average, in nanoseconds; 0 = never measured.
    value: AtomicU64,
    stamp: AtomicU64,
}

impl PeakEwma {
    /// Records one round-trip time, which ended `at`: the caller read the
    /// clock to measure it, and a second reading per request showed in
    /// profiles.
    pub fn observe(&self, rtt: Duration, at: Instant) {
        let now = nanos_at(at);
        let rtt = rtt.as_nanos() as f64;
        let old = f64::from_bits(self.value.load(Relaxed));
        let next = if old == 0.0 || rtt > old {
            rtt
        } else {
            let elapsed = now.saturating_sub(self.stamp.load(Relaxed)) as f64;
            let w = (-elapsed / DECAY.as_nanos() as f64).exp();
            old * w + rtt * (1.0 - w)
        };
        self.value.store(next.to_bits(), Relaxed);
        self.stamp.store(now, Relaxed);
    }

    /// The current estimate in nanoseconds.
    pub fn nanos(&self) -> f64 {
        let value = f64::from_bits(self.value.load(Relaxed));
        if value == 0.0 {
            UNMEASURED_NANOS
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_observation_raises_the_estimate_at_once_and_fast_ones_lower_it_slowly() {
        let ewma = PeakEwma::default();
        let start = Instant::now();
        assert_eq!(ewma.nanos(), UNMEASURED_NANOS);
        ewma.observe(Duration::from_millis(1), start);
        ewma.observe(Duration::from_millis(50), start);
        assert_eq!(ewma.nanos(), 50_000_000.0);
        ewma.observe(Duration::from_millis(1), start + Duration::from_millis(1));
        assert!(ewma.nanos() > 40_000_000.0, "{}", ewma.nanos());
    }

    #[test]
    fn the_estimate_decays_with_the_time_between_observations() {
        let ewma = PeakEwma::default();
        nanos_at(Instant::now()); // the origin, set before `start` even if this test runs first
        let start = Instant::now();
        ewma.observe(Duration::from_millis(50), start);
        // One time constant later, a fast observation weighs 1 - 1/e.
        ewma.observe(Duration::from_millis(1), start + DECAY);
        let expected = 50e6 / std::f64::consts::E + 1e6 * (1.0 - 1.0 / std::f64::consts::E);
        assert!(
            (ewma.nanos() - expected).abs() < 1e3,
            "{} vs {expected}",
            ewma.nanos()
        );
    }
}
