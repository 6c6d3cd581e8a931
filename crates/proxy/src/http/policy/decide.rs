//! Where a request goes: its frontend in the current table, its route,
//! whether it is admitted, and the balancer's key and sticky server. Decided
//! here once for every wire adapter.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use zkgate_routing::{Backend, Frontend, FrontendId, RoutingTable};

use super::admission::{admit, Refused};
use super::keys::{self, RequestView};
use crate::Proxy;

/// A request admitted to a backend.
pub struct Routed<'t> {
    pub frontend: &'t Arc<Frontend>,
    /// A reload removed the frontend: the request is served as it last was,
    /// and the connection closes after it (HTTP/1) or after its streams (HTTP/2).
    pub retired: bool,
    pub backend: &'t Arc<Backend>,
    /// The balancer's key, for hashing backends.
    pub key: Option<u64>,
    /// The usable server a sticky-session cookie names.
    pub sticky: Option<SocketAddr>,
    /// The scheme servers are told in `X-Forwarded-Proto`, when forwarded
    /// headers are on.
    pub forwarded_scheme: Option<&'static str>,
}

/// What becomes of a request.
pub enum Decision<'t> {
    /// It goes to a server of a backend.
    Forward(Routed<'t>),
    /// zkgate answers it itself. `frontend` is `None` when the listener's
    /// frontend is gone from the table.
    Refuse {
        frontend: Option<&'t Arc<Frontend>>,
        retired: bool,
        refused: Refused,
    },
    /// Its backend speaks a protocol the adapter asking cannot carry (the
    /// fast path and HTTP/2 servers): nothing was counted or admitted, so
    /// another adapter may decide it afresh.
    Elsewhere,
}

/// Decides what becomes of `request` from `client`, arriving at the
/// listener of frontend `id`, with `table` (loaded once for the whole
/// request, even if a new one is published meanwhile). `carries` says
/// whether the asking adapter can send to a backend.
pub fn decide<'t, R: RequestView>(
    proxy: &Proxy,
    table: &'t RoutingTable,
    id: FrontendId,
    client: IpAddr,
    request: &R,
    carries: impl FnOnce(&Backend) -> bool,
) -> Decision<'t> {
    let Some((frontend, retired)) = frontend_of(table, id) else {
        return gone();
    };
    let selected = frontend.select(request.host(), request.path(), request.headers());
    if selected.is_some_and(|(backend, _)| !carries(backend)) {
        return Decision::Elsewhere;
    }
    frontend.metrics.requests.inc();
    let backend = match admit(proxy, frontend, client, selected) {
        Ok(backend) => backend,
        Err(refused) => {
            return Decision::Refuse {
                frontend: Some(frontend),
                retired,
                refused,
            }
        }
    };
    let key = keys::hash_key(&backend.balance, request, client);
    let sticky = backend
        .sticky_cookie
        .as_deref()
        .and_then(|name| keys::cookie(request, name))
        .and_then(|value| backend.sticky(value))
        .map(|server| server.address());
    let forwarded_scheme = frontend
        .forwarded_headers
        .then_some(if frontend.tls.is_some() {
            "https"
        } else {
            "http"
        });
    Decision::Forward(Routed {
        frontend,
        retired,
        backend,
        key,
        sticky,
        forwarded_scheme,
    })
}

/// Refuses a request its adapter found malformed (`status`, 400 and the
/// like): counted on its frontend as every request is, then answered.
pub fn refuse_malformed(
    table: &RoutingTable,
    id: FrontendId,
    status: http::StatusCode,
) -> Decision<'_> {
    let Some((frontend, retired)) = frontend_of(table, id) else {
        return gone();
    };
    frontend.metrics.requests.inc();
    Decision::Refuse {
        frontend: Some(frontend),
        retired,
        refused: Refused::with(status),
    }
}

/// The frontend of a listener, and whether a reload retired it.
fn frontend_of(table: &RoutingTable, id: FrontendId) -> Option<(&Arc<Frontend>, bool)> {
    match table.frontend(id) {
        Some(frontend) => Some((frontend, false)),
        None => table.retired(id).map(|frontend| (frontend, true)),
    }
}

/// The answer when the listener's frontend is gone from the table.
fn gone<'t>() -> Decision<'t> {
    Decision::Refuse {
        frontend: None,
        retired: false,
        refused: Refused::with(http::StatusCode::SERVICE_UNAVAILABLE),
    }
}
