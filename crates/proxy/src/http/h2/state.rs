//! The state one connection keeps per stream, and what its parts share:
//! where each stream's answer stands, the request core's work on it, a
//! header block still coming, and why a connection ended. Below `conn`,
//! `recv` and `send`, which all read and write it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::AbortHandle;
use http::Response;
use http_body::{Body, Frame};

use super::frame::Reason;
use super::stream::{Inbound, Outbound, TunnelOut};
use crate::http::full::{Answer, ProxyBody};
use crate::http::request_body::BoxError;

/// Request body bytes a client may send on one stream before zkgate has
/// passed them on (flow control).
pub const STREAM_WINDOW: i64 = 256 * 1024;

/// The request core's work on one stream's request.
pub(super) struct Answering {
    pub stream: u32,
    pub work: Work,
}

/// The request core's way, or its lane.
pub(super) enum Work {
    Core(Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>),
    Lane(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl Future for Answering {
    type Output = (u32, Answer);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let stream = self.stream;
        let answer = match &mut self.work {
            Work::Core(work) => match ready!(work.as_mut().poll(cx)) {
                Ok(response) => Answer::Response(response),
                Err(never) => match never {},
            },
            Work::Lane(work) => ready!(work.as_mut().poll(cx)),
        };
        Poll::Ready((stream, answer))
    }
}

/// What a connection knows of a client's settings.
pub(super) struct PeerSettings {
    pub initial_window: i64,
    pub max_frame: usize,
}

/// Why a connection ended abnormally.
#[derive(Debug)]
pub struct ConnError {
    pub reason: Reason,
    pub why: &'static str,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.why, self.reason)
    }
}

impl std::error::Error for ConnError {}

pub(super) fn fatal(reason: Reason, why: &'static str) -> ConnError {
    ConnError { reason, why }
}

/// A connection's open streams by id.
pub(super) type Streams = HashMap<u32, Stream, BuildHasherDefault<StreamIdHasher>>;

/// Hashes a stream id with one multiplication (Fibonacci hashing), which
/// spreads a client's ids (odd, mostly consecutive) over the table: SipHash
/// cost a request about 3 % of its instructions. A client holds at most
/// `MAX_CONCURRENT_STREAMS` open, so there is no flood of ids to defend
/// against.
#[derive(Default)]
pub(super) struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Where a stream's answer stands.
pub(super) enum Sending {
    /// The request core has not answered yet.
    Waiting,
    /// The head went out; the body follows. `pending` is data the windows
    /// did not let out yet; `last` says the body ended with it.
    Body {
        source: Source,
        pending: Bytes,
        last: bool,
    },
    /// The answer went out whole (or was given up).
    Done,
}

pub(super) struct Stream {
    /// The client's side, while it may still send DATA.
    pub inbound: Option<Arc<Inbound>>,
    pub declared: Option<u64>,
    pub received: u64,
    /// What the client may still send on this stream.
    pub recv_window: i64,
    /// What zkgate may still send on it.
    pub send_window: i64,
    pub sending: Sending,
    /// The request core's work, while it runs.
    pub abort: Option<AbortHandle>,
    /// A `HEAD`: its answer has no body.
    pub head_only: bool,
    /// An extended CONNECT's tunnel, taken over by a 2xx answer.
    pub tunnel: Option<Arc<Outbound>>,
}

impl Stream {
    /// A stream just opened, its answer to come; `send_window` is what the
    /// client's settings allow.
    pub fn opened(inbound: Option<Arc<Inbound>>, send_window: i64) -> Stream {
        Stream {
            inbound,
            declared: None,
            received: 0,
            recv_window: STREAM_WINDOW,
            send_window,
            sending: Sending::Waiting,
            abort: None,
            head_only: false,
            tunnel: None,
        }
    }

    pub fn closed(&self) -> bool {
        self.inbound.is_none() && matches!(self.sending, Sending::Done)
    }
}

/// Where a stream's DATA come from.
pub(super) enum Source {
    Response(ProxyBody),
    Tunnel(TunnelOut),
}

impl Source {
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Source::Response(body) => Pin::new(body).poll_frame(cx),
            Source::Tunnel(out) => Pin::new(out).poll_frame(cx),
        }
    }

    pub fn is_end_stream(&self) -> bool {
        match self {
            Source::Response(body) => body.is_end_stream(),
            Source::Tunnel(_) => false,
        }
    }
}

/// A header block whose CONTINUATION frames are still to come.
pub(super) struct Partial {
    pub stream: u32,
    pub end_stream: bool,
    pub block: Vec<u8>,
}

/// Ends a stream that is given up: its request core's work stops, and
/// its reader, if any, gets an error.
pub(super) fn close(stream: Stream, why: &'static str) {
    if let Some(abort) = &stream.abort {
        abort.abort();
    }
    if let Some(inbound) = &stream.inbound {
        inbound.fail(why);
    }
}
