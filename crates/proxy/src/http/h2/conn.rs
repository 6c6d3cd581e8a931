//! One HTTP/2 client connection as one future: it reads frames, hands each
//! request to the request core, and writes the answers, all in the
//! connection's own task. Requests are futures polled in place (no task
//! each); answers' bodies are polled as the client's windows allow; a
//! connection that is waiting holds no read or write buffer.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::future::Abortable;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::Sleep;

use super::frame::{self, setting, Reason};
use super::head::MAX_HEADER_LIST_SIZE;
use super::state::{fatal, Answering, ConnError, PeerSettings, Streams, STREAM_WINDOW};
use super::stream::Shared;
use crate::http::buffers::{self, Side};
use crate::http::fast::ClientIo;
use crate::http::full::ProxyService;

/// Streams a client may have open at once.
pub const MAX_CONCURRENT_STREAMS: usize = 256;
/// Request body bytes a client may send on the whole connection before
/// zkgate has passed them on (flow control; a stream's: `STREAM_WINDOW`).
pub const CONNECTION_WINDOW: i64 = 1024 * 1024;
/// Answer bytes waiting for the client beyond which the connection stops
/// reading it (a client that never reads cannot make zkgate queue).
pub(super) const WRITE_HIGH: usize = 64 * 1024;
/// Rounds of reading and writing in one poll before the task yields.
const ROUNDS: usize = 32;
/// How long a connection with no stream left, told to go (or failed),
/// waits for its client to take the last frames before it is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes a closing connection reads and drops before it stops waiting
/// for its client to close.
const DRAINED: usize = 64 * 1024;

/// A request being served by the request core, until its stream's
/// answer is ready (or the client resets the stream).
type Serving = Abortable<Answering>;

/// One client connection: its socket and buffers, HPACK decoder, streams,
/// the request core's work on them, flow-control windows both ways, and
/// how far it is from closing.
pub struct Connection {
    pub(super) io: ClientIo,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    pub(super) preface: bool,
    /// Bytes read before the connection was this one's (the fast path's
    /// first read), not handled yet.
    pub(super) unhandled: bool,
    /// The client's first frame, its SETTINGS, arrived.
    pub(super) settings_seen: bool,
    pub(super) decoder: loona_hpack::Decoder<'static>,
    /// A dynamic table size the client set, to announce in the next block.
    pub(super) table_size_update: Option<usize>,
    pub(super) service: ProxyService,
    pub(super) streams: Streams,
    pub(super) serving: FuturesUnordered<Serving>,
    /// The highest stream the client opened.
    pub(super) last_stream: u32,
    pub(super) peer: PeerSettings,
    pub(super) send_window: i64,
    pub(super) recv_window: i64,
    /// Connection window to give back that no reader holds (discarded DATA, padding).
    pub(super) unclaimed: i64,
    pub(super) shared: Arc<Shared>,
    /// A header block still waiting for its CONTINUATION frames.
    pub(super) partial: Option<super::state::Partial>,
    /// The last stream announced in a GOAWAY: no stream after it is served.
    pub(super) going_away: Option<u32>,
    /// The client sent GOAWAY: it opens no more streams.
    pub(super) client_gone: bool,
    /// A connection error: once the GOAWAY is out, the connection ends.
    pub(super) failed: Option<ConnError>,
    /// Streams the client reset before their answer, and answers finished.
    pub(super) cancelled: u64,
    pub(super) completed: u64,
    /// Streams zkgate had to reset for the client's faults.
    pub(super) refused: u64,
    /// Running once nothing but the last frames is left to send.
    linger: Option<Pin<Box<Sleep>>>,
    /// zkgate's side of the connection is shut.
    shut: bool,
    /// Bytes read and dropped since.
    drained: usize,
}

impl Connection {
    /// A connection whose client's first bytes, already read, are `read`.
    pub fn new(io: ClientIo, read: BytesMut, service: ProxyService) -> Connection {
        let mut write_buf = BytesMut::with_capacity(64);
        frame::settings(
            &mut write_buf,
            &[
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    MAX_CONCURRENT_STREAMS as u32,
                ),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW as u32),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE as u32),
                (setting::ENABLE_CONNECT_PROTOCOL, 1),
            ],
        );
        frame::window_update(
            &mut write_buf,
            0,
            (CONNECTION_WINDOW - frame::DEFAULT_WINDOW) as u32,
        );
        let unhandled = !read.is_empty();
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(4096);
        Connection {
            io,
            read_buf: read,
            write_buf,
            preface: false,
            unhandled,
            settings_seen: false,
            decoder,
            table_size_update: None,
            service,
            streams: Streams::default(),
            serving: FuturesUnordered::new(),
            last_stream: 0,
            peer: PeerSettings {
                initial_window: frame::DEFAULT_WINDOW,
                max_frame: frame::DEFAULT_MAX_FRAME,
            },
            send_window: frame::DEFAULT_WINDOW,
            recv_window: CONNECTION_WINDOW,
            unclaimed: 0,
            shared: Arc::new(Shared::default()),
            partial: None,
            going_away: None,
            client_gone: false,
            failed: None,
            cancelled: 0,
            completed: 0,
            refused: 0,
            linger: None,
            shut: false,
            drained: 0,
        }
    }

    /// Tells the client to open no more streams; the connection ends once
    /// those it opened are answered.
    pub fn graceful_shutdown(&mut self) {
        if self.going_away.is_none() && self.failed.is_none() {
            frame::goaway(&mut self.write_buf, self.last_stream, Reason::NO_ERROR);
            self.going_away = Some(self.last_stream);
        }
    }

    /// Whether the client has opened a stream yet.
    pub fn opened_any(&self) -> bool {
        self.last_stream > 0
    }

    /// Streams open (a switched one included).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Ends the connection with a GOAWAY for `err` (sent before it closes).
    pub(super) fn fail(&mut self, err: ConnError) {
        if self.failed.is_none() {
            frame::goaway(&mut self.write_buf, self.last_stream, err.reason);
            self.going_away.get_or_insert(self.last_stream);
            self.failed = Some(err);
            for (_, stream) in self.streams.drain() {
                super::state::close(stream, "the connection failed");
            }
        }
    }

    /// Reads what the client sent: how many bytes, 0 once it closed.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ConnError>> {
        if self.read_buf.capacity() == 0 {
            self.read_buf = buffers::take(Side::Server);
        } else if self.read_buf.capacity() - self.read_buf.len() < 1024 {
            self.read_buf.reserve(Side::Server.read_size());
        }
        let read = pin!(self.io.read_buf(&mut self.read_buf)).poll(cx);
        match read {
            Poll::Pending => {
                self.release_read_buf();
                if self.streams.is_empty() && self.streams.capacity() > 0 {
                    // Nothing in flight: a waiting connection keeps no
                    // room for streams either.
                    self.streams = Streams::default();
                }
                Poll::Pending
            }
            Poll::Ready(Err(_)) => {
                Poll::Ready(Err(fatal(Reason::NO_ERROR, "the client connection failed")))
            }
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
        }
    }

    /// Handles the whole frames read; a connection error fails it.
    fn handle_bytes(&mut self) {
        if let Err(err) = self.on_bytes() {
            self.fail(err);
        }
    }

    /// An empty read buffer goes back to the pool.
    fn release_read_buf(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            buffers::give(Side::Server, std::mem::take(&mut self.read_buf));
        }
    }

    /// Writes what is queued; ready once all of it is out.
    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        while !self.write_buf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err(fatal(
                        Reason::NO_ERROR,
                        "the client connection failed",
                    )))
                }
                Poll::Ready(Ok(n)) => self.write_buf.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
        if Pin::new(&mut self.io).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        if self.write_buf.capacity() > 4 * 1024 {
            // A waiting connection keeps no large write buffer.
            self.write_buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Gives the client back the window its readers freed.
    fn give_credit(&mut self) {
        let taken = self.shared.take() as i64 + std::mem::take(&mut self.unclaimed);
        if taken == 0 {
            return;
        }
        self.recv_window += taken;
        frame::window_update(&mut self.write_buf, 0, taken as u32);
        for (&id, stream) in &mut self.streams {
            let Some(inbound) = &stream.inbound else {
                continue;
            };
            if let Some(n) = inbound.take_credit() {
                stream.recv_window += n as i64;
                frame::window_update(&mut self.write_buf, id, n as u32);
            }
        }
    }

    /// Takes the answers the request core has ready.
    fn take_answers(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Poll::Ready(Some(served)) = self.serving.poll_next_unpin(cx) {
            progress = true;
            if let Ok((id, answer)) = served {
                self.start_answer(id, answer);
            }
            // Otherwise aborted: the client reset the stream first.
        }
        progress
    }

    fn done(&self) -> bool {
        let quitting = self.going_away.is_some() || self.client_gone;
        (self.failed.is_some() || (quitting && self.streams.is_empty()))
            && self.write_buf.is_empty()
    }

    /// Closes the connection once its last frames are out: its side is
    /// shut (FIN, or TLS close_notify), then whatever the client still
    /// sends is read and dropped until it closes too. Closing with bytes
    /// unread would reset the connection, and a reset can destroy the
    /// GOAWAY before the client reads it. `lingers` bounds the wait, and
    /// [`DRAINED`] what is read: a client still flooding is cut off.
    fn close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shut {
            std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx)).ok();
            self.shut = true;
        }
        loop {
            self.read_buf.clear();
            match self.read(cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    self.drained += n;
                    if self.drained > DRAINED {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Whether a connection left with nothing but its last frames to send
    /// has waited long enough for its client to take them.
    fn lingers(&mut self, cx: &mut Context<'_>) -> bool {
        let quitting = self.going_away.is_some() || self.client_gone;
        if self.failed.is_none() && !(quitting && self.streams.is_empty()) {
            self.linger = None;
            return false;
        }
        let linger = self
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        linger.as_mut().poll(cx).is_ready()
    }

    fn outcome(&mut self) -> Result<(), ConnError> {
        match self.failed.take() {
            Some(err) if err.reason != Reason::NO_ERROR => Err(err),
            _ => Ok(()),
        }
    }

    /// Whether to read the client now: not once the connection failed,
    /// nor while it does not take what it was sent. (A client that sent
    /// GOAWAY is still read: its open streams' DATA may follow.)
    fn can_read(&self) -> bool {
        self.failed.is_none() && self.write_buf.len() < WRITE_HIGH
    }
}

impl Future for Connection {
    type Output = Result<(), ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared.register(cx.waker());
        if std::mem::take(&mut this.unhandled) {
            this.handle_bytes();
        }
        for _ in 0..ROUNDS {
            let mut progress = false;
            if this.can_read() {
                match this.read(cx) {
                    // The client closed: nobody is left to answer.
                    Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        this.handle_bytes();
                        this.release_read_buf();
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {}
                }
            }
            progress |= this.send_interims();
            progress |= this.take_answers(cx);
            this.give_credit();
            progress |= this.send_bodies(cx);
            // Bytes written make room: answers held back for want of it
            // (whose bodies were then not polled, so will not wake the
            // task) go on in the next round.
            let queued = this.write_buf.len();
            let flushed = this.flush(cx);
            progress |= this.write_buf.len() < queued;
            match flushed {
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(())) if this.done() => {
                    if this.close(cx).is_ready() {
                        return Poll::Ready(this.outcome());
                    }
                }
                Poll::Ready(Ok(())) => {}
                Poll::Pending => {}
            }
            if this.lingers(cx) {
                return Poll::Ready(this.outcome());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
