//! `Upgrade` pass-through (WebSocket and the like): the request goes to a
//! server on a connection of its own; if the server switches protocols
//! (101), both upgraded connections are joined as a tunnel with the `tunnel`
//! idle timeout. Anything else is an ordinary response.

use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};
use zkgate_routing::Backend;

use super::body::ProxyBody;
use super::client;
use super::forward::Forwarded;
use crate::http::headers::strip_hop_by_hop;
use crate::tunnel;
use crate::Proxy;

/// The protocol a request asks to switch to, if it asks (`Connection: upgrade` + `Upgrade`).
pub fn requested(request: &Request<Incoming>) -> Option<HeaderValue> {
    let asks = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| request.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Forwards an upgrade request (already rewritten by `prepare`, which
/// stripped the hop-by-hop headers that are put back here).
pub async fn forward(
    backend: &Backend,
    mut request: Request<Incoming>,
    protocol: HeaderValue,
    client: OnUpgrade,
    key: Option<u64>,
    idle: Duration,
    proxy: &Proxy,
) -> Forwarded {
    request
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    request.headers_mut().insert(header::UPGRADE, protocol);
    let mut request = request.map(http_body_util::Either::Left);
    let mut attempts = backend.attempts(backend.pick(key));
    for server in attempts.by_ref() {
        let mut sender = match client::connect_for_upgrade(
            server.address(),
            backend.tls.as_deref(),
            backend.timeouts.connect,
        )
        .await
        {
            Ok(sender) => sender,
            Err(err) => {
                warn!(backend = %backend.name, server = %server.address(), error = %err, "cannot connect to server");
                backend.metrics.connect_errors.inc();
                if backend.record(server, false) {
                    proxy.changed.notify_one();
                }
                continue;
            }
        };
        let active = server.state.start_request();
        let response =
            match tokio::time::timeout(backend.timeouts.server, sender.try_send_request(request))
                .await
            {
                Err(_) => return Forwarded::Failed(StatusCode::GATEWAY_TIMEOUT),
                Ok(Ok(response)) => response,
                Ok(Err(mut failed)) => match failed.take_message() {
                    Some(unsent) => {
                        request = unsent;
                        continue;
                    }
                    None => return Forwarded::Failed(StatusCode::BAD_GATEWAY),
                },
            };
        backend.record(server, !response.status().is_server_error());
        let address = server.address();
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let response = Response::from_parts(parts, ProxyBody::upstream(body, None, active));
            return Forwarded::Answered(response, address);
        }
        let mut response = response;
        let server_upgrade = hyper::upgrade::on(&mut response);
        let (parts, _) = response.into_parts();
        // The tunnel outlives the HTTP connection it came from: it counts as
        // an open connection of its own, so shutdown waits for it (up to the
        // grace period) as for any request in flight.
        let guard = proxy.connections.open();
        tokio::spawn(async move {
            // Held for the tunnel's life: the server counts it as in flight.
            let _active = active;
            let _guard = guard;
            match tokio::try_join!(client, server_upgrade) {
                Ok((client, server)) => {
                    let client = tokio::io::split(TokioIo::new(client));
                    let server = tokio::io::split(TokioIo::new(server));
                    // The client socket counts its own bytes.
                    tunnel::relay(client, server, idle, (None, None)).await;
                    debug!(server = %address, "upgraded connection closed");
                }
                Err(err) => debug!(server = %address, error = %err, "upgrade did not complete"),
            }
        });
        let response = Response::from_parts(parts, ProxyBody::message(bytes::Bytes::new()));
        return Forwarded::Answered(response, address);
    }
    if attempts.none_tried() {
        backend.metrics.no_server.inc();
        Forwarded::Failed(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        Forwarded::Failed(StatusCode::BAD_GATEWAY)
    }
}
