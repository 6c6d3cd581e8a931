//! A coarse monotonic millisecond clock that fits in an atomic.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process (never 0, so 0 can mean "unset").
pub fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64 + 1
}

/// The `Instant` of a `now_ms()` reading.
pub fn instant_of(ms: u64) -> Instant {
    origin() + Duration::from_millis(ms.saturating_sub(1))
}
