//! What one stream shares between the connection task and whoever reads
//! the client's side of it: the request body on its way to a server, or
//! the client's side of a tunnel (an extended CONNECT, RFC 8441).
//!
//! The connection fills an [`Inbound`] with the DATA the client sends; the
//! reader takes from it and so gives flow-control credit back, which the
//! connection returns to the client as WINDOW_UPDATE. A client can thus
//! never have more body in zkgate than the windows it was given.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::interim::{ContinueOwed, InterimSink, InterimTarget};
use crate::http::request_body::BoxError;

/// Taken bytes of one stream that make the connection send its
/// WINDOW_UPDATE; below, the client still has most of its window.
pub const STREAM_CREDIT_AT: usize = 16 * 1024;
/// Taken bytes of the whole connection that wake it to give them back.
const CONNECTION_CREDIT_AT: usize = 32 * 1024;
/// Bytes a tunnel's writer may queue before it waits for the client.
const TUNNEL_QUEUE: usize = 64 * 1024;

/// What a connection's streams tell it from other tasks, and the
/// connection task to wake for it: flow-control credit its readers gave
/// back, and servers' interim (1xx) answers to send.
#[derive(Default)]
pub struct Shared {
    taken: AtomicUsize,
    connection: AtomicWaker,
    interims: Mutex<Vec<(u32, StatusCode, HeaderMap)>>,
    has_interims: AtomicBool,
}

impl InterimTarget for Shared {
    fn interim(&self, stream: u32, status: StatusCode, headers: HeaderMap) {
        let mut interims = self.interims.lock().unwrap_or_else(|e| e.into_inner());
        interims.push((stream, status, headers));
        self.has_interims.store(true, Ordering::Release);
        drop(interims);
        self.connection.wake();
    }
}

impl Shared {
    /// The interim answers passed on since the last call.
    pub fn take_interims(&self) -> Vec<(u32, StatusCode, HeaderMap)> {
        if !self.has_interims.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.interims.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Registers the connection task.
    pub fn register(&self, waker: &Waker) {
        self.connection.register(waker);
    }

    /// Bytes taken since the last call.
    pub fn take(&self) -> usize {
        self.taken.swap(0, Ordering::AcqRel)
    }

    fn give(&self, n: usize, stream_due: bool) {
        let before = self.taken.fetch_add(n, Ordering::AcqRel);
        if stream_due || before + n >= CONNECTION_CREDIT_AT {
            self.connection.wake();
        }
    }
}

/// How the client's side of a stream ended.
enum End {
    Finished(Option<HeaderMap>),
    Failed(&'static str),
}

/// The client's DATA of one stream, not yet taken by its reader.
pub struct Inbound {
    state: Mutex<InState>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct InState {
    data: VecDeque<Bytes>,
    end: Option<End>,
    reader: Option<Waker>,
    /// Bytes taken since the connection last gave them back.
    taken: usize,
    reader_gone: bool,
}

impl Inbound {
    pub fn new(shared: Arc<Shared>) -> Arc<Inbound> {
        Arc::new(Inbound {
            state: Mutex::new(InState::default()),
            shared,
        })
    }

    /// The client's side of a stream whose body nobody will read.
    pub fn unread(shared: Arc<Shared>) -> Arc<Inbound> {
        let inbound = Inbound::new(shared);
        inbound.lock().reader_gone = true;
        inbound
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues DATA for the reader; `false` if it is gone (the caller gives
    /// the bytes' credit back itself).
    pub fn push(&self, data: Bytes) -> bool {
        let mut state = self.lock();
        if state.reader_gone {
            return false;
        }
        state.data.push_back(data);
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
        true
    }

    /// The client ended its side, with `trailers` if it sent any.
    pub fn finish(&self, trailers: Option<HeaderMap>) {
        self.end(End::Finished(trailers));
    }

    /// The stream broke off: the reader gets an error.
    pub fn fail(&self, why: &'static str) {
        self.end(End::Failed(why));
    }

    fn end(&self, end: End) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(end);
        }
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }

    /// Bytes the reader took since the last call, if enough to be worth a
    /// WINDOW_UPDATE.
    pub fn take_credit(&self) -> Option<usize> {
        let mut state = self.lock();
        (state.taken >= STREAM_CREDIT_AT).then(|| std::mem::take(&mut state.taken))
    }

    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.lock();
        if let Some(data) = state.data.pop_front() {
            let before = state.taken;
            state.taken += data.len();
            drop(state);
            self.shared.give(
                data.len(),
                before < STREAM_CREDIT_AT && before + data.len() >= STREAM_CREDIT_AT,
            );
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match &mut state.end {
            None => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(End::Finished(trailers)) => {
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            Some(End::Failed(why)) => Poll::Ready(Some(Err((*why).into()))),
        }
    }

    /// Whether any of the body (or its end) has arrived.
    fn has_arrived(&self) -> bool {
        let state = self.lock();
        !state.data.is_empty() || state.end.is_some()
    }

    fn is_end_stream(&self) -> bool {
        let state = self.lock();
        state.data.is_empty() && matches!(state.end, Some(End::Finished(None)))
    }

    /// The reader is gone: what it left is given back at once.
    fn drop_reader(&self) {
        let mut state = self.lock();
        state.reader_gone = true;
        let left: usize = state.data.drain(..).map(|d| d.len()).sum();
        drop(state);
        if left > 0 {
            self.shared.give(left, true);
        }
    }
}

/// A request's body as the client sends it on its stream.
pub struct RequestBody {
    inbound: Arc<Inbound>,
    /// What `content-length` said and what is still to come (the
    /// connection resets a stream whose DATA differ from it).
    remaining: Option<u64>,
    /// For a client that sent `expect: 100-continue`.
    to_continue: ContinueOwed,
}

impl RequestBody {
    pub fn new(inbound: Arc<Inbound>, declared: Option<u64>) -> Self {
        RequestBody {
            inbound,
            remaining: declared,
            to_continue: ContinueOwed::default(),
        }
    }

    /// Sends `100 Continue` through `sink` when the body is first read.
    pub fn continue_through(mut self, sink: InterimSink) -> Self {
        self.to_continue = ContinueOwed::to(sink);
        self
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let arrived = self.inbound.has_arrived();
        self.to_continue.body_asked(arrived);
        let polled = self.inbound.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(remaining)) = (frame.data_ref(), &mut self.remaining) {
                *remaining = remaining.saturating_sub(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inbound.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None if self.is_end_stream() => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.inbound.drop_reader();
    }
}

/// What a tunnel's writer has queued for the client, shared with the
/// connection that sends it as DATA.
#[derive(Default)]
pub struct Outbound {
    state: Mutex<OutState>,
}

#[derive(Default)]
struct OutState {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The writer shut its side (or is gone), or the stream is.
    closed: bool,
    writer: Option<Waker>,
    connection: Option<Waker>,
}

impl Outbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for waker in [state.writer.take(), state.connection.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }
}

/// The connection's end of a tunnel's [`Outbound`]: a body whose frames
/// are what the tunnel's writer wrote.
pub struct TunnelOut(pub Arc<Outbound>);

impl Body for TunnelOut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.0.lock();
        if let Some(data) = state.queue.pop_front() {
            state.queued -= data.len();
            if let Some(writer) = state.writer.take() {
                writer.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.connection = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for TunnelOut {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The client's side of a switched stream, as a byte stream: reads are
/// the client's DATA, writes go to the client as DATA.
pub struct Tunnel {
    inbound: RequestBody,
    outbound: Arc<Outbound>,
    /// Read but not yet given to the caller.
    unread: Bytes,
}

impl Tunnel {
    pub fn new(inbound: Arc<Inbound>, outbound: Arc<Outbound>) -> Self {
        Tunnel {
            inbound: RequestBody::new(inbound, None),
            outbound,
            unread: Bytes::new(),
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match std::task::ready!(Pin::new(&mut self.inbound).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.unread = data;
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.outbound.lock();
        if state.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if state.queued >= TUNNEL_QUEUE {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        state.queued += buf.len();
        state.queue.push_back(Bytes::copy_from_slice(buf));
        if let Some(connection) = state.connection.take() {
            connection.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outbound.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.outbound.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_reads_what_was_pushed_then_its_trailers_and_gives_credit_back() {
        let credit = Arc::new(Shared::default());
        let inbound = Inbound::new(Arc::clone(&credit));
        let mut body = RequestBody::new(Arc::clone(&inbound), Some(20_000));
        assert!(inbound.push(Bytes::from(vec![b'a'; 20_000])));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "1".parse().unwrap());
        inbound.finish(Some(trailers));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().map(Bytes::len), Some(20_000));
        assert_eq!(credit.take(), 20_000);
        assert_eq!(inbound.take_credit(), Some(20_000));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.trailers_ref().unwrap()["x-sum"], "1");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_reader_gives_its_unread_bytes_back_and_takes_no_more() {
        let credit = Arc::new(Shared::default());
        let inbound = Inbound::new(Arc::clone(&credit));
        let body = RequestBody::new(Arc::clone(&inbound), None);
        assert!(inbound.push(Bytes::from_static(b"abc")));
        drop(body);
        assert_eq!(credit.take(), 3);
        assert!(!inbound.push(Bytes::from_static(b"d")));
    }

    #[tokio::test]
    async fn a_tunnel_reads_the_clients_data_and_queues_its_writes_until_the_stream_goes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let inbound = Inbound::new(Arc::new(Shared::default()));
        let outbound = Arc::new(Outbound::default());
        let mut tunnel = Tunnel::new(Arc::clone(&inbound), Arc::clone(&outbound));
        inbound.push(Bytes::from_static(b"ping"));
        inbound.finish(None);
        let mut read = Vec::new();
        tunnel.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"ping");
        tunnel.write_all(b"pong").await.unwrap();
        let mut out = TunnelOut(Arc::clone(&outbound));
        let frame = out.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap(), "pong");
        drop(out);
        assert!(tunnel.write_all(b"more").await.is_err());
    }
}
