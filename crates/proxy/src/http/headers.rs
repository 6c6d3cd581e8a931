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

/// Hop-by-hop headers (RFC 9110 §7.6.1): the connection's own, never forwarded.
pub(crate) const HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Whether a field of this name (any case) is one of [`HOP_BY_HOP`].
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// What `HeaderValue` accepts: visible bytes, spaces, tabs and obs-text.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Removes hop-by-hop headers, including any that the `Connection` header
/// itself names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (comparisons, no hashing) notes which are
    // present; usually none or only `Connection: keep-alive`.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| *hop == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        remove_connection_options(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// The `content-length` a message states, if it states one number (the
/// request core refuses a request with any other; a server's answer with
/// any other never gets this far).
pub fn stated_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether a server's connection may carry another request after this
/// response (RFC 9112 §9.3): HTTP/1.1, no `close` among its `Connection`
/// options, and a body whose end is beyond doubt: its length stated or
/// chunked, and not the answer to a `HEAD` nor a 204 or 304 (whose body a
/// broken server might send anyway, to be read as the next client's
/// response). The fast path decides the same (`fast/framing.rs`).
pub fn keeps_alive(
    version: http::Version,
    status: http::StatusCode,
    headers: &HeaderMap,
    head_request: bool,
) -> bool {
    let closes = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
    let bodiless = head_request
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let length = headers.contains_key(header::CONTENT_LENGTH);
    let coded = headers.contains_key(header::TRANSFER_ENCODING);
    // A server that framed its answer two ways is not trusted with another.
    let delimited = length != coded;
    version == http::Version::HTTP_11 && !closes && !bodiless && delimited
}

/// Whether a server's response is framed so that where it ends is beyond
/// dispute (RFC 9112 §6.1, §6.3): one `Content-Length` of digits only,
/// transfer codings that are tokens with `chunked` only last and once, and
/// no `Content-Length` beside codings that do not end with `chunked`.
/// The fast path refuses the same responses (`fast/framing.rs`).
pub fn response_framing_is_sound(headers: &HeaderMap) -> bool {
    // One length, of digits only (`5, 5` and `+5` included: refused).
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = lengths.next();
    if let Some(length) = length {
        let digits = !length.is_empty() && length.as_bytes().iter().all(u8::is_ascii_digit);
        if !digits || length.len() > 19 || lengths.next().is_some() {
            return false;
        }
    }
    let mut chunked_last = None;
    let codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    for coding in codings {
        if chunked_last == Some(true) || !is_token(coding) {
            return false;
        }
        chunked_last = Some(coding.eq_ignore_ascii_case(b"chunked"));
    }
    // Transfer-Encoding wins over Content-Length (which is then dropped),
    // but only a chunked one says where the body ends.
    !(chunked_last == Some(false) && length.is_some())
}

/// Whether a field of this name may not come in trailers: it frames the
/// message, routes it or manages the connection (what HAProxy refuses in
/// trailers too); a peer that merged it into the head would read another
/// message than zkgate.
pub(crate) fn is_forbidden_in_trailers(name: &HeaderName) -> bool {
    name == header::HOST || name == header::CONTENT_LENGTH || HOP_BY_HOP.contains(&name)
}

/// Whether `bytes` is an HTTP token (RFC 9110 §5.6.2): a name without
/// spaces, separators or parameters.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Removes the headers a `Connection` header names, other than the
/// hop-by-hop ones (removed anyway) and `close`.
fn remove_connection_options(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(listed) = value.to_str() else { continue };
        for token in listed.split(',').map(str::trim) {
            let known = token.eq_ignore_ascii_case("close")
                || HOP_BY_HOP
                    .iter()
                    .any(|hop| token.eq_ignore_ascii_case(hop.as_str()));
            // The message's framing and its host are never the
            // connection's own, whatever `Connection` says.
            let end_to_end = ["content-length", "transfer-encoding", "host"]
                .iter()
                .any(|name| token.eq_ignore_ascii_case(name));
            if known || end_to_end || token.is_empty() {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// `client` as an `X-Forwarded-For` entry.
pub fn client_address_value(client: IpAddr) -> HeaderValue {
    // An address's text is always a valid header value.
    HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value")
}

/// Appends the client (`client`, see [`client_address_value`]) to
/// `X-Forwarded-For` and sets `-Proto` (`scheme`, the one the client used)
/// and `-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    // Every earlier hop's entry, in order, as the fast path writes them.
    let mut joined = Vec::new();
    for earlier in headers.get_all(&X_FORWARDED_FOR) {
        if !earlier.is_empty() {
            joined.extend_from_slice(earlier.as_bytes());
            joined.extend_from_slice(b", ");
        }
    }
    let forwarded_for = if joined.is_empty() {
        Some(client.clone())
    } else {
        joined.extend_from_slice(client.as_bytes());
        HeaderValue::from_bytes(&joined).ok()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
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

        // Several Connection headers, `close`, odd spacing and case.
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static(" X-Other ,Upgrade"),
        );
        headers.insert("x-other", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::ACCEPT));

        // None present: untouched.
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn forwarded_for_appends_to_earlier_hops() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        let host = HeaderValue::from_static("example.com");
        let client = client_address_value("127.0.0.1".parse().unwrap());
        add_forwarded(&mut headers, &client, "http", Some(&host));
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "example.com");

        // Every earlier field, in order, as the fast path joins them.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static(""));
        headers.append("x-forwarded-for", HeaderValue::from_static("192.0.2.2"));
        add_forwarded(&mut headers, &client, "http", None);
        let joined: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(joined, ["192.0.2.1, 192.0.2.2, 127.0.0.1"]);
    }
}
