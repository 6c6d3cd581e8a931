//! Which servers a request tries, in what order, and when it may go again:
//! the sticky server or the balancer's pick first, then others while the
//! backend's `retries` allow; every try's outcome feeds outlier detection.

use std::net::SocketAddr;
use std::time::Instant;

use http::StatusCode;
use zkgate_routing::{Attempts, Backend, Server};

use crate::Proxy;

/// Whether a method is safe to send twice (RFC 9110 §9.2.2): only such a
/// request, and only without a body, is sent again after it reached a
/// server that failed before answering.
pub fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// Records that `server` began answering (its response head arrived) for
/// a request sent at `sent`: the backend's response-time histogram and the
/// server's latency average (for least-latency balancing). Returns now.
pub fn head_arrived(backend: &Backend, server: &Server, sent: Instant) -> Instant {
    let answered = Instant::now();
    let elapsed = answered.saturating_duration_since(sent);
    backend
        .metrics
        .response_seconds
        .observe(elapsed.as_secs_f64());
    server.state.latency.observe(elapsed, answered);
    answered
}

/// The servers one request tries, one after another: the adapter sends to
/// each [`Tries::next`] gives, tells [`Tries::record`] how it went, and
/// stops at the first try that finished the request.
pub struct Tries<'b> {
    proxy: &'b Proxy,
    backend: &'b Backend,
    attempts: Attempts<'b>,
}

impl<'b> Tries<'b> {
    /// Tries for a request to `backend`: first the `sticky` server if
    /// given, else the balancer's pick for `key`.
    pub fn new(
        proxy: &'b Proxy,
        backend: &'b Backend,
        sticky: Option<SocketAddr>,
        key: Option<u64>,
    ) -> Self {
        let first = match sticky {
            Some(address) => backend.servers.iter().find(|s| s.address() == address),
            None => backend.pick(key),
        };
        Tries {
            proxy,
            backend,
            attempts: backend.attempts(first),
        }
    }

    /// The next server to try, while the backend's retries allow.
    pub fn next(&mut self) -> Option<&'b Server> {
        self.attempts.next()
    }

    /// Records how a try on `server` went (`ok`: the server did its part),
    /// for outlier detection.
    pub fn record(&self, server: &Server, ok: bool) {
        if self.backend.record(server, ok) {
            // An ejection: the control plane publishes a table without it.
            self.proxy.changed.notify_one();
        }
    }

    /// zkgate's answer when no try finished the request: 503 when no server
    /// could be tried at all, else 502.
    pub fn exhausted(&self) -> StatusCode {
        if self.attempts.none_tried() {
            self.backend.metrics.no_server.inc();
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_GATEWAY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::idempotent;

    #[test]
    fn only_idempotent_methods_may_go_twice() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(idempotent(method.as_bytes()), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT", "get", "PURGE"] {
            assert!(!idempotent(method.as_bytes()), "{method}");
        }
    }
}
