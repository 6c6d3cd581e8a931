//! The CPU time the current thread spends on something: what a table build
//! costs, without the time its thread waited for a core. On a busy machine
//! (a hundred proxies on two cores) the wall-clock time of a build can be
//! many times its cost, and merging changes by it would hold changes back
//! for no saving.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// A stopwatch of the current thread's CPU time. Read it on the thread that
/// started it: between two awaits, not across one.
pub(crate) struct OnCpu(Duration);

impl OnCpu {
    pub(crate) fn start() -> Self {
        OnCpu(now())
    }

    /// The thread's CPU time since [`OnCpu::start`].
    pub(crate) fn elapsed(&self) -> Duration {
        now().saturating_sub(self.0)
    }
}

fn now() -> Duration {
    Duration::try_from(clock_gettime(ClockId::ThreadCPUTime)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_and_not_sleep() {
        let slept = OnCpu::start();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            slept.elapsed() < Duration::from_millis(25),
            "{:?}",
            slept.elapsed()
        );

        let began = std::time::Instant::now();
        let worked = OnCpu::start();
        let mut x = 0u64;
        while began.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (cpu, wall) = (worked.elapsed(), began.elapsed());
        // The two clocks are kept apart: they may differ by microseconds.
        assert!(
            cpu > Duration::ZERO && cpu <= wall + Duration::from_millis(1),
            "{cpu:?} on CPU in {wall:?}"
        );
    }
}
