//! How long zkgate waits for a client between and within requests, and
//! what it tells one that took too long. A request in flight is governed by
//! the backend's timeouts instead.

use std::time::Duration;

use zkgate_config::Timeouts;

/// What a client connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Its first request to begin: a new connection must send one within
    /// `client_header`.
    FirstRequest,
    /// Another request, after one was answered: `client_idle`.
    NextRequest,
    /// The rest of a request head that began arriving: `client_header`,
    /// measured from its first byte.
    RestOfHead,
}

impl Waiting {
    /// How long the wait may last.
    pub fn limit(self, timeouts: &Timeouts) -> Duration {
        match self {
            Waiting::FirstRequest | Waiting::RestOfHead => timeouts.client_header,
            Waiting::NextRequest => timeouts.client_idle,
        }
    }

    /// Whether the client is told `408 Request Timeout` before the
    /// connection closes: only one that began a request is; a connection
    /// idle between requests just closes (RFC 9112 §9.5).
    pub fn answers_timeout(self) -> bool {
        self == Waiting::RestOfHead
    }
}

/// Whether a connection closes now that shutdown began: between requests,
/// yes; but a connection accepted as shutdown began still gets its first
/// request answered, as closing it unread would fail a client that did
/// nothing wrong.
pub fn closes_on_shutdown(served_any: bool) -> bool {
    served_any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_begun_head_is_timed_by_client_header_and_answered_408() {
        let timeouts = Timeouts {
            client_header: Duration::from_secs(2),
            client_idle: Duration::from_secs(30),
            connect: Duration::from_secs(1),
            server: Duration::from_secs(1),
            tunnel: Duration::from_secs(1),
        };
        assert_eq!(Waiting::RestOfHead.limit(&timeouts), Duration::from_secs(2));
        assert_eq!(
            Waiting::FirstRequest.limit(&timeouts),
            Duration::from_secs(2)
        );
        assert_eq!(
            Waiting::NextRequest.limit(&timeouts),
            Duration::from_secs(30)
        );
        assert!(Waiting::RestOfHead.answers_timeout());
        assert!(
            !Waiting::FirstRequest.answers_timeout() && !Waiting::NextRequest.answers_timeout()
        );
    }
}
