//! A route of an http frontend: which requests it matches, where they go
//! (a backend, a weighted split, or a redirect answered by zkgate), and the
//! rules applied to them on the way.

use http::{HeaderName, HeaderValue, StatusCode};

use super::AccessList;

/// One route of an http frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Host to match, exact or `*.suffix`.
    pub host: Option<HostPattern>,
    /// Path prefix to match.
    pub path_prefix: Option<String>,
    /// Request headers that must be present with exactly these values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Which client addresses may use this route.
    pub access: Option<AccessList>,
    /// Where matching requests go.
    pub target: RouteTarget,
    /// What is done to them on the way.
    pub rules: RouteRules,
}

impl RouteConfig {
    /// Every backend the route names (its target's and its mirror's), each
    /// with the field that names it, like `split[1].backend`.
    pub fn backends(&self) -> Vec<(String, &str)> {
        let mut named = match &self.target {
            RouteTarget::Backend(name) => vec![("backend".to_owned(), name.as_str())],
            RouteTarget::Split { sides, .. } => sides
                .iter()
                .enumerate()
                .map(|(i, side)| (format!("split[{i}].backend"), side.backend.as_str()))
                .collect(),
            RouteTarget::Redirect(_) => Vec::new(),
        };
        if let Some(mirror) = &self.rules.mirror {
            named.push(("mirror.backend".to_owned(), mirror.backend.as_str()));
        }
        named
    }
}

/// Where a route sends the requests it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    /// `backend: NAME`
    Backend(String),
    /// `split: [{ backend, weight }, …]` with `split_key`.
    Split {
        /// The sides, with their weights (at least one above 0).
        sides: Vec<SplitSide>,
        /// What keeps a client on one side.
        key: SplitKey,
    },
    /// `redirect:` answered by zkgate without contacting a server.
    Redirect(Redirect),
}

/// One side of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSide {
    /// The backend.
    pub backend: String,
    /// Its share of the route's requests, relative to the other sides.
    pub weight: u32,
}

/// `split_key:` what decides a request's side of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitKey {
    /// No key: each request drawn anew by the weights.
    Request,
    /// `cookie(NAME)`: the cookie's value (drawn anew when absent).
    Cookie(String),
    /// `header(NAME)`: the header's value (drawn anew when absent).
    Header(HeaderName),
    /// `source`: the client's address.
    Source,
}

/// `redirect:` of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The `Location`, where `{host}` stands for the request's host
    /// (without its port).
    pub location: String,
    /// 301, 302 (the default), 303, 307 or 308.
    pub code: StatusCode,
    /// Append the request's path and query to `location`.
    pub keep_path: bool,
}

/// What a route does to the requests it forwards and their answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteRules {
    /// `rewrite.path_prefix`: replaces the matched `path_prefix`.
    pub rewrite_path_prefix: Option<String>,
    /// `request_headers:`
    pub request_headers: HeaderRules,
    /// `response_headers:`
    pub response_headers: HeaderRules,
    /// `mirror:`
    pub mirror: Option<Mirror>,
}

/// `request_headers:` or `response_headers:` of a route: applied in the
/// order remove, set, add.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderRules {
    /// Replace every field of the name with this one (added if absent).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Add a field, keeping those of the name already there.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove every field of the name.
    pub remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Every name a rule touches.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        let set = self.set.iter().chain(&self.add).map(|(name, _)| name);
        set.chain(&self.remove)
    }
}

/// `mirror:` of a route: a copy of a share of its requests goes to another
/// backend, whose answers are discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The backend copies go to.
    pub backend: String,
    /// The share of requests copied, 0 to 100.
    pub percent: u8,
}

/// A route's `host:` pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: matches any name ending in it.
    Suffix(String),
}

impl HostPattern {
    /// Whether a request's host (without port, any case) matches. It is
    /// taken as the bytes the client sent: names are ASCII.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}
