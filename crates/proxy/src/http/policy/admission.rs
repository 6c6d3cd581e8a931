//! Whether a request may go to a backend at all: the frontend's access list
//! and rate limit, a route (or default backend), and the route's access
//! list. Shared by every wire adapter.

use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;
use zkgate_routing::{Frontend, Route};

use crate::Proxy;

/// Why a request is answered by zkgate instead of a server.
pub struct Refused {
    pub status: StatusCode,
    /// For 429: how long until the client's bucket has a token again.
    pub retry_after: Option<Duration>,
}

impl Refused {
    pub fn with(status: StatusCode) -> Self {
        Refused {
            status,
            retry_after: None,
        }
    }
}

/// Whether a request from `client` whose route lookup gave `route` may
/// take it, or why not; refusals are counted in the frontend's metrics.
pub fn admit(
    proxy: &Proxy,
    frontend: &Frontend,
    client: IpAddr,
    route: Option<&Route>,
) -> Result<(), Refused> {
    if frontend
        .access
        .as_ref()
        .is_some_and(|access| !access.permits(client))
    {
        frontend.metrics.denied_access.inc();
        return Err(Refused::with(StatusCode::FORBIDDEN));
    }
    if let Some(limit) = frontend.rate_limit {
        if let Err(wait) = proxy.limits.take(frontend.id, client, limit) {
            frontend.metrics.denied_rate_limit.inc();
            return Err(Refused {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(wait),
            });
        }
    }
    let Some(route) = route else {
        return Err(Refused::with(StatusCode::SERVICE_UNAVAILABLE));
    };
    if route
        .access
        .as_ref()
        .is_some_and(|access| !access.permits(client))
    {
        frontend.metrics.denied_access.inc();
        return Err(Refused::with(StatusCode::FORBIDDEN));
    }
    Ok(())
}
