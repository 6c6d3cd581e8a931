//! The immutable routing table the data plane reads: frontends → routes →
//! backends → servers and their balancer. Built by `TableBuilder`, published
//! with one `ArcSwap` store, never modified afterwards.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use zkgate_config::{AccessList, Compression, Mode, RateLimit, Timeouts};
use zkgate_metrics::{CompressionMetrics, FrontendMetrics};
use zkgate_tls::ServerTls;

use crate::backend::Backend;
use crate::route::{RequestHeaders, Route};
use crate::routes::Routes;

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

/// A frontend's `compression:` and its counters.
pub struct Compressing {
    /// What is compressed, and how.
    pub config: Compression,
    /// `zkgate_compressed_responses_total` of the frontend.
    pub metrics: CompressionMetrics,
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
    pub(crate) routes: Routes,
    pub(crate) default_route: Option<Route>,
    /// Which client addresses may connect.
    pub access: Option<AccessList>,
    /// A PROXY protocol header starts every connection.
    pub accept_proxy: bool,
    /// TLS termination: the certificates presented, chosen by SNI.
    pub tls: Option<Arc<ServerTls>>,
    /// UDP addresses serving HTTP/3 (with `tls`'s QUIC side).
    pub http3_binds: Vec<SocketAddr>,
    /// `Alt-Svc` sent with servers' answers, offering HTTP/3.
    pub alt_svc: Option<HeaderValue>,
    /// Open connections per client address; 0 = unlimited.
    pub max_connections_per_client: u32,
    /// Requests (tcp: connections) per second per client address.
    pub rate_limit: Option<RateLimit>,
    /// The header carrying request ids, when they are set and logged.
    pub request_id: Option<HeaderName>,
    /// Compression of answers, when on.
    pub compression: Option<Compressing>,
    /// Metric handles.
    pub metrics: FrontendMetrics,
}

impl Frontend {
    /// The route of a request: the first that matches, else the default
    /// backend's. `host` is the request's host without port.
    #[inline]
    pub fn select<H: RequestHeaders + ?Sized>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        headers: &H,
    ) -> Option<&Route> {
        self.routes
            .find(host, path, headers)
            .or(self.default_route.as_ref())
    }

    /// The backend of a tcp frontend.
    pub fn default_backend(&self) -> Option<&Arc<Backend>> {
        self.default_route.as_ref().and_then(Route::backend)
    }
}
