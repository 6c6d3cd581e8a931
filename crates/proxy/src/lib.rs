//! zkgate's data plane. It only reads: every connection or request loads the
//! current [`RoutingTable`] once and never waits on the control plane.

mod accept;
mod access_log;
mod connections;
mod dial;
pub mod handover;
mod handshake;
mod http;
mod io;
mod limits;
pub mod proxy_protocol;
mod stream;
mod tcp;
mod tunnel;
mod workers;

use std::sync::Arc;

use arc_swap::ArcSwap;
use zkgate_routing::RoutingTable;

pub use accept::{bind, bind_per_worker, Listener};
pub use access_log::AccessLog;
pub use connections::Connections;
pub use handover::Inherited;
pub use http::h3::{bind_udp, QuicListener};
pub use workers::Workers;

/// What every listener and connection shares: the published table and the
/// process-wide connection tracker. A handle: cloning it (once per
/// connection) is one reference count, and it takes one word in a
/// connection's state.
#[derive(Clone)]
pub struct Proxy(Arc<Shared>);

/// What a [`Proxy`] handle points to.
pub struct Shared {
    /// The routing table in service; replaced as a whole by the control plane.
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// Open client connections, for graceful shutdown.
    pub connections: Connections,
    /// Tells the control plane the table went stale (a server was ejected).
    pub changed: Arc<tokio::sync::Notify>,
    /// Where requests and connections are logged, if anywhere.
    pub access_log: Option<Arc<AccessLog>>,
    /// Per-client connection counts and rate buckets.
    pub(crate) limits: Arc<limits::ClientLimits>,
}

impl Proxy {
    /// A data plane serving `table`, logging to `access_log` if any.
    pub fn new(table: Arc<ArcSwap<RoutingTable>>, access_log: Option<Arc<AccessLog>>) -> Self {
        Proxy(Arc::new(Shared {
            table,
            connections: Connections::default(),
            changed: Arc::new(tokio::sync::Notify::new()),
            access_log,
            limits: Arc::default(),
        }))
    }
}

impl std::ops::Deref for Proxy {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
