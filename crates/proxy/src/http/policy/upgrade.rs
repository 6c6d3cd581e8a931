//! Whether a request may switch protocols, and whether a server's `101`
//! may be believed. A switch turns the connection into a raw tunnel that
//! no route rule sees again, so it is granted only as RFC 9110 §7.8 and
//! RFC 6455 describe it.

use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

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

/// Whether a server's `101` to a request for `protocol` completes the
/// switch: for WebSocket, only with `Sec-WebSocket-Accept` (RFC 6455
/// §4.1); anything else is a 502.
pub fn switch_accepted(protocol: &HeaderValue, response: &HeaderMap) -> bool {
    !is_websocket(protocol.as_bytes()) || response.contains_key(&SEC_WEBSOCKET_ACCEPT)
}

fn is_websocket(protocol: &[u8]) -> bool {
    protocol.eq_ignore_ascii_case(b"websocket")
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
        assert!(!switch_accepted(&ws, &headers(&[])));
        assert!(switch_accepted(
            &ws,
            &headers(&[("sec-websocket-accept", "a")])
        ));
        assert!(switch_accepted(
            &HeaderValue::from_static("foo"),
            &headers(&[])
        ));
    }
}
