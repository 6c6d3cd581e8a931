//! `Upgrade` pass-through (WebSocket and the like): the request goes to a
//! server on a connection of its own; if the server switches protocols
//! (101), both upgraded connections are joined as a tunnel with the `tunnel`
//! idle timeout. Anything else is an ordinary response.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};
use zkgate_routing::{ActiveRequest, Backend};

use super::body::ProxyBody;
use super::client;
use super::forward::Forwarded;
use crate::http::headers::strip_hop_by_hop;
use crate::http::policy::retry::Tries;
use crate::http::policy::upgrade::switch_accepted;
use crate::tunnel;
use crate::Proxy;

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
    request
        .headers_mut()
        .insert(header::UPGRADE, protocol.clone());
    let sent = Arc::new(AtomicBool::new(false));
    let mut request = request.map(|body| Tracked::new(body, Arc::clone(&sent)));
    let mut tries = Tries::new(proxy, backend, None, key);
    while let Some(server) = tries.next() {
        let connected = client::connect_for_upgrade(
            server.address(),
            backend.tls.as_deref(),
            backend.timeouts.connect,
        )
        .await;
        let mut sender = match connected {
            Ok(sender) => sender,
            Err(err) => {
                warn!(backend = %backend.name, server = %server.address(), error = %err, "cannot connect to server");
                backend.metrics.connect_errors.inc();
                tries.record(server, false);
                continue;
            }
        };
        let active = server.state.start_request();
        let sending = sender.try_send_request(request);
        let response = match tokio::time::timeout(backend.timeouts.server, sending).await {
            Err(_) => return Forwarded::Failed(StatusCode::GATEWAY_TIMEOUT),
            Ok(Ok(response)) => response,
            Ok(Err(mut failed)) => match failed.take_message() {
                Some(unsent) => {
                    request = unsent;
                    tries.record(server, false);
                    continue;
                }
                None => return Forwarded::Failed(StatusCode::BAD_GATEWAY),
            },
        };
        tries.record(server, !response.status().is_server_error());
        let address = server.address();
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let response = Response::from_parts(parts, ProxyBody::upstream(body, None, active));
            return Forwarded::Answered(response, address);
        }
        // A switch before the request's body was all sent leaves its rest
        // to be read as tunnel bytes; one a WebSocket server did not accept
        // properly is no switch either.
        if !sent.load(Ordering::Acquire) || !switch_accepted(&protocol, response.headers()) {
            debug!(backend = %backend.name, server = %address, "refused a 101 that does not complete the switch");
            return Forwarded::Failed(StatusCode::BAD_GATEWAY);
        }
        return Forwarded::Answered(
            tunnel_through(response, client, active, idle, proxy),
            address,
        );
    }
    Forwarded::Failed(tries.exhausted())
}

/// Joins the client's and the server's upgraded connections as a tunnel
/// (once both have switched); the `101` for the client.
fn tunnel_through(
    mut response: Response<Incoming>,
    client: OnUpgrade,
    active: ActiveRequest,
    idle: Duration,
    proxy: &Proxy,
) -> Response<ProxyBody> {
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
                debug!("upgraded connection closed");
            }
            Err(err) => debug!(error = %err, "upgrade did not complete"),
        }
    });
    Response::from_parts(parts, ProxyBody::message(bytes::Bytes::new()))
}

/// The client's request body on its way to the server, noting when it was
/// all sent.
struct Tracked {
    body: Incoming,
    sent: Arc<AtomicBool>,
}

impl Tracked {
    fn new(body: Incoming, sent: Arc<AtomicBool>) -> Self {
        if body.is_end_stream() {
            sent.store(true, Ordering::Release);
        }
        Tracked { body, sent }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.sent.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
