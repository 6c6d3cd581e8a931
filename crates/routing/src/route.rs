//! A frontend's routes as the data plane reads them: what a route matches,
//! where it sends (a backend, a weighted split, a redirect), and the rules
//! it applies on the way, every backend already resolved.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use prometheus::IntCounter;
use zkgate_config::{AccessList, HeaderRules, HostPattern, SplitKey};
use zkgate_metrics::MirrorMetrics;

use crate::backend::Backend;

/// One route, or a frontend's default backend (a route matching everything).
pub struct Route {
    pub(crate) host: Option<HostPattern>,
    pub(crate) path_prefix: Option<Box<str>>,
    pub(crate) headers: Box<[(HeaderName, HeaderValue)]>,
    /// Which client addresses may use it.
    pub access: Option<AccessList>,
    /// Where its requests go.
    pub target: Target,
    /// What is done to them on the way; `None` when nothing is (the common
    /// case, which costs the data plane one test).
    pub rules: Option<Arc<Rules>>,
}

/// Where a route sends the requests it matches.
pub enum Target {
    /// One backend.
    Backend(Arc<Backend>),
    /// Several, by weight.
    Split(Split),
    /// None: zkgate answers with a redirect.
    Redirect(Redirect),
}

/// Backends sharing a route's requests by weight.
pub struct Split {
    /// What keeps a client on one side.
    pub key: SplitKey,
    sides: Box<[Side]>,
    /// The sum of the weights (above 0).
    total: u64,
}

/// One side of a split.
pub struct Side {
    backend: Arc<Backend>,
    /// The cumulative weight up to and including this side.
    upto: u64,
    /// `zkgate_route_split_requests_total{frontend,backend}`.
    requests: IntCounter,
}

impl Split {
    pub(crate) fn new(key: SplitKey, sides: Vec<(Arc<Backend>, u32, IntCounter)>) -> Self {
        let mut upto = 0;
        let sides = sides
            .into_iter()
            .map(|(backend, weight, requests)| {
                upto += u64::from(weight);
                Side {
                    backend,
                    upto,
                    requests,
                }
            })
            .collect();
        Split {
            key,
            sides,
            total: upto,
        }
    }

    /// The side of a request whose split key hashes to `key`, or of a
    /// request drawn at random without one. The same key lands on the same
    /// side while the weights stay; a moved weight moves only the keys of
    /// the share that changed hands.
    #[inline]
    pub fn pick(&self, key: Option<u64>) -> &Side {
        let point = match key {
            Some(hash) => hash % self.total,
            None => fastrand::u64(..self.total),
        };
        let side = self
            .sides
            .iter()
            .find(|side| point < side.upto)
            .unwrap_or(&self.sides[self.sides.len() - 1]);
        side
    }

    /// Its sides, in order.
    pub fn sides(&self) -> impl Iterator<Item = &Side> {
        self.sides.iter()
    }
}

impl Side {
    /// Its backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Counts a request sent to it (once the request is admitted).
    pub fn count(&self) {
        self.requests.inc();
    }
}

/// A redirect zkgate answers itself.
pub struct Redirect {
    /// `Location`, with `{host}` for the request's host.
    pub location: Box<str>,
    /// 301, 302, 303, 307 or 308.
    pub code: StatusCode,
    /// Append the request's path and query.
    pub keep_path: bool,
}

/// A route's rules for the requests it forwards.
pub struct Rules {
    /// The route's `path_prefix` and what replaces it.
    pub rewrite: Option<(Box<str>, Box<str>)>,
    /// Applied to the request the server gets.
    pub request_headers: HeaderRules,
    /// Applied to the server's answer the client gets.
    pub response_headers: HeaderRules,
    /// Copies of a share of the requests to another backend.
    pub mirror: Option<Mirror>,
}

/// Copies of a share of a route's requests to another backend.
pub struct Mirror {
    /// Where the copies go.
    pub backend: Arc<Backend>,
    /// Out of 100.
    pub percent: u8,
    /// `zkgate_route_mirrored_total` of the route's frontend.
    pub metrics: MirrorMetrics,
}

impl Route {
    pub(crate) fn matches<H: RequestHeaders + ?Sized>(
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

    /// A default backend: every request, no rules.
    pub(crate) fn default_to(backend: Arc<Backend>) -> Self {
        Route {
            host: None,
            path_prefix: None,
            headers: Box::new([]),
            access: None,
            target: Target::Backend(backend),
            rules: None,
        }
    }

    /// The backend of a route that sends to exactly one.
    pub fn backend(&self) -> Option<&Arc<Backend>> {
        match &self.target {
            Target::Backend(backend) => Some(backend),
            _ => None,
        }
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
