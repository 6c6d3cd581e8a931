//! Request and response header rewriting: hop-by-hop headers are the
//! connection's own and never forwarded; X-Forwarded-* tell the server who
//! the client was.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including any that the
/// `Connection` header itself names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [&HeaderName; 7] = [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ];
    // One pass over the names (no hashing) finds the usual case — none
    // present — so only headers that are there get removed.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(&name)) {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION) {
        if let Ok(listed) = connection.to_str() {
            let named: Vec<HeaderName> = listed
                .split(',')
                .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
                .collect();
            for name in named {
                headers.remove(name);
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends the client to `X-Forwarded-For` and sets `-Proto` (`scheme`, the
/// one the client used) and `-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    let client = client.to_string();
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {client}"),
        _ => client,
    };
    // Only fails on bytes an IP address never contains, and earlier hops' text was valid already.
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

/// The request's host without port, for routing: from an absolute-form URI,
/// else the Host header.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(host) = uri.host() {
        return Some(host);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map(|(h, _)| &h[1..]);
    }
    Some(host.split_once(':').map_or(host, |(h, _)| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn forwarded_for_appends_to_earlier_hops() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        let host = HeaderValue::from_static("example.com");
        add_forwarded(
            &mut headers,
            "127.0.0.1".parse().unwrap(),
            "http",
            Some(&host),
        );
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "example.com");
    }

    #[test]
    fn host_is_taken_without_port_from_uri_or_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("Api.example.com:8080"),
        );
        let origin: http::Uri = "/x".parse().unwrap();
        assert_eq!(request_host(&origin, &headers), Some("Api.example.com"));
        let absolute: http::Uri = "http://other.example/x".parse().unwrap();
        assert_eq!(request_host(&absolute, &headers), Some("other.example"));
        headers.insert(header::HOST, HeaderValue::from_static("[::1]:80"));
        assert_eq!(request_host(&origin, &headers), Some("::1"));
    }
}
