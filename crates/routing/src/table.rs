//! The immutable routing table the data plane reads: frontends → routes →
//! backends → servers and their balancer. Built by `TableBuilder`, published
//! with one `ArcSwap` store, never modified afterwards.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use zkgate_config::{
    AccessList, AdminState, Balance, HostPattern, Mode, OutlierConfig, Protocol, RateLimit,
    Timeouts,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::balance::Balancer;
use crate::clock;
use crate::server::Health;
use crate::server::Server;
use zkgate_metrics::{BackendMetrics, FrontendMetrics};
use zkgate_tls::{ClientTls, ServerTls};

/// Stable identity of a frontend across tables: listeners keep it, tables index by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrontendId(pub u32);

/// Everything the data plane needs to route, frozen at one generation.
pub struct RoutingTable {
    /// Increases by one with every table built.
    pub generation: u64,
    /// Indexed by `FrontendId`.
    frontends: Vec<Option<Arc<Frontend>>>,
    /// Sorted by name.
    backends: Vec<Arc<Backend>>,
    /// Frontends a reload removed while they had connections open.
    retired: Vec<Arc<Frontend>>,
    /// Whether listeners take new connections (see [`RoutingTable::accepting`]).
    accepting: bool,
}

impl RoutingTable {
    /// A table with nothing in it, served before the first build.
    pub fn empty() -> Self {
        RoutingTable {
            generation: 0,
            frontends: Vec::new(),
            backends: Vec::new(),
            retired: Vec::new(),
            accepting: true,
        }
    }

    pub(crate) fn new(
        generation: u64,
        frontends: Vec<Option<Arc<Frontend>>>,
        backends: Vec<Arc<Backend>>,
        retired: Vec<Arc<Frontend>>,
        accepting: bool,
    ) -> Self {
        RoutingTable {
            generation,
            frontends,
            backends,
            retired,
            accepting,
        }
    }

    /// Whether listeners take new connections. Not yet in a process that
    /// took its listening sockets over from a running one and is not ready
    /// (its ZooKeeper backends have not synced): the previous process,
    /// accepting on the same sockets, serves the newcomers meanwhile, and
    /// they wait in the kernel's queue no longer than it takes to accept.
    #[inline]
    pub fn accepting(&self) -> bool {
        self.accepting
    }

    /// The frontend a listener serves, if it still exists in this table.
    #[inline]
    pub fn frontend(&self, id: FrontendId) -> Option<&Arc<Frontend>> {
        self.frontends.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// A frontend a reload removed while connections it had accepted were
    /// still open, as it last was. A request on such a connection is served
    /// by it and the connection then closes, as HAProxy's old process does
    /// after a reload; it leaves the table once its connections are gone.
    #[cold]
    pub fn retired(&self, id: FrontendId) -> Option<&Arc<Frontend>> {
        self.retired.iter().find(|fe| fe.id == id)
    }

    /// Every frontend.
    pub fn frontends(&self) -> impl Iterator<Item = &Arc<Frontend>> {
        self.frontends.iter().flatten()
    }

    /// Every backend, by name.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// When this table goes stale by itself (an ejection ends, a slow start
    /// steps), in [`clock::now_ms`] time: the control plane rebuilds then.
    pub fn refresh_at_ms(&self) -> Option<u64> {
        self.backends.iter().filter_map(|b| b.refresh_at_ms).min()
    }

    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends
            .binary_search_by(|b| (*b.name).cmp(name))
            .ok()
            .map(|i| &self.backends[i])
    }
}

/// A frontend: where to listen and how to choose a backend.
pub struct Frontend {
    /// Stable id.
    pub id: FrontendId,
    /// Name from the configuration.
    pub name: Arc<str>,
    /// http or tcp.
    pub mode: Mode,
    /// Listening addresses.
    pub binds: Vec<SocketAddr>,
    /// Concurrent connections allowed, 0 = unlimited.
    pub max_connections: u32,
    /// Add X-Forwarded-* headers.
    pub forwarded_headers: bool,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    pub(crate) routes: Vec<Route>,
    pub(crate) default_backend: Option<Arc<Backend>>,
    /// Which client addresses may connect.
    pub access: Option<AccessList>,
    /// A PROXY protocol header starts every connection.
    pub accept_proxy: bool,
    /// TLS termination: the certificates presented, chosen by SNI.
    pub tls: Option<Arc<ServerTls>>,
    /// Open connections per client address; 0 = unlimited.
    pub max_connections_per_client: u32,
    /// Requests (tcp: connections) per second per client address.
    pub rate_limit: Option<RateLimit>,
    /// Metric handles.
    pub metrics: FrontendMetrics,
}

pub(crate) struct Route {
    pub(crate) host: Option<HostPattern>,
    pub(crate) path_prefix: Option<Box<str>>,
    pub(crate) headers: Box<[(HeaderName, HeaderValue)]>,
    pub(crate) backend: Arc<Backend>,
    pub(crate) access: Option<AccessList>,
}

impl Route {
    fn matches<H: RequestHeaders + ?Sized>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        headers: &H,
    ) -> bool {
        if let Some(pattern) = &self.host {
            match host {
                Some(host) if pattern.matches(host) => {}
                _ => return false,
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix.as_bytes()) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, value)| headers.has_value(name, value.as_bytes()))
    }
}

/// The request headers routing looks at, however the data plane holds them.
pub trait RequestHeaders {
    /// Whether some header `name` has exactly `value`.
    fn has_value(&self, name: &HeaderName, value: &[u8]) -> bool;
}

impl RequestHeaders for HeaderMap {
    fn has_value(&self, name: &HeaderName, value: &[u8]) -> bool {
        self.get_all(name).iter().any(|v| v.as_bytes() == value)
    }
}

impl Frontend {
    /// The backend for a request: the first matching route, else the default.
    /// `host` is the request's host without port.
    #[inline]
    pub fn select_backend<H: RequestHeaders + ?Sized>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        headers: &H,
    ) -> Option<&Arc<Backend>> {
        self.routes
            .iter()
            .find(|route| route.matches(host, path, headers))
            .map(|route| &route.backend)
            .or(self.default_backend.as_ref())
    }

    /// The backend for a request and the access list of the route that chose
    /// it, if that route has one.
    #[inline]
    pub fn select<H: RequestHeaders + ?Sized>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        headers: &H,
    ) -> Option<(&Arc<Backend>, Option<&AccessList>)> {
        match self
            .routes
            .iter()
            .find(|route| route.matches(host, path, headers))
        {
            Some(route) => Some((&route.backend, route.access.as_ref())),
            None => self.default_backend.as_ref().map(|b| (b, None)),
        }
    }

    /// The backend of a tcp frontend.
    pub fn default_backend(&self) -> Option<&Arc<Backend>> {
        self.default_backend.as_ref()
    }
}

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
