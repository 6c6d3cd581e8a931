//! One timer per client connection for every deadline it waits on: the
//! client's next head, the server's answer, the next piece of a body.
//!
//! Requests come much faster than timeouts expire, and putting a timer into
//! tokio's wheel and taking it out again costs more than the request's own
//! parsing. So the timer is only moved when a deadline comes nearer than
//! where it is set; when it fires early, the wait it fired for looks at its
//! own deadline and sets it again. A request that finishes in time never
//! touches the wheel.

use std::future::Future;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

pub struct Timer {
    sleep: Pin<Box<Sleep>>,
}

impl Timer {
    pub fn new(deadline: Instant) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Completes at `deadline` (not before; possibly a little after).
    pub async fn until(&mut self, deadline: Instant) {
        if deadline < self.sleep.deadline() {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            self.sleep.as_mut().await;
            if Instant::now() >= deadline {
                return;
            }
            // Early: set for an earlier wait, which is over.
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// `work`'s output, or `None` if `deadline` comes first.
    pub async fn within<F: Future>(&mut self, deadline: Instant, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            output = work => Some(output),
            () = self.until(deadline) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_own_deadline_whatever_the_timer_was_set_for() {
        let start = Instant::now();
        let mut timer = Timer::new(start + Duration::from_secs(10));
        // Nearer: the timer moves.
        timer.until(start + Duration::from_secs(2)).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
        // Later than where it fired: set again, not ended early.
        timer.until(start + Duration::from_secs(5)).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(5));

        // A far wait after a near one that finished in time.
        let near = timer
            .within(Instant::now() + Duration::from_secs(1), async { 7 })
            .await;
        assert_eq!(near, Some(7));
        let far = timer
            .within(
                Instant::now() + Duration::from_secs(30),
                tokio::time::sleep(Duration::from_secs(20)),
            )
            .await;
        assert_eq!(far, Some(()));
        assert_eq!(Instant::now(), start + Duration::from_secs(25));
        let late = timer
            .within(
                Instant::now() + Duration::from_secs(3),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(late, None);
        assert_eq!(Instant::now(), start + Duration::from_secs(28));
    }
}
