//! The common stream, a bodiless `GET` or `HEAD`, handed to the request
//! core's lane (`full::lane`) as its decoded fields: routed, sent to an
//! HTTP/1.1 server and answered with no `http::Request` or header map in
//! between. The lane takes only what the core's way would carry the same:
//! an authority that is the host (no `host` field beside it), a path, no
//! field that frames a body or expects a `100`, at most one `cookie`.

use http::uri::{Authority, PathAndQuery};
use http::{HeaderName, Method, Request};
use zkgate_routing::RequestHeaders;

use super::head::Fields;
use super::hpack;
use crate::http::full::{Encode, LaneRequest};
use crate::http::policy::RequestView;

/// A stream's request as the lane reads it.
pub(super) struct Lane {
    fields: Fields,
    /// `:authority` and `:path`, parsed as the core's `Uri` parses them,
    /// so that routing sees the host and path it would.
    authority: Authority,
    path: PathAndQuery,
}

/// A lane request's authority and path, parsed as the core's `Uri`
/// parses them, so that routing sees the host and path it would.
pub(super) struct Target {
    authority: Authority,
    path: PathAndQuery,
}

impl Lane {
    /// The target of the lane's request, if `fields` (of a stream its
    /// HEADERS ended) make one it carries.
    pub fn takes(fields: &Fields) -> Option<Target> {
        let (cookies, hosts) = fields.cookies_and_hosts();
        let plain = fields.refused().is_none()
            && matches!(fields.method(), Some(&Method::GET | &Method::HEAD))
            && !fields.has_protocol()
            && fields.scheme().is_some()
            && fields.path().is_some_and(|path| path.starts_with('/'))
            && hosts == 0
            && cookies <= 1
            && !fields
                .regular()
                .any(|(name, _)| name == b"content-length" || name == b"expect");
        if !plain {
            return None;
        }
        Some(Target {
            authority: Authority::try_from(fields.authority()?).ok()?,
            path: PathAndQuery::try_from(fields.path()?).ok()?,
        })
    }

    pub fn new(fields: Fields, target: Target) -> Lane {
        Lane {
            fields,
            authority: target.authority,
            path: target.path,
        }
    }
}

impl RequestHeaders for Lane {
    fn has_value(&self, name: &HeaderName, value: &[u8]) -> bool {
        self.values(name).any(|v| v == value)
    }
}

impl RequestView for Lane {
    type Headers = Self;

    fn host(&self) -> Option<&[u8]> {
        Some(self.authority.host().as_bytes())
    }

    fn path(&self) -> &[u8] {
        self.path.path().as_bytes()
    }

    fn path_and_query(&self) -> &[u8] {
        self.path.as_str().as_bytes()
    }

    fn headers(&self) -> &Self {
        self
    }

    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.as_str().as_bytes();
        self.fields
            .regular()
            .filter(move |(n, _)| *n == name)
            .map(|(_, value)| value)
    }
}

impl LaneRequest for Lane {
    fn method(&self) -> &Method {
        self.fields.method().unwrap_or(&Method::GET)
    }

    fn scheme(&self) -> &str {
        self.fields.scheme().unwrap_or_default()
    }

    fn authority(&self) -> &str {
        self.authority.as_str()
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.regular()
    }

    fn into_request(self) -> Option<Request<()>> {
        self.fields.into_request().ok()
    }
}

/// Answers' heads as HPACK header blocks.
pub(super) struct Hpack;

impl Encode for Hpack {
    fn status(status: u16, block: &mut Vec<u8>) {
        hpack::status(status, block);
    }

    fn field(name: &str, value: &[u8], block: &mut Vec<u8>) {
        // HTTP/2 field names are lower case (RFC 9113 §8.2.1); servers
        // write theirs as they like. Most names fit the stack.
        let name = name.as_bytes();
        if !name.iter().any(u8::is_ascii_uppercase) {
            return hpack::field(name, value, block);
        }
        let mut short = [0u8; 64];
        match short.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name);
                lower.make_ascii_lowercase();
                hpack::field(lower, value, block);
            }
            None => hpack::field(&name.to_ascii_lowercase(), value, block),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_field_names_go_out_in_lower_case_however_long() {
        let long = format!("X-{}", "Long".repeat(30));
        let mut block = Vec::new();
        Hpack::field("Content-Type", b"text/plain", &mut block);
        Hpack::field(&long, b"1", &mut block);
        Hpack::field("x-plain", b"2", &mut block);
        let decoded = loona_hpack::Decoder::new().decode(&block).unwrap();
        let names: Vec<String> = decoded
            .into_iter()
            .map(|(name, _)| String::from_utf8(name).unwrap())
            .collect();
        assert_eq!(names, ["content-type", &long.to_lowercase(), "x-plain"]);
    }
}
