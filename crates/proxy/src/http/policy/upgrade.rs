//! Whether a request may switch protocols, and whether a server's
//! answer completes the switch. A switch turns the stream into a raw
//! tunnel that no route rule sees again, so it is granted only as RFC 9110
//! §7.8, RFC 6455 (WebSocket) and RFC 8441 (the same over HTTP/2, as an
//! extended `CONNECT` with a `:protocol`) describe it.

use base64::Engine as _;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

pub static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
pub static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// The protocol an HTTP/2 extended `CONNECT` (RFC 8441) asks for; `None`
/// for any other request. Over HTTP/2 the WebSocket key and accept are
/// not used (RFC 8441 §5), so none is required.
pub fn requested_h2(
    method: &Method,
    protocol: Option<&str>,
) -> Result<Option<HeaderValue>, StatusCode> {
    match protocol {
        Some(_) if method != Method::CONNECT => Err(StatusCode::BAD_REQUEST),
        Some(protocol) => HeaderValue::from_str(protocol)
            .map(Some)
            .map_err(|_| StatusCode::BAD_REQUEST),
        None => Ok(None),
    }
}

/// The protocol a request asks to switch to, if it asks (`Connection:
/// upgrade` and one `Upgrade` protocol); a 400 for an ask that cannot be
/// granted safely: several protocols at once, or a WebSocket handshake
/// without its key. An `h2c` upgrade is not granted (zkgate speaks h2c to
/// clients that start with it): the request goes on as an ordinary one,
/// its `Upgrade` dropped with the other hop-by-hop headers.
pub fn requested(headers: &HeaderMap) -> Result<Option<HeaderValue>, StatusCode> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    if !asks {
        return Ok(None);
    }
    let mut protocols = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty());
    let Some(protocol) = protocols.next() else {
        return Ok(None);
    };
    if protocols.next().is_some() {
        return Err(StatusCode::BAD_REQUEST);
    }
    if protocol.eq_ignore_ascii_case(b"h2c") {
        return Ok(None);
    }
    if is_websocket(protocol) && !headers.contains_key(&SEC_WEBSOCKET_KEY) {
        return Err(StatusCode::BAD_REQUEST);
    }
    HeaderValue::from_bytes(protocol)
        .map(Some)
        .map_err(|_| StatusCode::BAD_REQUEST)
}

/// Whether an HTTP/1.1 server's `101` to a request for `protocol`
/// completes the switch: for WebSocket, only with `Sec-WebSocket-Accept`
/// (RFC 6455 §4.1), and the right one when zkgate chose the key (`ours`,
/// for a client that spoke HTTP/2); anything else is a 502.
pub fn switch_accepted(
    protocol: &HeaderValue,
    response: &HeaderMap,
    ours: Option<&HeaderValue>,
) -> bool {
    if !is_websocket(protocol.as_bytes()) {
        return true;
    }
    match (response.get(&SEC_WEBSOCKET_ACCEPT), ours) {
        (None, _) => false,
        (Some(accept), Some(key)) => *accept == websocket_accept(key.as_bytes()),
        (Some(_), None) => true,
    }
}

pub fn is_websocket(protocol: &[u8]) -> bool {
    protocol.eq_ignore_ascii_case(b"websocket")
}

/// A WebSocket handshake for an HTTP/1.1 server on behalf of an HTTP/2
/// client, which sent no key (RFC 8441 §5): a fresh key (RFC 6455 §4.1:
/// 16 random bytes, base64) and the version, if the client named none.
pub fn add_websocket_key(headers: &mut HeaderMap) -> HeaderValue {
    let nonce: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let key = HeaderValue::from_str(&key).expect("base64 is a valid header value");
    headers.insert(&SEC_WEBSOCKET_KEY, key.clone());
    headers
        .entry(&SEC_WEBSOCKET_VERSION)
        .or_insert(HeaderValue::from_static("13"));
    key
}

/// The `Sec-WebSocket-Accept` that answers `key` (RFC 6455 §4.2.2): the
/// base64 SHA-1 of the key and the protocol's GUID.
pub fn websocket_accept(key: &[u8]) -> HeaderValue {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    HeaderValue::from_str(&accept).expect("base64 is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_one_well_formed_protocol_is_granted() {
        let ws = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ];
        assert_eq!(
            requested(&headers(&ws)),
            Ok(Some(HeaderValue::from_static("websocket")))
        );
        // Without `Connection: upgrade`, `Upgrade` is just a hop-by-hop header.
        assert_eq!(requested(&headers(&[("upgrade", "websocket")])), Ok(None));
        let keyless = [("connection", "upgrade"), ("upgrade", "WebSocket")];
        assert_eq!(requested(&headers(&keyless)), Err(StatusCode::BAD_REQUEST));
        let two = [
            ("connection", "upgrade"),
            ("upgrade", "websocket, foo"),
            ("sec-websocket-key", "k"),
        ];
        assert_eq!(requested(&headers(&two)), Err(StatusCode::BAD_REQUEST));
        let two_lines = [
            ("connection", "upgrade"),
            ("upgrade", "foo"),
            ("upgrade", "bar"),
        ];
        assert_eq!(
            requested(&headers(&two_lines)),
            Err(StatusCode::BAD_REQUEST)
        );
        let h2c = [
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ];
        assert_eq!(requested(&headers(&h2c)), Ok(None));
    }

    #[test]
    fn a_websocket_switch_needs_the_servers_accept() {
        let ws = HeaderValue::from_static("websocket");
        assert!(!switch_accepted(&ws, &headers(&[]), None));
        assert!(switch_accepted(
            &ws,
            &headers(&[("sec-websocket-accept", "a")]),
            None
        ));
        assert!(switch_accepted(
            &HeaderValue::from_static("foo"),
            &headers(&[]),
            None
        ));
        // With zkgate's own key, the accept must be the one that answers it.
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let right = [("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")];
        assert!(switch_accepted(&ws, &headers(&right), Some(&key)));
        let wrong = [("sec-websocket-accept", "invalid_key")];
        assert!(!switch_accepted(&ws, &headers(&wrong), Some(&key)));
    }

    #[test]
    fn the_accept_is_rfc_6455s() {
        // The worked example of RFC 6455 §1.3.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut map = HeaderMap::new();
        let key = add_websocket_key(&mut map);
        assert_eq!(map.get("sec-websocket-version").unwrap(), "13");
        assert_eq!(map.get("sec-websocket-key"), Some(&key));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .unwrap();
        assert_eq!(raw.len(), 16);
    }

    #[test]
    fn an_extended_connect_names_its_protocol() {
        assert_eq!(
            requested_h2(&Method::CONNECT, Some("websocket")),
            Ok(Some(HeaderValue::from_static("websocket")))
        );
        assert_eq!(requested_h2(&Method::GET, None), Ok(None));
        assert_eq!(requested_h2(&Method::CONNECT, None), Ok(None));
        assert_eq!(
            requested_h2(&Method::GET, Some("websocket")),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}
