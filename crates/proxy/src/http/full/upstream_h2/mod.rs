//! zkgate's HTTP/2 client towards servers, on the `h2` crate. One
//! connection per server and worker thread carries all that thread's
//! requests to it. A server's interim (1xx) answers go to the request's
//! [`InterimSink`] as they come (hyper's client drops them); a `2xx` to an
//! extended `CONNECT` (RFC 8441) hands the stream over as a tunnel, in a
//! [`SwitchedSlot`] in the answer.

mod body;
mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use http::request::Parts;
use http::{header, Method, Request, Response};
use http_body::Body as _;
use tokio::sync::watch;
use tracing::debug;

pub use self::body::H2Body;
use self::body::{send_body, BodyFault};
use self::tunnel::H2Tunnel;
use crate::http::headers::{stated_length, strip_hop_by_hop};
use crate::http::interim::InterimSink;
use crate::http::pool::UpstreamBody;
use crate::http::switched::SwitchedSlot;
use crate::http::BoxError;
use crate::stream::Stream;

/// How long a new connection is watched for its server's first
/// `SETTINGS`: a switch waits up to this for a server that does not
/// announce extended `CONNECT`.
pub const SETTINGS_WAIT: Duration = Duration::from_secs(1);

/// The flow-control windows zkgate offers a server: larger than the
/// protocol's 64 KiB default, so a fast server is not held back on a
/// network with some latency (a stream's 2 MiB, the connection's 5 MiB).
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
/// What a server's answer head may hold.
const MAX_HEADER_LIST: u32 = 64 << 10;
/// How much of a request body may wait for the server's window.
const MAX_SEND_BUFFER: usize = 1 << 20;

/// An HTTP/2 connection to a server.
#[derive(Clone)]
pub struct H2Conn {
    send: SendRequest<Bytes>,
    /// Set once the connection ended.
    closed: Arc<AtomicBool>,
    /// Whether the server takes extended `CONNECT`, as its `SETTINGS` say.
    extended: watch::Receiver<bool>,
    opened: Instant,
}

impl H2Conn {
    /// Speaks HTTP/2 on `io`, a connection to `server`; the connection is
    /// driven by a task of its own.
    pub async fn handshake(io: Stream, server: SocketAddr) -> Result<H2Conn, h2::Error> {
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .enable_push(false)
            .handshake(io)
            .await?;
        let closed = Arc::new(AtomicBool::new(false));
        let (tell, extended) = watch::channel(false);
        let watched = send.clone();
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            if let Err(err) = drive(connection, watched, tell).await {
                debug!(%server, error = %err, "server connection ended with an error");
            }
            ended.store(true, Ordering::Relaxed);
        });
        Ok(H2Conn {
            send,
            closed,
            extended,
            opened: Instant::now(),
        })
    }

    /// Whether the connection ended (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Waits until the server takes one more stream.
    pub async fn ready(&mut self) -> Result<(), h2::Error> {
        std::future::poll_fn(|cx| self.send.poll_ready(cx)).await
    }

    /// Whether the server takes extended `CONNECT` (RFC 8441). A
    /// connection younger than [`SETTINGS_WAIT`] may not have read its
    /// server's `SETTINGS` yet: it is waited for.
    pub async fn extended_connect(&self) -> bool {
        let mut extended = self.extended.clone();
        let until = tokio::time::Instant::from_std(self.opened + SETTINGS_WAIT);
        let waited = tokio::time::timeout_at(until, extended.wait_for(|on| *on)).await;
        matches!(waited, Ok(Ok(_))) || *self.extended.borrow()
    }

    /// Sends `request` and waits for its answer, passing interim answers
    /// to the request's sink. Its body goes on in a task of its own.
    pub async fn send(
        &mut self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<H2Body>, Failed> {
        let (mut parts, body) = request.into_parts();
        let sink = parts.extensions.remove::<InterimSink>();
        for_h2_wire(&mut parts, &body);
        let connect = parts.method == Method::CONNECT;
        let end = !connect && body.is_end_stream();
        let (answer, stream) = self
            .send
            .send_request(Request::from_parts(parts, ()), end)
            .map_err(|err| Failed::Exchange(err.into()))?;
        let fault = BodyFault::default();
        let mut held = None;
        if connect {
            held = Some(stream);
        } else if !end {
            tokio::spawn(send_body(body, stream, Arc::clone(&fault)));
        }
        let answered = Answer { answer, sink }.await;
        let response = match answered {
            Ok(response) => response,
            Err(err) => {
                let body_fault = fault.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(match body_fault {
                    Some(body_fault) => Failed::ClientBody(body_fault),
                    None => Failed::Exchange(err.into()),
                });
            }
        };
        let (parts, recv) = response.into_parts();
        match held {
            Some(send) if parts.status.is_success() => {
                let mut response = Response::from_parts(parts, H2Body::empty());
                let tunnel = H2Tunnel::new(send, recv);
                response
                    .extensions_mut()
                    .insert(SwitchedSlot::new(Box::new(tunnel)));
                Ok(response)
            }
            _ => {
                let length = stated_length(&parts.headers);
                let body = H2Body::new(recv, length);
                Ok(Response::from_parts(parts, body))
            }
        }
    }
}

/// Why a request got no answer.
pub enum Failed {
    /// The client's body failed on its way.
    ClientBody(BoxError),
    /// The exchange with the server failed.
    Exchange(BoxError),
}

/// A server's answer, its interim answers handed on as they come.
struct Answer {
    answer: ResponseFuture,
    sink: Option<InterimSink>,
}

impl Future for Answer {
    type Output = Result<Response<h2::RecvStream>, h2::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Read (and dropped, without a sink) so the final answer is next.
        while let Poll::Ready(Some(Ok(interim))) = this.answer.poll_informational(cx) {
            if let Some(sink) = &this.sink {
                let (mut parts, ()) = interim.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                sink.send(parts.status, parts.headers);
            }
        }
        Pin::new(&mut this.answer).poll(cx)
    }
}

/// What HTTP/2 carries differently from HTTP/1.1: no connection-specific
/// fields (RFC 9113 §8.2.2; `TE` only as `trailers`), a `content-length`
/// for a body whose length is known, and an extended `CONNECT`'s protocol
/// as `h2` takes it.
fn for_h2_wire(parts: &mut Parts, body: &UpstreamBody) {
    let headers = &mut parts.headers;
    let trailers = headers.get(header::TE).is_some_and(|te| te == "trailers");
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, header::HeaderValue::from_static("trailers"));
    }
    if let Some(length) = body.size_hint().exact() {
        let payload_meant = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
        );
        if (length != 0 || payload_meant) && !headers.contains_key(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, length.into());
        }
    }
    if let Some(protocol) = parts.extensions.remove::<hyper::ext::Protocol>() {
        parts
            .extensions
            .insert(h2::ext::Protocol::from(protocol.as_str()));
    }
}

/// Drives the connection, telling `tell` once the server's `SETTINGS`
/// say it takes extended `CONNECT` (`watched` reads them).
async fn drive(
    mut connection: Connection<Stream, Bytes>,
    watched: SendRequest<Bytes>,
    tell: watch::Sender<bool>,
) -> Result<(), h2::Error> {
    std::future::poll_fn(|cx| {
        let polled = Pin::new(&mut connection).poll(cx);
        let on = watched.is_extended_connect_protocol_enabled();
        tell.send_if_modified(|was| std::mem::replace(was, on) != on);
        polled
    })
    .await
}
