//! Protocol switches (WebSocket and the like): the request goes to a
//! server on a stream of its own; if the server switches, the client's and
//! the server's streams are joined as a tunnel with the `tunnel` idle
//! timeout. Either side may speak HTTP/1.1 (`Upgrade`, answered `101`) or
//! HTTP/2 (an extended `CONNECT` with a `:protocol`, RFC 8441, answered
//! `200`): the switch is translated, WebSocket keys included. Any other
//! answer is an ordinary response.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::http::request_body::{BoxError, InboundBody};
use crate::http::switched::{SwitchedIo, SwitchedSlot};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, Backend, Server};

use super::body::{ProxyBody, ServerBody};
use super::client::{self, Conn};
use super::forward::{for_h2, Forwarded};
use crate::http::headers::strip_hop_by_hop;
use crate::http::interim::hook_hyper;
use crate::http::policy::retry::Tries;
use crate::http::policy::upgrade::{
    add_websocket_key, is_websocket, switch_accepted, websocket_accept, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY,
};
use crate::http::pool::PoolKey;
use crate::tunnel;
use crate::Proxy;

/// A protocol switch a client asked for.
pub struct Switch {
    protocol: HeaderValue,
    /// The client's side of the tunnel, once it switched.
    client: SwitchedSide,
    /// The client spoke HTTP/2 (an extended `CONNECT`): it is answered
    /// `200`, not `101`.
    client_h2: bool,
    /// The client's WebSocket key, when an HTTP/2 server will not see it
    /// and zkgate answers it.
    client_key: Option<HeaderValue>,
}

impl Switch {
    /// The switch `request` asks for (to `protocol`), taking its client side.
    pub fn of<B>(request: &mut Request<B>, protocol: HeaderValue) -> Switch {
        Switch {
            protocol,
            client_h2: request.version() >= Version::HTTP_2,
            client_key: request.headers().get(&SEC_WEBSOCKET_KEY).cloned(),
            client: match request.extensions_mut().remove::<SwitchedSlot>() {
                Some(slot) => SwitchedSide::Stream(slot.take()),
                None => SwitchedSide::Hyper(hyper::upgrade::on(request)),
            },
        }
    }
}

/// Where one side of a switch comes from: hyper's HTTP/1.1 server or
/// client once the `101` passed, or a stream of zkgate's HTTP/2 layers.
enum SwitchedSide {
    Hyper(OnUpgrade),
    Stream(Option<Box<dyn SwitchedIo + Sync>>),
}

impl SwitchedSide {
    async fn switched(self) -> Result<Box<dyn SwitchedIo>, BoxError> {
        match self {
            SwitchedSide::Hyper(upgrade) => Ok(Box::new(TokioIo::new(upgrade.await?))),
            SwitchedSide::Stream(Some(stream)) => Ok(stream),
            SwitchedSide::Stream(None) => Err("the stream was taken".into()),
        }
    }
}

/// A server's answer to a switch: it switched, or answered otherwise.
enum Answer {
    Switched(Response<ServerBody>, ActiveRequest),
    Declined(Response<ProxyBody>),
}

/// Forwards a switch request (already rewritten by `prepare`, which
/// stripped the hop-by-hop headers put back here) to a server of
/// `backend`, in the backend's protocol.
pub async fn forward(
    backend: &Backend,
    request: Request<InboundBody>,
    switch: Switch,
    key: Option<u64>,
    idle: Duration,
    proxy: &Proxy,
) -> Forwarded {
    let mut tries = Tries::new(proxy, backend, None, key);
    let answered = match backend.protocol {
        Protocol::Http1 => to_h1_server(backend, request, &switch, &mut tries).await,
        Protocol::Http2 => to_h2_server(backend, request, &switch, &mut tries).await,
    };
    match answered {
        Ok((Answer::Switched(response, active), server)) => {
            let response = tunnel_through(response, switch, backend.protocol, active, idle, proxy);
            Forwarded::Answered(response, server)
        }
        Ok((Answer::Declined(response), server)) => Forwarded::Answered(response, server),
        Err(status) => Forwarded::Failed(status),
    }
}

/// The HTTP/1.1 handshake (RFC 9110 §7.8): `Upgrade` on a connection of
/// its own, switched by a `101`.
async fn to_h1_server(
    backend: &Backend,
    mut request: Request<InboundBody>,
    switch: &Switch,
    tries: &mut Tries<'_>,
) -> Result<(Answer, SocketAddr), StatusCode> {
    let headers = request.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, switch.protocol.clone());
    // An extended CONNECT becomes a GET; its WebSocket key is zkgate's.
    let ours = switch.client_h2.then(|| {
        *request.method_mut() = Method::GET;
        let headers = request.headers_mut();
        is_websocket(switch.protocol.as_bytes()).then(|| add_websocket_key(headers))
    });
    let ours = ours.flatten();
    let sent = Arc::new(AtomicBool::new(false));
    let mut request = request.map(|body| Tracked::new(body, Arc::clone(&sent)));
    // The server's interim answers before the switch reach the client.
    hook_hyper(&mut request);
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
                refused(backend, server, &err, tries);
                continue;
            }
        };
        let active = server.state.start_request();
        let sending = sender.try_send_request(request);
        let response = match tokio::time::timeout(backend.timeouts.server, sending).await {
            Err(_) => return Err(StatusCode::GATEWAY_TIMEOUT),
            Ok(Ok(response)) => response.map(ServerBody::Hyper),
            Ok(Err(mut failed)) => match failed.take_message() {
                Some(unsent) => {
                    request = unsent;
                    tries.record(server, false);
                    continue;
                }
                None => return Err(StatusCode::BAD_GATEWAY),
            },
        };
        tries.record(server, !response.status().is_server_error());
        let address = server.address();
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok((declined(response, active), address));
        }
        // A switch before the request's body was all sent leaves its rest
        // to be read as tunnel bytes; one a WebSocket server did not accept
        // properly is no switch either.
        let accepted = switch_accepted(&switch.protocol, response.headers(), ours.as_ref());
        if !sent.load(Ordering::Acquire) || !accepted {
            debug!(backend = %backend.name, server = %address, "refused a 101 that does not complete the switch");
            return Err(StatusCode::BAD_GATEWAY);
        }
        return Ok((Answer::Switched(response, active), address));
    }
    Err(tries.exhausted())
}

/// The HTTP/2 handshake (RFC 8441): an extended `CONNECT` on a shared
/// connection whose server announced it, switched by a `2xx`.
async fn to_h2_server(
    backend: &Backend,
    request: Request<InboundBody>,
    switch: &Switch,
    tries: &mut Tries<'_>,
) -> Result<(Answer, SocketAddr), StatusCode> {
    if !request.body().is_end_stream() {
        // An HTTP/2 CONNECT carries no body before the switch.
        debug!(backend = %backend.name, "an upgrade request with a body cannot go to an HTTP/2 server");
        return Err(StatusCode::BAD_GATEWAY);
    }
    let (mut parts, _) = request.into_parts();
    let protocol = switch
        .protocol
        .to_str()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    parts.method = Method::CONNECT;
    parts.headers.remove(&SEC_WEBSOCKET_KEY);
    parts
        .extensions
        .insert(hyper::ext::Protocol::from(protocol));
    let scheme = if backend.tls.is_some() {
        "https"
    } else {
        "http"
    };
    while let Some(server) = tries.next() {
        let address = server.address();
        let mut request = Request::from_parts(parts.clone(), Either::Right(Default::default()));
        for_h2(&mut request, address, scheme)?;
        let mut conn = match h2_conn_for_switch(backend, address).await {
            Ok(Some(conn)) => conn,
            Ok(None) => {
                debug!(backend = %backend.name, server = %address, "the server does not take extended CONNECT (RFC 8441)");
                return Err(StatusCode::BAD_GATEWAY);
            }
            Err(err) => {
                refused(backend, server, &err, tries);
                continue;
            }
        };
        let active = server.state.start_request();
        let sending = conn.send(request);
        let response = match tokio::time::timeout(backend.timeouts.server, sending).await {
            Err(_) => return Err(StatusCode::GATEWAY_TIMEOUT),
            Ok(Ok(response)) => response,
            Ok(Err(failed)) => {
                debug!(backend = %backend.name, server = %address, error = %failed, "extended CONNECT failed");
                tries.record(server, false);
                return Err(StatusCode::BAD_GATEWAY);
            }
        };
        tries.record(server, !response.status().is_server_error());
        if !response.status().is_success() {
            return Ok((declined(response, active), address));
        }
        return Ok((Answer::Switched(response, active), address));
    }
    Err(tries.exhausted())
}

/// The server's HTTP/2 connection for a switch, once its `SETTINGS` say
/// it takes extended `CONNECT` (RFC 8441 §3); a server that does not gets
/// none, and the switch a 502.
async fn h2_conn_for_switch(
    backend: &Backend,
    address: SocketAddr,
) -> Result<Option<Conn>, crate::dial::ConnectError> {
    let tls = backend.tls.as_deref();
    let key = PoolKey::new(address, tls);
    let mut conn = match Conn::cached(Protocol::Http2, key).await {
        Some(conn) => conn,
        None => {
            Box::pin(Conn::open(
                Protocol::Http2,
                key,
                tls,
                backend.timeouts.connect,
            ))
            .await?
        }
    };
    conn.ready()
        .await
        .map_err(crate::dial::ConnectError::Http)?;
    let extended = conn.extended_connect().await;
    Ok(extended.then_some(conn))
}

fn refused(
    backend: &Backend,
    server: &Server,
    err: &crate::dial::ConnectError,
    tries: &mut Tries<'_>,
) {
    warn!(backend = %backend.name, server = %server.address(), error = %err, "cannot connect to server");
    backend.metrics.connect_errors.inc();
    tries.record(server, false);
}

/// A server's answer that is not a switch, passed on as it is.
fn declined(response: Response<ServerBody>, active: ActiveRequest) -> Answer {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Answer::Declined(Response::from_parts(
        parts,
        ProxyBody::upstream(body, None, active),
    ))
}

/// Joins the client's and the server's switched streams as a tunnel
/// (once both have switched); the answer that switches the client: a
/// `101` for HTTP/1.1, a `200` for HTTP/2.
fn tunnel_through(
    mut response: Response<ServerBody>,
    switch: Switch,
    server_protocol: Protocol,
    active: ActiveRequest,
    idle: Duration,
    proxy: &Proxy,
) -> Response<ProxyBody> {
    let server = match response.extensions_mut().remove::<SwitchedSlot>() {
        Some(slot) => SwitchedSide::Stream(slot.take()),
        None => SwitchedSide::Hyper(hyper::upgrade::on(&mut response)),
    };
    let (mut parts, _) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    if switch.client_h2 {
        parts.status = StatusCode::OK;
        parts.headers.remove(&SEC_WEBSOCKET_ACCEPT);
    } else {
        parts.status = StatusCode::SWITCHING_PROTOCOLS;
        let headers = &mut parts.headers;
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, switch.protocol.clone());
        if server_protocol == Protocol::Http2 && is_websocket(switch.protocol.as_bytes()) {
            // The HTTP/2 server saw no key: zkgate answers the client's.
            if let Some(key) = &switch.client_key {
                headers.insert(&SEC_WEBSOCKET_ACCEPT, websocket_accept(key.as_bytes()));
            }
        }
    }
    // The tunnel outlives the HTTP exchange it came from: it counts as
    // an open connection of its own, so shutdown waits for it (up to the
    // grace period) as for any request in flight.
    let guard = proxy.connections.open();
    let client = switch.client;
    tokio::spawn(async move {
        // Held for the tunnel's life: the server counts it as in flight.
        let _active = active;
        let _guard = guard;
        match tokio::try_join!(client.switched(), server.switched()) {
            Ok((client, server)) => {
                let client = tokio::io::split(client);
                let server = tokio::io::split(server);
                // The client socket counts its own bytes.
                tunnel::relay(client, server, idle, (None, None)).await;
                debug!("switched connection closed");
            }
            Err(err) => debug!(error = %err, "switch did not complete"),
        }
    });
    Response::from_parts(parts, ProxyBody::message(bytes::Bytes::new()))
}

/// The client's request body on its way to the server, noting when it was
/// all sent.
struct Tracked {
    body: InboundBody,
    sent: Arc<AtomicBool>,
}

impl Tracked {
    fn new(body: InboundBody, sent: Arc<AtomicBool>) -> Self {
        if body.is_end_stream() {
            sent.store(true, Ordering::Release);
        }
        Tracked { body, sent }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
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
