//! Sending a request to a server of a backend: pick, connect (pooled),
//! retry where it is safe, record the outcome for outlier detection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::request_body::InboundBody;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use tracing::{debug, warn};
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, Backend, Server};

use super::attempt::{answer_within, for_client, Attempt};
use super::body::{ProxyBody, ServerBody};
use super::client::{Conn, SendFailed};
use super::direct;
use crate::http::copy::BodyCopy;
use crate::http::headers::{keeps_alive, response_framing_is_sound};
use crate::http::interim::{AfterInterim, InterimSink};
use crate::http::policy::retry::{self, head_arrived, Tries};
use crate::http::pool::{PoolKey, UpstreamBody};
use crate::http::request_body::{is_client_body_timeout, BodyRead, ClientBody};
use crate::Proxy;

/// How a request ended.
// Moved once per request; boxing the response would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
pub enum Forwarded {
    /// A server answered (the response streams on); which one.
    Answered(Response<ProxyBody>, SocketAddr),
    /// No server answered: zkgate answers with this.
    Failed(StatusCode),
}

/// What can be sent again after a failure that happened once the request
/// was sent: an idempotent method with no body (RFC 9110 §9.2.2).
struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Replay {
    fn of(request: &Request<UpstreamBody>) -> Option<Replay> {
        let idempotent = retry::idempotent(request.method().as_str().as_bytes());
        let empty = request.body().size_hint().exact() == Some(0);
        (idempotent && empty).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
        })
    }

    fn request(&self) -> Request<UpstreamBody> {
        let mut request = Request::new(Either::Right(Full::new(Bytes::new())));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// How a request is sent, besides where.
pub struct Sending {
    /// How long the client's body may pause.
    pub client_idle: Duration,
    /// The balancer's key, for hashing backends.
    pub key: Option<u64>,
    /// The server a sticky-session cookie names.
    pub sticky: Option<SocketAddr>,
    /// Takes in the body for a mirror as it passes.
    pub copy: Option<BodyCopy>,
    /// Where the server's interim (1xx) answers go, if the client's wire
    /// carries them. Passed beside the request rather than in its
    /// extensions, whose map would cost every request an allocation.
    pub interim: Option<InterimSink>,
}

/// Sends `request` to a server of `backend`: the `sticky` one if given and
/// usable, else the balancer's pick; on a failure that is safe to retry,
/// another server, up to `retries` times.
pub async fn forward(
    backend: &Backend,
    request: Request<InboundBody>,
    sending: Sending,
    proxy: &Proxy,
) -> Forwarded {
    let Sending {
        client_idle,
        key,
        sticky,
        copy,
        interim,
    } = sending;
    let (parts, body) = request.into_parts();
    let (body, read) = ClientBody::new(body, client_idle, copy);
    let mut request = Request::from_parts(parts, Either::Left(body));
    // Only cloned when a retry after sending could happen at all, and the
    // request could be lost in sending (the direct way keeps it).
    let direct = backend.protocol == Protocol::Http1 && direct::takes(&request);
    let replay = if backend.retries > 0 && !direct {
        Replay::of(&request)
    } else {
        None
    };
    let sent = Sent {
        replay: replay.as_ref(),
        read: &read,
        interim: interim.as_ref(),
    };
    let mut tries = Tries::new(proxy, backend, sticky, key);
    while let Some(server) = tries.next() {
        let outcome = attempt_on(backend, server, request, sent).await;
        let (forwarded, ok) = match outcome {
            Attempt::Answered(response) => {
                let ok = !response.status().is_server_error();
                (Forwarded::Answered(response, server.address()), ok)
            }
            Attempt::Failed(status) => (Forwarded::Failed(status), false),
            // Not the server's fault.
            Attempt::ClientFault(status) => (Forwarded::Failed(status), true),
            Attempt::Retry(again) => {
                tries.record(server, false);
                request = again;
                continue;
            }
        };
        tries.record(server, ok);
        return forwarded;
    }
    Forwarded::Failed(tries.exhausted())
}

/// What an attempt needs besides the request.
#[derive(Clone, Copy)]
struct Sent<'a> {
    replay: Option<&'a Replay>,
    read: &'a BodyRead,
    interim: Option<&'a InterimSink>,
}

async fn attempt_on(
    backend: &Backend,
    server: &Server,
    mut request: Request<UpstreamBody>,
    sent: Sent<'_>,
) -> Attempt {
    if backend.protocol == Protocol::Http1 && direct::takes(&request) {
        return direct::attempt(backend, server, request, sent.read, sent.interim).await;
    }
    // The clients of server connections (hyper's, our HTTP/2 one) find
    // the sink among the request's extensions.
    if let Some(sink) = sent.interim {
        request.extensions_mut().insert(sink.clone());
    }
    // Boxed: its future is twice the direct way's, and every request's
    // future (boxed whole, and so copied whole) would be as large.
    Box::pin(attempt_by_client(
        backend,
        server,
        request,
        sent.replay,
        sent.read,
    ))
    .await
}

/// An attempt through a client of the server connection: hyper's for
/// HTTP/1.1, zkgate's for HTTP/2.
async fn attempt_by_client(
    backend: &Backend,
    server: &Server,
    mut request: Request<UpstreamBody>,
    replay: Option<&Replay>,
    read: &BodyRead,
) -> Attempt {
    let address = server.address();
    if backend.protocol == Protocol::Http2 {
        let scheme = if backend.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if let Err(status) = for_h2(&mut request, address, scheme) {
            return Attempt::Failed(status);
        }
    }
    let tls = backend.tls.as_deref();
    let key = PoolKey::new(address, tls);
    let mut cached = Conn::cached(backend.protocol, key).await;
    loop {
        let reused = cached.is_some();
        let mut conn = match cached.take() {
            Some(conn) => conn,
            // Opening a connection (TCP, maybe TLS) is the rare case and its
            // future is large: boxed, so the pooled path's future stays small.
            None => match Box::pin(Conn::open(
                backend.protocol,
                key,
                tls,
                backend.timeouts.connect,
            ))
            .await
            {
                Ok(conn) => conn,
                Err(err) => {
                    warn!(backend = %backend.name, server = %address, error = %err, "cannot connect to server");
                    backend.metrics.connect_errors.inc();
                    return Attempt::Retry(request);
                }
            },
        };
        if conn.ready().await.is_err() {
            if reused {
                continue;
            }
            backend.metrics.connect_errors.inc();
            return Attempt::Retry(request);
        }
        let active = server.state.start_request();
        let started = Instant::now();
        let head_request = request.method() == Method::HEAD;
        let sent = answer_within(conn.send(request), backend.timeouts.server, read, started).await;
        match sent {
            None => {
                debug!(backend = %backend.name, server = %address, "server timed out");
                return Attempt::Failed(StatusCode::GATEWAY_TIMEOUT);
            }
            Some(Ok(response)) => {
                head_arrived(backend, server, started);
                return answered(backend, address, response, conn, head_request, active);
            }
            Some(Err(failed)) => match failed {
                // A reused connection the server had closed: try a fresh one.
                SendFailed::Unsent(unsent) if reused => request = *unsent,
                SendFailed::Unsent(unsent) => return Attempt::Retry(*unsent),
                // The client's body stream failed (malformed chunking, a reset).
                SendFailed::ClientBody(err) if is_client_body_timeout(&*err) => {
                    debug!(backend = %backend.name, server = %address, "the client stopped sending its request body");
                    return Attempt::ClientFault(StatusCode::REQUEST_TIMEOUT);
                }
                SendFailed::ClientBody(err) => {
                    debug!(backend = %backend.name, server = %address, error = %err, "client request body failed");
                    return Attempt::ClientFault(StatusCode::BAD_REQUEST);
                }
                SendFailed::Failed(err) => {
                    debug!(backend = %backend.name, server = %address, error = %err, "request to server failed");
                    // Sent, then the connection failed before any answer:
                    // only an idempotent, bodiless request may go again.
                    return match replay {
                        Some(replay) => Attempt::Retry(replay.request()),
                        None => Attempt::Failed(StatusCode::BAD_GATEWAY),
                    };
                }
            },
        }
    }
}

/// HTTP/2 carries the scheme and authority as pseudo-headers: the URI needs both.
pub(super) fn for_h2(
    request: &mut Request<UpstreamBody>,
    server: SocketAddr,
    scheme: &str,
) -> Result<(), StatusCode> {
    *request.version_mut() = Version::HTTP_2;
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| server.to_string(), str::to_owned);
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = format!("{scheme}://{authority}{path}")
        .parse::<Uri>()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(())
}

/// The server's answer, for the client: refused if its framing is in
/// dispute, else with hop-by-hop headers dropped (and a `Content-Length`
/// a coding overrode), its connection to be kept only if it may carry
/// another request (not after 1xx answers).
fn answered(
    backend: &Backend,
    address: SocketAddr,
    response: Response<ServerBody>,
    conn: Conn,
    head_request: bool,
    active: ActiveRequest,
) -> Attempt {
    if !response_framing_is_sound(response.headers()) {
        debug!(backend = %backend.name, server = %address, "bad response from server: its framing is in dispute");
        return Attempt::Failed(StatusCode::BAD_GATEWAY);
    }
    let (mut parts, body) = response.into_parts();
    let interim = parts.extensions.get::<AfterInterim>().is_some();
    let keep_alive =
        keeps_alive(parts.version, parts.status, &parts.headers, head_request) && !interim;
    for_client(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Attempt::Answered(Response::from_parts(
        parts,
        conn.body(body, keep_alive, active),
    ))
}
