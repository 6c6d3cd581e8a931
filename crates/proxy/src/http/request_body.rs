//! A client's request body on its way to a server, timed on the client's
//! side: a body whose bytes stop coming for the frontend's `client_idle`
//! fails with [`ClientBodyTimeout`] (the client gets a 408, as HAProxy's
//! `timeout client` gives), so a client trickling a body cannot hold a
//! server connection forever. It also tells when it was all read, so that
//! the wait for the server's answer (`timeouts.server`) counts from there:
//! a long upload is not the server's delay. Trailers that name a field
//! which frames or routes the message are refused ([`ForbiddenTrailer`]).
//! For a route's mirror, it copies the bytes as they pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;
use zkgate_routing::clock;

use crate::http::copy::BodyCopy;

/// A request's body as it arrives from the client: read by hyper
/// (HTTP/1.1) or by another wire's adapter (HTTP/2, HTTP/3). Every request path
/// takes this one type, so that each wire feeds the same request core.
pub enum InboundBody {
    /// From hyper's HTTP/1.1 server.
    Hyper(Incoming),
    /// From another adapter.
    Other(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

/// A body's error, whichever wire it came from.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl InboundBody {
    /// A bodiless request's (no allocation: the box holds nothing).
    pub fn empty() -> Self {
        use http_body_util::BodyExt;
        InboundBody::Other(Box::pin(
            http_body_util::Empty::new().map_err(|never| match never {}),
        ))
    }
}

impl Body for InboundBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            InboundBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into))),
            InboundBody::Other(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InboundBody::Hyper(body) => body.is_end_stream(),
            InboundBody::Other(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            InboundBody::Hyper(body) => body.size_hint(),
            InboundBody::Other(body) => body.size_hint(),
        }
    }
}

/// The body stopped arriving for the frontend's `client_idle`.
#[derive(Debug)]
pub struct ClientBodyTimeout;

impl std::fmt::Display for ClientBodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client stopped sending its request body")
    }
}

impl std::error::Error for ClientBodyTimeout {}

/// The client's trailers name a field that frames, routes or controls
/// the message: such a field is not allowed there (RFC 9110 §6.5.1).
#[derive(Debug)]
pub struct ForbiddenTrailer;

impl std::fmt::Display for ForbiddenTrailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request's trailers name a field that frames or routes it")
    }
}

impl std::error::Error for ForbiddenTrailer {}

/// Whether `trailers` name a field that frames the message, routes it or
/// manages the connection.
fn forbidden_in_trailers(trailers: &http::HeaderMap) -> bool {
    trailers
        .keys()
        .any(crate::http::headers::is_forbidden_in_trailers)
}

/// Whether an error (of hyper's, or of the body) is [`ClientBodyTimeout`].
pub fn is_client_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<ClientBodyTimeout>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// When a request body was all read: a `clock::now_ms()` reading, 0 while
/// it is still arriving. `None` for a bodiless request (read at once).
#[derive(Clone, Default)]
pub struct BodyRead(Option<Arc<AtomicU64>>);

impl BodyRead {
    /// When the body of a request sent at `sent` was all read; `None`
    /// while it is still arriving.
    pub fn at(&self, sent: Instant) -> Option<Instant> {
        match &self.0 {
            None => Some(sent),
            Some(at) => match at.load(Ordering::Acquire) {
                0 => None,
                ms => Some(clock::instant_of(ms)),
            },
        }
    }
}

/// The client's body, timed (see the module's comment).
pub struct ClientBody {
    body: InboundBody,
    idle: Duration,
    /// Armed while the body waits for bytes; boxed once, reset after.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    read: Option<Arc<AtomicU64>>,
    /// A mirror's copy, taking the bytes in as they pass.
    copy: Option<BodyCopy>,
}

impl ClientBody {
    /// `body`, failing if it stalls for `idle`, copied into `copy` if
    /// given; and when it was all read.
    pub fn new(
        body: InboundBody,
        idle: Duration,
        copy: Option<BodyCopy>,
    ) -> (ClientBody, BodyRead) {
        let read = (!body.is_end_stream()).then(Arc::default);
        let done = BodyRead(read.clone());
        let body = ClientBody {
            body,
            idle,
            timer: None,
            waiting: false,
            read,
            copy,
        };
        (body, done)
    }

    fn finished(&mut self) {
        if let Some(read) = &self.read {
            read.store(clock::now_ms(), Ordering::Release);
        }
        if let Some(copy) = &mut self.copy {
            copy.finished();
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                if let Some(Ok(frame)) = &frame {
                    if frame.trailers_ref().is_some_and(forbidden_in_trailers) {
                        return Poll::Ready(Some(Err(Box::new(ForbiddenTrailer))));
                    }
                    if let (Some(copy), Some(data)) = (&mut this.copy, frame.data_ref()) {
                        copy.data(data);
                    }
                }
                if frame.is_none() || this.body.is_end_stream() {
                    this.finished();
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    timer.as_mut().reset(deadline);
                    this.waiting = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(ClientBodyTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
