//! A backend as the data plane reads it: its servers, the balancer over
//! them, and how a server is picked for a request (sticky, zoned, past
//! ejected or saturated servers).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use zkgate_config::{AdminState, Balance, Mode, OutlierConfig, Protocol, Timeouts};
use zkgate_metrics::BackendMetrics;
use zkgate_tls::ClientTls;

use crate::balance::Balancer;
use crate::clock;
use crate::server::{Health, Server};

/// A backend: its servers and the balancer over them.
pub struct Backend {
    /// Name from the configuration.
    pub name: Arc<str>,
    /// http or tcp.
    pub mode: Mode,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    /// Extra attempts on other servers after a failed connect.
    pub retries: u32,
    /// Every server, eligible or not.
    pub servers: Box<[Server]>,
    /// HTTP version spoken to the servers.
    pub protocol: Protocol,
    /// PROXY protocol version sent to tcp servers, if any.
    pub send_proxy: Option<u8>,
    /// TLS towards the servers.
    pub tls: Option<Arc<ClientTls>>,
    /// The algorithm, for the data plane to know which request key it hashes.
    pub balance: Balance,
    pub(crate) balancer: Balancer,
    /// With `locality: prefer_local`, the balancers of this zone and the
    /// others, used instead of `balancer`.
    pub(crate) zoned: Option<crate::locality::Zoned>,
    /// Indexes of the servers that take new traffic.
    pub(crate) eligible: Box<[u32]>,
    pub(crate) retry_cursor: AtomicUsize,
    pub(crate) health_checked: bool,
    pub(crate) outlier: Option<OutlierConfig>,
    /// Too few usable servers when built: every ready server takes traffic.
    pub panic: bool,
    /// The sticky cookie's name, if sessions stick.
    pub sticky_cookie: Option<Box<str>>,
    pub(crate) sticky_ids: HashMap<u64, u32>,
    pub(crate) max_connections_per_server: u32,
    pub(crate) refresh_at_ms: Option<u64>,
    /// Metric handles.
    pub metrics: BackendMetrics,
}

impl Backend {
    /// The server for a request, or `None` if no server takes traffic. `key`
    /// is the request's hash key when [`Backend::balance`] hashes one. A
    /// server ejected since the table was built, or at its connection limit,
    /// is passed over.
    #[inline]
    pub fn pick(&self, key: Option<u64>) -> Option<&Server> {
        let index = match &self.zoned {
            None => self.balancer.pick(&self.servers, key)?,
            Some(zoned) => zoned.pick(&self.servers, key)?,
        };
        let server = &self.servers[index as usize];
        if self.usable_now(server) {
            return Some(server);
        }
        self.pick_untried(&[])
    }

    /// A server whose address is not in `tried` (for retries), whatever the
    /// algorithm: the next usable eligible one in a rotation.
    pub fn pick_untried(&self, tried: &[SocketAddr]) -> Option<&Server> {
        let n = self.eligible.len();
        let start = self.retry_cursor.fetch_add(1, Relaxed);
        (0..n)
            .map(|k| &self.servers[self.eligible[(start + k) % n] as usize])
            .find(|server| !tried.contains(&server.address()) && self.usable_now(server))
    }

    #[inline]
    fn usable_now(&self, server: &Server) -> bool {
        let limit = self.max_connections_per_server;
        let under_limit = limit == 0 || server.state.active.get() < i64::from(limit);
        under_limit
            && (self.panic
                || self.outlier.is_none()
                || !server.state.outlier.is_ejected(clock::now_ms()))
    }

    /// With `locality: prefer_local`, the share of requests that stay in
    /// this instance's zone (0.0 to 1.0).
    pub fn local_share(&self) -> Option<f64> {
        self.zoned.as_ref().map(crate::locality::Zoned::local_share)
    }

    /// Whether active health checks run on this backend's servers.
    pub fn health_checked(&self) -> bool {
        self.health_checked
    }

    /// The server a sticky cookie value names, if it may still serve it:
    /// ready or draining (maint moves the client), healthy, not ejected.
    pub fn sticky(&self, value: &[u8]) -> Option<&Server> {
        let id = u64::from_str_radix(std::str::from_utf8(value).ok()?, 16).ok()?;
        let server = &self.servers[*self.sticky_ids.get(&id)? as usize];
        let admitted = matches!(server.admin, AdminState::Ready | AdminState::Drain);
        let healthy = self.panic || !self.health_checked || server.state.health.get() == Health::Up;
        (admitted && healthy && self.usable_now(server)).then_some(server)
    }

    /// The sticky cookie value for `server`.
    pub fn sticky_value(&self, server: &Server) -> String {
        format!("{:016x}", sticky_id(&server.state.label))
    }

    /// Records how a request or connection to `server` went, for outlier
    /// detection. Returns true if this failure ejected the server.
    pub fn record(&self, server: &Server, ok: bool) -> bool {
        let Some(config) = &self.outlier else {
            return false;
        };
        if ok {
            server.state.outlier.success();
            return false;
        }
        let now = clock::now_ms();
        let may_eject = || {
            let ejected = self
                .servers
                .iter()
                .filter(|s| s.state.outlier.is_ejected(now))
                .count();
            (ejected + 1) * 100 <= config.max_ejected_percent as usize * self.servers.len()
        };
        match server.state.outlier.failure(config, now, may_eject) {
            Some(length) => {
                tracing::warn!(backend = %self.name, server = %server.address(), ejection = ?length, "server ejected after consecutive failures");
                true
            }
            None => false,
        }
    }
}

/// A server's opaque, stable id for sticky cookies.
pub(crate) fn sticky_id(label: &str) -> u64 {
    crate::balance::hash64(label.as_bytes(), crate::balance::hash::SEED ^ 0x5717_c4e1)
}
