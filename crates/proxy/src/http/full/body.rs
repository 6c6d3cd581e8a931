//! The response body zkgate sends to clients: either a server's body streamed
//! through, or a short message of zkgate's own.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use zkgate_routing::ActiveRequest;

use super::compress::{Compressed, Compressor};
use super::direct_body::DirectBody;
use super::upstream_h2::H2Body;
use crate::access_log::{AccessLog, HttpEntry};
use crate::http::BoxError;

use crate::http::pool::{keep_lent, Lent, PoolKey};
use crate::io::ConnActivity;

/// Marks the client connection's request finished when dropped.
pub struct RequestDone(pub Arc<ConnActivity>);

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body towards the client.
pub struct ProxyBody {
    kind: Kind,
    done: Option<RequestDone>,
    /// Written when the body is done (sent or abandoned).
    log: Option<Box<PendingLog>>,
    sent: u64,
    /// Compresses the body on its way, when the answer is compressed.
    compressor: Option<Box<Compressor>>,
}

/// An access log line waiting for its response to finish.
pub struct PendingLog {
    pub log: Arc<AccessLog>,
    pub client: SocketAddr,
    pub frontend: Option<Arc<str>>,
    pub backend: Option<Arc<str>>,
    pub server: Option<SocketAddr>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub started: Instant,
    pub headers_after: Duration,
    /// The request id and trace id, when the frontend sets request ids.
    pub ids: Option<(String, String)>,
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(pending) = self.log.take() {
            pending.log.http(&HttpEntry {
                client: pending.client,
                frontend: pending.frontend.as_deref().unwrap_or("-"),
                backend: pending.backend.as_deref(),
                server: pending.server,
                method: &pending.method,
                path: &pending.path,
                status: pending.status,
                bytes: self.sent,
                headers_after: pending.headers_after,
                total: pending.started.elapsed(),
                request_id: pending.ids.as_ref().map(|(id, _)| id.as_str()),
                trace_id: pending.ids.as_ref().map(|(_, trace)| trace.as_str()),
            });
        }
    }
}

enum Kind {
    Upstream(Streamed),
    Message(Option<Bytes>),
}

/// A pooled HTTP/1.1 connection whose response is streaming: kept again
/// when the body was read to its end.
pub struct Reuse {
    lent: Lent,
    key: PoolKey,
}

impl Reuse {
    /// `lent`, whose response to a request to `key` is streaming.
    pub fn new(lent: Lent, key: PoolKey) -> Self {
        Reuse { lent, key }
    }

    /// Back to the pool if `finished` (the body was read to its end), else
    /// closed.
    pub fn finish(self, finished: bool) {
        if finished && self.lent.is_open() {
            keep_lent(self.key, self.lent);
        }
    }
}

/// A server's answer body, from whichever reader of its connection.
pub enum ServerBody {
    /// hyper's HTTP/1.1 client reads it.
    Hyper(Incoming),
    /// zkgate's HTTP/2 client reads it.
    H2(H2Body),
    /// Read as it is polled, from the request's own task (boxed: it holds
    /// the server connection, and would make every body as large).
    Direct(Box<DirectBody>),
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ServerBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ServerBody::H2(body) => Pin::new(body).poll_frame(cx),
            ServerBody::Direct(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ServerBody::Hyper(body) => body.is_end_stream(),
            ServerBody::H2(body) => body.is_end_stream(),
            ServerBody::Direct(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServerBody::Hyper(body) => body.size_hint(),
            ServerBody::H2(body) => body.size_hint(),
            ServerBody::Direct(body) => body.size_hint(),
        }
    }
}

/// A server's body, with what to release when it ends.
struct Streamed {
    body: ServerBody,
    /// A pooled connection, kept again once the body was read to its end.
    reuse: Option<Reuse>,
    finished: bool,
    /// Released as the server's last frame is read, before it is written to
    /// the client: the server's part is over, and a client that sends its
    /// next request on reading the answer must find the count down already.
    active: Option<ActiveRequest>,
}

impl Drop for Streamed {
    fn drop(&mut self) {
        if let Some(reuse) = self.reuse.take() {
            reuse.finish(self.finished || self.body.is_end_stream());
        }
    }
}

impl ProxyBody {
    /// A server's body; `reuse`, its pooled connection, is kept again if
    /// the body is read to its end.
    pub fn upstream(body: ServerBody, reuse: Option<Reuse>, active: ActiveRequest) -> Self {
        Self::streamed(body, reuse, active)
    }

    /// A server's body read from the request's own task; it puts its
    /// connection back itself.
    pub fn direct(body: DirectBody, active: ActiveRequest) -> Self {
        Self::streamed(ServerBody::Direct(Box::new(body)), None, active)
    }

    fn streamed(body: ServerBody, reuse: Option<Reuse>, active: ActiveRequest) -> Self {
        ProxyBody {
            kind: Kind::Upstream(Streamed {
                body,
                reuse,
                finished: false,
                active: Some(active),
            }),
            done: None,
            log: None,
            sent: 0,
            compressor: None,
        }
    }

    /// A complete body of zkgate's own.
    pub fn message(bytes: Bytes) -> Self {
        ProxyBody {
            kind: Kind::Message(Some(bytes)),
            done: None,
            log: None,
            sent: 0,
            compressor: None,
        }
    }

    /// Leaves out a message of zkgate's own (its headers, `Content-Length`
    /// included, stay): the answer to a `HEAD`.
    pub fn drop_message(&mut self) {
        if let Kind::Message(bytes) = &mut self.kind {
            *bytes = None;
        }
    }

    /// Attaches the access log line written when this body is done.
    pub fn with_log(mut self, pending: PendingLog) -> Self {
        self.log = Some(Box::new(pending));
        self
    }

    /// Attaches the guard that marks the client's request finished.
    pub fn with_done(mut self, done: RequestDone) -> Self {
        self.done = Some(done);
        self
    }
}

impl ProxyBody {
    /// The next frame of the body as it came (before any compression).
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Message(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(streamed) => {
                let polled = Pin::new(&mut streamed.body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => streamed.finished = true,
                    Poll::Ready(Some(Ok(_))) => streamed.finished = streamed.body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => streamed.reuse = None,
                    Poll::Pending => {}
                }
                if streamed.finished {
                    streamed.active = None;
                }
                polled
            }
        }
    }

    /// The next frame for the client: the body's own, or compressed.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.compressor.as_ref().is_some_and(|c| c.ended()) {
                let trailers = self.compressor.as_mut().and_then(|c| c.take_trailers());
                return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
            }
            let polled = self.poll_inner(cx);
            let Some(compressor) = self.compressor.as_deref_mut() else {
                return polled;
            };
            let compressed = match polled {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => compressor.data(&data),
                    Err(frame) => compressor.end(frame.into_trailers().ok()),
                },
                Poll::Ready(None) => compressor.end(None),
                // Pending, or the server's body failed.
                other => return other,
            };
            match compressed {
                Compressed::Data(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Compressed::End(last) if !last.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(last))))
                }
                Compressed::Nothing | Compressed::End(_) => continue,
            }
        }
    }

    /// Compresses the body from here on (see `compress::compress`).
    pub fn compress(&mut self, compressor: Compressor) {
        self.compressor = Some(Box::new(compressor));
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = self.poll_out(cx);
        if self.log.is_some() {
            if let Poll::Ready(Some(Ok(frame))) = &polled {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if let Some(compressor) = &self.compressor {
            return compressor.ended() && !compressor.has_trailers();
        }
        match &self.kind {
            Kind::Message(bytes) => bytes.is_none(),
            Kind::Upstream(streamed) => streamed.finished || streamed.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.compressor.is_some() {
            return SizeHint::default();
        }
        match &self.kind {
            Kind::Message(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Message(None) => SizeHint::with_exact(0),
            Kind::Upstream(streamed) => streamed.body.size_hint(),
        }
    }
}
