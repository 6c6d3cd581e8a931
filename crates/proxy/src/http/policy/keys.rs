//! The host a request is for, the key a hashing backend places it by, the
//! sticky-session cookie, and the request fields routing and balancing
//! read, whichever wire adapter produced the request.

use std::net::{IpAddr, SocketAddr};

use http::{header, HeaderMap, HeaderName, Request};
use zkgate_config::Balance;
use zkgate_routing::balance::hash::{client_key, hash64, SEED};
use zkgate_routing::{Backend, RequestHeaders};

/// A request as routing and balancing see it, whichever wire adapter read
/// it: its host, path and headers.
pub trait RequestView {
    /// What route header matches look at.
    type Headers: RequestHeaders + ?Sized;
    /// The host to route by, without its port.
    fn host(&self) -> Option<&[u8]>;
    /// The path, without the query.
    fn path(&self) -> &[u8];
    /// The path and the query, as the request's target has them.
    fn path_and_query(&self) -> &[u8];
    /// The headers, for route matches.
    fn headers(&self) -> &Self::Headers;
    /// The values of header `name`, in order.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl<B> RequestView for Request<B> {
    type Headers = HeaderMap;

    fn host(&self) -> Option<&[u8]> {
        request_host(self.uri(), self.headers())
    }

    fn path(&self) -> &[u8] {
        self.uri().path().as_bytes()
    }

    fn path_and_query(&self) -> &[u8] {
        self.uri()
            .path_and_query()
            .map_or(b"/", |p| p.as_str().as_bytes())
    }

    fn headers(&self) -> &HeaderMap {
        Request::headers(self)
    }

    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers()
            .get_all(name)
            .into_iter()
            .map(|value| value.as_bytes())
    }
}

/// The key hash for `balance`, or `None` when it does not hash or the request
/// has no such key (then the backend falls back to round robin).
pub fn hash_key<R: RequestView>(balance: &Balance, request: &R, client: IpAddr) -> Option<u64> {
    let bytes = match balance {
        Balance::Source => return Some(client_key(client)),
        Balance::Uri => request.path(),
        Balance::Header(name) => request.values(name).next()?,
        Balance::Cookie(name) => cookie(request, name)?,
        _ => return None,
    };
    Some(hash64(bytes, SEED))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a, R: RequestView>(request: &'a R, name: &str) -> Option<&'a [u8]> {
    request
        .values(&header::COOKIE)
        .flat_map(|value| value.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
}

/// The `Set-Cookie` value that pins the client to `server` for the next
/// requests, when `backend` has sticky sessions and the request's own
/// cookie did not already name that server (`sticky`).
pub fn sticky_cookie(
    backend: &Backend,
    sticky: Option<SocketAddr>,
    server: SocketAddr,
) -> Option<String> {
    let name = backend.sticky_cookie.as_deref()?;
    if sticky == Some(server) {
        return None;
    }
    let server = backend.servers.iter().find(|s| s.address() == server)?;
    Some(format!(
        "{name}={}; Path=/; HttpOnly",
        backend.sticky_value(server)
    ))
}

/// Whether a request's target has a form its method may use (RFC 9112
/// §3.2): a path (`/…`) or an absolute URI (`http://host/…`) for any
/// method, `*` for `OPTIONS` only. A bare authority (`host:port`, or
/// `admin`) is CONNECT's form, which zkgate does not serve; read as
/// anything else it would become the request's host.
pub fn target_is_valid<B>(request: &Request<B>) -> bool {
    let uri = request.uri();
    match (uri.scheme(), uri.authority()) {
        (Some(_), Some(_)) => true,
        (None, None) if uri.path() == "*" => request.method() == http::Method::OPTIONS,
        (None, None) => uri.path().starts_with('/'),
        _ => false,
    }
}

/// Whether a request names its host more than once, or in two ways that
/// disagree: two `Host` headers, or a `Host` that differs from the
/// authority of an absolute-form target. (Over HTTP/2, `:authority` wins.)
/// zkgate routes by one; a server honouring the other would reach a route
/// whose access rules the request never passed. Such a request gets a 400
/// (RFC 9112 §3.2), as HAProxy answers it.
pub fn host_is_ambiguous<B>(request: &Request<B>) -> bool {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return true;
    }
    let (Some(authority), Some(host)) = (request.uri().authority(), first) else {
        return false;
    };
    if request.version() >= http::Version::HTTP_2 {
        // HTTP/2's `:authority` is the host; a `host` beside it is not
        // read, and the server gets the authority (RFC 9113 §8.3.1, as
        // HAProxy's h2_desync_attacks case c6 expects).
        return false;
    }
    // Compared as RFC 9110 §4.2.3 normalises them: names without case,
    // userinfo left out, an empty or absent port read as the scheme's.
    let default_port = match request.uri().scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => 443,
        _ => 80,
    };
    let target = host_and_port(
        authority.as_str().rsplit('@').next().unwrap_or(""),
        default_port,
    );
    let named = std::str::from_utf8(host.as_bytes())
        .ok()
        .and_then(|host| host_and_port(host, default_port));
    match (target, named) {
        (Some((a, a_port)), Some((b, b_port))) => !a.eq_ignore_ascii_case(b) || a_port != b_port,
        _ => true,
    }
}

/// The `Host` a server gets for a target's `authority` (an absolute-form
/// URI's, or HTTP/2's `:authority`): without userinfo, and without a port
/// that is empty or the scheme's default (RFC 3986 §6.2.3), so that
/// `http://a:80/` and `http://a/` reach a server alike, as HAProxy's
/// scheme-based normalisation does.
pub fn normalized_authority<'a>(scheme: Option<&str>, authority: &'a str) -> &'a str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default = match scheme {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => ":443",
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => ":80",
        _ => return authority,
    };
    let bare = authority
        .strip_suffix(default)
        .or_else(|| authority.strip_suffix(':'))
        .unwrap_or(authority);
    // `[::1]:80` keeps its brackets; a name never ends in `]` otherwise.
    if bare.starts_with('[') && !bare.ends_with(']') {
        return authority;
    }
    bare
}

/// `host[:port]` (IPv6 literals in brackets) as a name and a port, the
/// port `default` when absent or empty.
fn host_and_port(text: &str, default: u16) -> Option<(&str, u16)> {
    let (name, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let (name, rest) = v6.split_once(']')?;
            (name, rest.strip_prefix(':').unwrap_or(rest))
        }
        None => match text.rsplit_once(':') {
            Some((name, port)) => (name, port),
            None => (text, ""),
        },
    };
    let port = if port.is_empty() {
        default
    } else {
        port.parse().ok()?
    };
    Some((name, port))
}

/// The request's host without port, for routing: from an absolute-form URI,
/// else the Host header.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a [u8]> {
    if let Some(host) = uri.host() {
        return Some(host.as_bytes());
    }
    host_name(headers.get(header::HOST)?.as_bytes())
}

/// A `Host` value without its port: `example.com:8080` → `example.com`,
/// `[::1]:80` → `::1`; `None` for an IPv6 literal without its `]`. Bytes,
/// not text: routing compares ASCII names, and validating UTF-8 on every
/// request cost more than the rest of this.
pub fn host_name(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((b'[', v6)) => v6.iter().position(|&b| b == b']').map(|end| &v6[..end]),
        _ => Some(match value.iter().position(|&b| b == b':') {
            Some(colon) => &value[..colon],
            None => value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_default_port_is_left_out_of_the_host() {
        let cases = [
            (Some("http"), "hostname:80", "hostname"),
            (Some("http"), "hostname:8080", "hostname:8080"),
            (Some("https"), "hostname:443", "hostname"),
            (Some("https"), "hostname:80", "hostname:80"),
            (Some("http"), "hostname:", "hostname"),
            (Some("http"), "user@hostname:80", "hostname"),
            (Some("http"), "[::1]:80", "[::1]"),
            (Some("http"), "[::1]", "[::1]"),
            (None, "hostname:80", "hostname:80"),
        ];
        for (scheme, authority, host) in cases {
            assert_eq!(normalized_authority(scheme, authority), host, "{authority}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let request = Request::get("/")
            .header(header::COOKIE, "a=1; session=abc; sessionx=no")
            .header(header::COOKIE, "other=2")
            .body(())
            .unwrap();
        assert_eq!(cookie(&request, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie(&request, "other"), Some(&b"2"[..]));
        assert_eq!(cookie(&request, "missing"), None);
    }

    #[test]
    fn keys_follow_the_algorithm_and_are_absent_without_the_field() {
        let request = Request::get("/a/b?q=1")
            .header("x-user", "u1")
            .body(())
            .unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            hash_key(&Balance::Uri, &request, ip),
            Some(hash64(b"/a/b", SEED))
        );
        assert_eq!(
            hash_key(
                &Balance::Header(http::HeaderName::from_static("x-user")),
                &request,
                ip
            ),
            Some(hash64(b"u1", SEED))
        );
        assert_eq!(hash_key(&Balance::Cookie("s".into()), &request, ip), None);
        assert_eq!(hash_key(&Balance::RoundRobin, &request, ip), None);
        assert_eq!(
            hash_key(&Balance::Source, &request, ip),
            hash_key(
                &Balance::Source,
                &request,
                "::ffff:10.0.0.1".parse().unwrap()
            )
        );
    }

    #[test]
    fn host_is_taken_without_port_from_uri_or_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("Api.example.com:8080"),
        );
        let origin: http::Uri = "/x".parse().unwrap();
        assert_eq!(
            request_host(&origin, &headers),
            Some(&b"Api.example.com"[..])
        );
        let absolute: http::Uri = "http://other.example/x".parse().unwrap();
        assert_eq!(
            request_host(&absolute, &headers),
            Some(&b"other.example"[..])
        );
        headers.insert(header::HOST, HeaderValue::from_static("[::1]:80"));
        assert_eq!(request_host(&origin, &headers), Some(&b"::1"[..]));
    }

    #[test]
    fn host_names_lose_their_port() {
        for (value, name) in [
            (&b"example.com"[..], Some(&b"example.com"[..])),
            (b"example.com:8080", Some(b"example.com")),
            (b"[::1]:80", Some(b"::1")),
            (b"[::1]", Some(b"::1")),
            (b"[::1", None),
            (b"", Some(b"")),
        ] {
            assert_eq!(host_name(value), name, "{}", value.escape_ascii());
        }
    }
}
