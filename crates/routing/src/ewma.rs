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

fn now_nanos() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Lock-free peak EWMA; concurrent updates may lose one observation, never corrupt.
#[derive(Debug, Default)]
pub struct PeakEwma {
    /// f64 bits of the average, in nanoseconds; 0 = never measured.
    value: AtomicU64,
    stamp: AtomicU64,
}

impl PeakEwma {
    /// Records one round-trip time.
    pub fn observe(&self, rtt: Duration) {
        let now = now_nanos();
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
        assert_eq!(ewma.nanos(), UNMEASURED_NANOS);
        ewma.observe(Duration::from_millis(1));
        ewma.observe(Duration::from_millis(50));
        assert_eq!(ewma.nanos(), 50_000_000.0);
        ewma.observe(Duration::from_millis(1));
        assert!(ewma.nanos() > 40_000_000.0, "{}", ewma.nanos());
    }
}
