//! Where a request goes: its frontend in the current table, its route,
//! whether it is admitted, and the balancer's key and sticky server. Decided
//! here once for every wire adapter.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use zkgate_config::{Algorithm, SplitKey};
use zkgate_routing::balance::hash::{client_key, hash64};
use zkgate_routing::{
    Backend, Frontend, FrontendId, Mirror, Redirect, RoutingTable, Rules, Target,
};

use super::admission::{admit, Refused};
use super::compression::negotiate;
use super::edits::Edits;
use super::ids::{Ids, TRACEPARENT};
use super::keys::{self, RequestView};
use crate::Proxy;

/// Offers HTTP/3 on the answers of a frontend that serves it.
static ALT_SVC: http::HeaderName = http::header::ALT_SVC;

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
    /// The route's rules (path rewrite, mirror), if it has any.
    pub rules: Option<&'t Rules>,
    /// The mirror a copy of this request goes to, if it was drawn for one.
    pub mirror: Option<&'t Mirror>,
    /// The header fields changed on the request the server gets.
    pub request_edits: Edits<'t>,
    /// The header fields changed on the server's answer the client gets.
    pub response_edits: Edits<'t>,
    /// The request's id and trace, when the frontend sets request ids.
    pub ids: Option<Box<Ids>>,
    /// The coding for the answer, if the frontend compresses and the client
    /// accepts one (whether the answer is compressible is the answer's).
    pub compress: Option<Algorithm>,
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
    /// zkgate answers with a redirect to `location`.
    Redirect {
        frontend: &'t Arc<Frontend>,
        retired: bool,
        status: StatusCode,
        location: HeaderValue,
    },
    /// Its backend speaks a protocol the adapter asking cannot carry (the
    /// fast path and HTTP/2 servers): nothing was counted or admitted, so
    /// another adapter may decide it afresh.
    Elsewhere,
}

/// Decides what becomes of `request` from `client`, arriving at the
/// listener of frontend `id`, with `table` (loaded once for the whole
/// request, even if a new one is published meanwhile). `carries` says
/// whether the asking adapter can send to a backend; `compresses`, whether
/// it can compress answers.
pub fn decide<'t, R: RequestView>(
    proxy: &Proxy,
    table: &'t RoutingTable,
    id: FrontendId,
    client: IpAddr,
    request: &R,
    carries: impl Fn(&Backend) -> bool,
    compresses: bool,
) -> Decision<'t> {
    let Some((frontend, retired)) = frontend_of(table, id) else {
        return gone();
    };
    let route = frontend.select(request.host(), request.path(), request.headers());
    // Whether the adapter carries every backend the route may send to: a
    // split's side is drawn once, by whichever adapter carries them all
    // (drawn again after a side the adapter could not carry, the other
    // sides would get more than their weights).
    let carried = route.is_none_or(|route| match &route.target {
        Target::Backend(backend) => carries(backend),
        Target::Split(split) => split.sides().all(|side| carries(side.backend())),
        Target::Redirect(_) => true,
    });
    if !carried {
        return Decision::Elsewhere;
    }
    // The backend, if the route sends to one; a split's side is counted
    // only once the request is admitted.
    let (chosen, side) = match route.map(|r| &r.target) {
        Some(Target::Backend(backend)) => (Some(backend), None),
        Some(Target::Split(split)) => {
            let side = split.pick(split_hash(&split.key, request, client));
            (Some(side.backend()), Some(side))
        }
        Some(Target::Redirect(_)) | None => (None, None),
    };
    let compress = frontend
        .compression
        .as_ref()
        .and_then(|compression| negotiate(&compression.config, request));
    if compress.is_some() && chosen.is_some() && !compresses {
        return Decision::Elsewhere;
    }
    frontend.metrics.requests.inc();
    if let Err(refused) = admit(proxy, frontend, client, route) {
        return Decision::Refuse {
            frontend: Some(frontend),
            retired,
            refused,
        };
    }
    let Some(backend) = chosen else {
        return match route.map(|r| &r.target) {
            Some(Target::Redirect(redirect)) => redirect_to(frontend, retired, redirect, request),
            // `admit` refuses a request without a route.
            _ => gone(),
        };
    };
    if let Some(side) = side {
        side.count();
    }
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
    let rules = route.and_then(|route| route.rules.as_deref());
    let mut request_edits = Edits::of(rules.map(|r| &r.request_headers));
    let mut response_edits = Edits::of(rules.map(|r| &r.response_headers));
    let ids = frontend.request_id.as_ref().map(|header| {
        let ids = Ids::of(request, header);
        if ids.generated {
            request_edits.set_own(header, ids.request_id.clone());
        }
        if let Some(parent) = &ids.started {
            request_edits.set_own(&TRACEPARENT, parent.clone());
        }
        response_edits.set_own(header, ids.request_id.clone());
        Box::new(ids)
    });
    if let Some(alt_svc) = &frontend.alt_svc {
        response_edits.set_own(&ALT_SVC, alt_svc.clone());
    }
    let mirror = rules
        .and_then(|rules| rules.mirror.as_ref())
        .filter(|mirror| fastrand::u8(..100) < mirror.percent);
    Decision::Forward(Routed {
        frontend,
        retired,
        backend,
        key,
        sticky,
        forwarded_scheme,
        rules,
        mirror,
        request_edits,
        response_edits,
        ids,
        compress,
    })
}

/// The hash that places a request on one side of a split, or `None` to
/// draw it: a key absent from the request is drawn too.
fn split_hash<R: RequestView>(key: &SplitKey, request: &R, client: IpAddr) -> Option<u64> {
    // Not the balancers' seed: a split and a hashing backend behind it by
    // the same key must not be correlated.
    const SPLIT_SEED: u64 = 0x5b11_7c0f_fee0_d00d;
    let bytes = match key {
        SplitKey::Request => return None,
        SplitKey::Source => return Some(client_key(client) ^ SPLIT_SEED),
        SplitKey::Cookie(name) => keys::cookie(request, name)?,
        SplitKey::Header(name) => request.values(name).next()?,
    };
    Some(hash64(bytes, SPLIT_SEED))
}

/// The answer of a redirect route: its `location` with `{host}` replaced
/// by the request's host and, with `keep_path`, the request's path and
/// query appended. A request without a host cannot fill `{host}`: 400.
fn redirect_to<'t, R: RequestView>(
    frontend: &'t Arc<Frontend>,
    retired: bool,
    redirect: &Redirect,
    request: &R,
) -> Decision<'t> {
    let mut location = Vec::with_capacity(redirect.location.len() + 64);
    let mut parts = redirect.location.split("{host}");
    location.extend_from_slice(parts.next().unwrap_or_default().as_bytes());
    for part in parts {
        match request.host() {
            Some(host) => location.extend_from_slice(host),
            None => return refused(frontend, retired, StatusCode::BAD_REQUEST),
        }
        location.extend_from_slice(part.as_bytes());
    }
    if redirect.keep_path {
        let target = request.path_and_query();
        // `location` may end with the `/` the path starts with.
        let target = match location.last() {
            Some(b'/') => target.strip_prefix(b"/").unwrap_or(target),
            _ => target,
        };
        location.extend_from_slice(target);
    }
    match HeaderValue::from_bytes(&location) {
        Ok(location) => Decision::Redirect {
            frontend,
            retired,
            status: redirect.code,
            location,
        },
        Err(_) => refused(frontend, retired, StatusCode::BAD_REQUEST),
    }
}

fn refused(frontend: &Arc<Frontend>, retired: bool, status: StatusCode) -> Decision<'_> {
    Decision::Refuse {
        frontend: Some(frontend),
        retired,
        refused: Refused::with(status),
    }
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
