//! The HTTP/1.1 fast path: the common request — bodiless, origin-form, to
//! an HTTP/1.1 backend — served from the client connection's own task, with
//! buffers from the worker's pool only while bytes are in flight (an idle
//! connection holds none): the head is parsed in place, the server gets
//! it with only hop-by-hop and X-Forwarded-* headers rewritten, and the
//! response's head and body are forwarded as bytes (chunked stays chunked).
//!
//! A request whose backend speaks HTTP/2, whose answer is compressed, or
//! which has a body (one plain `Content-Length`, or one `Transfer-Encoding:
//! chunked`) goes through the request core as an `http::Request` (`core`),
//! its body read as the core takes it (`body`, with a `100` for `Expect:
//! 100-continue`), its answer written back as HTTP/1.1 (`answer`).
//! Anything else (a body framed otherwise, `Upgrade`, another `Expect`,
//! HTTP/1.0, an absolute URI, a malformed or oversized head) hands the
//! connection, with
//! the bytes read so far, to the hyper-based path for the rest of its
//! life; that path also gives malformed requests their answers.

mod answer;
mod ascii;
mod body;
pub(crate) mod chunked;
mod core;
mod exchange;
pub(crate) mod framing;
mod head;
mod request;
mod scratch;
mod timer;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod differential_answers;
#[cfg(test)]
mod differential_requests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::HeaderValue;
use tokio::io::AsyncWriteExt;

use self::scratch::Scratch;
use super::buffers::{self, Side};
use zkgate_routing::{Frontend, FrontendId};

use self::head::Scan;
use self::timer::Timer;
use super::headers::client_address_value;
use super::policy::client_wait::{closes_on_shutdown, Waiting};
use super::policy::MAX_HEAD_BYTES;
use super::response::REQUEST_TIMEOUT_RAW;
use crate::connections::ConnectionGuard;
use crate::io::{ConnActivity, CountingIo};
use crate::stream::Stream;
use crate::Proxy;

/// The counted client socket.
pub type ClientIo = CountingIo<Stream>;

/// How a connection left the fast path.
pub enum End {
    /// It is finished (closed by either side, timed out, or shut down).
    Closed,
    /// The hyper path takes it over ([`Client::into_handover`]).
    Handover,
    /// A cleartext client opened with HTTP/2's connection preface (h2c
    /// with prior knowledge): zkgate's HTTP/2 layer takes it over
    /// ([`Client::into_parts`]).
    H2,
}

/// A client connection on the fast path: all an idle keep-alive connection
/// holds (its buffers are the worker's while it waits).
pub struct Client<'a> {
    io: ClientIo,
    /// Read from the client and not yet served.
    buf: BytesMut,
    /// The vectors a request is served with, while one is (boxed: an idle
    /// connection keeps one word for them).
    scratch: Option<Box<Scratch>>,
    peer: SocketAddr,
    /// The client's address as X-Forwarded-For text.
    client_text: HeaderValue,
    frontend: FrontendId,
    proxy: &'a Proxy,
    /// Requests served on this connection.
    served: u64,
    /// When the last response from a server ended, if known without reading
    /// the clock again.
    ended: Option<Instant>,
    /// For every deadline of the connection, the client's and the servers'.
    timer: Timer,
}

impl<'a> Client<'a> {
    /// A connection just accepted (and through its TLS handshake, if any).
    pub fn new(stream: Stream, peer: SocketAddr, frontend: &Frontend, proxy: &'a Proxy) -> Self {
        // No `ConnActivity`: the fast path keeps its own time; the hyper
        // path gets one if it takes the connection over.
        let io = CountingIo::new(
            stream,
            frontend.metrics.bytes_received.clone(),
            frontend.metrics.bytes_sent.clone(),
            None,
        );
        let accepted = tokio::time::Instant::now();
        Client {
            io,
            // Taken from the worker's pool once bytes come.
            buf: BytesMut::new(),
            scratch: None,
            peer,
            client_text: client_address_value(peer.ip()),
            frontend: frontend.id,
            proxy,
            served: 0,
            ended: None,
            timer: Timer::new(accepted + Waiting::FirstRequest.limit(&frontend.timeouts)),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether TLS's ALPN chose HTTP/2.
    pub fn alpn_h2(&self) -> bool {
        self.io.get_ref().alpn() == Some(b"h2")
    }

    /// The socket and the bytes read from it and not served.
    pub fn into_parts(mut self) -> (ClientIo, BytesMut) {
        let unread = self.take_unread();
        (self.io, unread)
    }

    /// The bytes read and not served, copied out of the pool's buffer,
    /// which goes back: the hyper paths would hold it for the connection's
    /// life.
    fn take_unread(&mut self) -> BytesMut {
        let unread = BytesMut::from(&self.buf[..]);
        self.buf.clear();
        self.release_buffers();
        unread
    }

    /// What the hyper path takes over after [`End::Handover`]: the socket,
    /// the bytes read and not served, and the connection's activity so far.
    pub fn into_handover(mut self) -> (ClientIo, BytesMut, Arc<ConnActivity>) {
        let activity = ConnActivity::new();
        activity.resume(self.served, !self.buf.is_empty());
        self.io.watch(Arc::clone(&activity));
        let unread = self.take_unread();
        (self.io, unread, activity)
    }
}

/// Serves requests until the connection ends or needs the hyper path.
///
/// Not an `async fn`, which would keep a second copy of its arguments in
/// every idle connection's task.
#[allow(clippy::manual_async_fn)]
pub fn serve<'c, 'a: 'c>(
    client: &'c mut Client<'a>,
    frontend: &'c Frontend,
    guard: &'c mut ConnectionGuard,
) -> impl Future<Output = End> + Send + use<'c, 'a> {
    async move {
        let mut idle_since = tokio::time::Instant::now();
        let mut stopping = *guard.shutdown.borrow();
        let mut watching = !stopping;
        // Waited on for the whole connection, not per request: registering a
        // waiter with the channel (and removing it) took ~3 % of a request's
        // instructions.
        let mut shutdown = guard.shutdown.clone();
        let shutdown_begins = shutdown.changed();
        tokio::pin!(shutdown_begins);
        // When the first bytes of a head that did not come whole were seen.
        let mut head_since = None;
        loop {
            // Read until the buffer starts with a complete head.
            let parsed = loop {
                if !client.buf.is_empty() {
                    if client.served == 0 && client.opens_h2() {
                        return End::H2;
                    }
                    let scratch = client.scratch.get_or_insert_with(scratch::take_scratch);
                    match head::scan(&client.buf, &mut scratch.fields) {
                        Scan::Complete(parsed) => break parsed,
                        Scan::Other => return End::Handover,
                        Scan::Partial if client.buf.len() >= MAX_HEAD_BYTES => {
                            return End::Handover
                        }
                        Scan::Partial => {
                            head_since.get_or_insert_with(tokio::time::Instant::now);
                        }
                    }
                } else if stopping && closes_on_shutdown(client.served > 0) {
                    return End::Closed;
                }
                let (waiting, since) = match head_since {
                    Some(since) => (Waiting::RestOfHead, since),
                    None => (client.between_requests(), idle_since),
                };
                let deadline = since + waiting.limit(&frontend.timeouts);
                if client.buf.is_empty() {
                    client.release_buffers();
                }
                tokio::select! {
                    biased;
                    read = read_more(&mut client.io, &mut client.buf) => match read {
                        Ok(0) | Err(_) => return End::Closed,
                        Ok(_) => {}
                    },
                    () = client.timer.until(deadline) => return client.time_out(waiting).await,
                    changed = &mut shutdown_begins, if watching => {
                        watching = false;
                        stopping = changed.is_ok();
                    }
                }
            };
            head_since = None;
            let mut closing = parsed.close || stopping || *guard.shutdown.borrow();
            // Boxed: a request's state (its exchange with a server) is taken
            // from the allocator only while it is served, so that an idle
            // connection's task stays small.
            match Box::pin(client.request(parsed, closing)).await {
                Served::Next => {}
                Served::Last => closing = true,
                Served::Close => return End::Closed,
                Served::Hyper => return End::Handover,
            }
            match client.next_request(parsed.len, closing).await {
                Some(since) => idle_since = since,
                None => return End::Closed,
            }
        }
    }
}

impl Client<'_> {
    /// Gives the buffers back to the worker's pool: nothing is in flight.
    fn release_buffers(&mut self) {
        debug_assert!(self.buf.is_empty());
        if self.buf.capacity() > 0 {
            buffers::give(Side::Client, std::mem::take(&mut self.buf));
        }
        if let Some(scratch) = self.scratch.take() {
            scratch::give_scratch(scratch);
        }
    }

    /// The request's scratch vectors.
    fn scratch(&self) -> &Scratch {
        self.scratch.as_deref().expect(SCRATCH_HELD)
    }

    fn scratch_mut(&mut self) -> &mut Scratch {
        self.scratch.as_deref_mut().expect(SCRATCH_HELD)
    }

    /// Whether a cleartext client began with `PRI `, as HTTP/2's
    /// connection preface does and no HTTP/1 request does.
    fn opens_h2(&self) -> bool {
        const PREFACE: &[u8] = b"PRI ";
        matches!(self.io.get_ref(), Stream::Plain(_)) && self.buf.starts_with(PREFACE)
    }

    /// What the connection waits for while no request head has begun.
    fn between_requests(&self) -> Waiting {
        if self.served == 0 {
            Waiting::FirstRequest
        } else {
            Waiting::NextRequest
        }
    }

    /// The client kept zkgate `waiting` too long: told so if it began a
    /// request, and closed.
    async fn time_out(&mut self, waiting: Waiting) -> End {
        if waiting.answers_timeout() {
            // Best effort: the client may already be gone.
            if self.io.write_all(&REQUEST_TIMEOUT_RAW).await.is_ok() {
                self.io.shutdown().await.ok();
            }
        }
        End::Closed
    }

    /// Done with a request whose head was `head_len` bytes: the connection
    /// closes if `closing`, else waits for the next request from the
    /// returned instant (when the response ended).
    async fn next_request(
        &mut self,
        head_len: usize,
        closing: bool,
    ) -> Option<tokio::time::Instant> {
        self.buf.advance(head_len);
        self.served += 1;
        if closing {
            self.io.shutdown().await.ok();
            return None;
        }
        Some(
            self.ended
                .take()
                .map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
        )
    }
}

/// Scratch vectors are taken as a request's head is parsed, before
/// anything uses them.
const SCRATCH_HELD: &str = "scratch vectors are held while a request is served";

/// Below this much free space, the read buffer grows before a read.
const MIN_READ: usize = 1024;

/// Reads more of a client's bytes into `buf`. A connection between
/// requests holds no buffer (`buf` without capacity): see
/// [`buffers::read_pooled`].
async fn read_more(io: &mut ClientIo, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() > 0 && buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(Side::Client.read_size());
    }
    buffers::read_pooled(io, buf, Side::Client).await
}

/// `served`, but the last on the connection if `last`.
fn last_if(served: Served, last: bool) -> Served {
    match served {
        Served::Next if last => Served::Last,
        served => served,
    }
}

/// What follows a request.
enum Served {
    /// The connection may carry another request.
    Next,
    /// It was the last: the response said so, and the connection closes.
    Last,
    /// It must close.
    Close,
    /// The hyper path must serve this request (and the rest).
    Hyper,
}
