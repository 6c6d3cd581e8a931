//! Copies of requests for a route's `mirror`: sent from a task of their
//! own to the mirror backend, over the same pooled connections as any
//! request, their answers read and discarded. Nothing of a copy reaches the
//! client or waits for it: a slow, failing or absent mirror never delays,
//! fails or changes the original.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use tracing::debug;
use zkgate_config::Protocol;
use zkgate_routing::{Backend, Mirror};

use super::client::Conn;
use super::forward::for_h2;
use crate::http::copy::CopiedBody;
use crate::http::headers::{keeps_alive, response_framing_is_sound};
use crate::http::interim::AfterInterim;
use crate::http::pool::PoolKey;

/// Copies in flight in the whole process; beyond, new ones are dropped
/// (`result="dropped"`) rather than queued behind a slow mirror.
const MAX_IN_FLIGHT: usize = 512;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A request's head, as the server was sent it, for a copy.
pub struct CopiedHead {
    pub method: Method,
    /// Origin form.
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The head of a fast-path request as written for the server (`head`,
/// which is well formed: zkgate wrote it), for a copy.
pub fn head_of(written: &[u8]) -> Option<CopiedHead> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut fields);
    parsed.parse(written).ok()?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        headers.append(
            HeaderName::from_bytes(field.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(field.value).ok()?,
        );
    }
    Some(CopiedHead {
        method: Method::from_bytes(parsed.method?.as_bytes()).ok()?,
        uri: parsed.path?.parse().ok()?,
        headers,
    })
}

/// Sends a copy of a request to `mirror`'s backend from a task of its
/// own, unless too many copies are in flight. The copy states its body's
/// length; it has `connect` + `server` of the mirror backend's timeouts to
/// be answered and read.
pub fn spawn(mirror: &Mirror, head: CopiedHead, body: CopiedBody) {
    if IN_FLIGHT.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        mirror.metrics.dropped.inc();
        return;
    }
    let backend = Arc::clone(&mirror.backend);
    let metrics = mirror.metrics.clone();
    tokio::spawn(async move {
        let body = match body {
            CopiedBody::Ready(bytes) => Some(bytes),
            CopiedBody::Pending(pending) => match pending.await {
                Ok(Some(bytes)) => Some(bytes),
                Ok(None) => {
                    metrics.too_large.inc();
                    None
                }
                // The original's body failed: there is nothing to copy.
                Err(_) => {
                    metrics.failed.inc();
                    None
                }
            },
        };
        if let Some(body) = body {
            let limit = backend.timeouts.connect + backend.timeouts.server;
            let sent = tokio::time::timeout(limit, send(&backend, head, body)).await;
            match sent {
                Ok(true) => metrics.answered.inc(),
                Ok(false) | Err(_) => metrics.failed.inc(),
            }
        }
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Sends one copy and reads its answer to the end; whether one came.
async fn send(backend: &Backend, head: CopiedHead, body: Bytes) -> bool {
    let Some(server) = backend.pick(None) else {
        return false;
    };
    let address = server.address();
    let mut request = Request::new(Either::Right(Full::new(body.clone())));
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = head.headers;
    let headers = request.headers_mut();
    headers.remove(http::header::TRANSFER_ENCODING);
    if body.is_empty() {
        headers.remove(http::header::CONTENT_LENGTH);
    } else {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if backend.protocol == Protocol::Http2 {
        let scheme = if backend.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if for_h2(&mut request, address, scheme).is_err() {
            return false;
        }
    }
    let tls = backend.tls.as_deref();
    let key = PoolKey::new(address, tls);
    let mut conn = match Conn::cached(backend.protocol, key).await {
        Some(conn) => conn,
        None => match Conn::open(backend.protocol, key, tls, backend.timeouts.connect).await {
            Ok(conn) => conn,
            Err(err) => {
                debug!(backend = %backend.name, server = %address, error = %err, "mirror: cannot connect");
                return false;
            }
        },
    };
    if conn.ready().await.is_err() {
        return false;
    }
    let head_request = request.method() == Method::HEAD;
    let active = server.state.start_request();
    let Ok(response) = conn.send(request).await else {
        return false;
    };
    let (parts, body) = response.into_parts();
    let keep_alive = response_framing_is_sound(&parts.headers)
        && keeps_alive(parts.version, parts.status, &parts.headers, head_request)
        && parts.extensions.get::<AfterInterim>().is_none();
    // Read to its end and dropped: the connection returns to the pool.
    let mut body = conn.body(body, keep_alive, active);
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return true;
        }
    }
    true
}
