//! The HTTP/1.1 fast path: the common request — bodiless, origin-form, to
//! an HTTP/1.1 backend — served from the client connection's own task, with
//! buffers from the worker's pool only while bytes are in flight (an idle
//! connection holds none): the head is parsed in place, the server gets
//! it with only hop-by-hop and X-Forwarded-* headers rewritten, and the
//! response's head and body are forwarded as bytes (chunked stays chunked).
//!
//! Anything else (a request body, `Upgrade`, `Expect`, HTTP/1.0, an
//! absolute URI, an HTTP/2 backend, a malformed or oversized head) hands the
//! connection, with the bytes read so far, to the hyper-based path for the
//! rest of its life; that path also gives malformed requests their answers.

mod ascii;
mod buffers;
mod chunked;
mod exchange;
mod framing;
mod head;
mod request;
mod timer;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod differential_requests;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::buffers::{Scratch, READ_SIZE};
use zkgate_routing::{Frontend, FrontendId};

use self::head::{Field, Scan};
use self::timer::Timer;
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
    /// The hyper path takes it over, starting with these unread bytes.
    Handover(ClientIo, BytesMut),
}

impl Client<'_> {
    /// Hands the connection to the hyper path, its activity brought up to date.
    fn handover(self) -> End {
        self.activity.resume(self.served, !self.buf.is_empty());
        End::Handover(self.io, self.buf)
    }
}

/// A client connection on the fast path.
struct Client<'a> {
    io: ClientIo,
    /// Read from the client and not yet served.
    buf: BytesMut,
    fields: Vec<Field>,
    /// The head for the server.
    upstream: Vec<u8>,
    /// What goes to the client next.
    out: Vec<u8>,
    peer: SocketAddr,
    /// The client's address as X-Forwarded-For text.
    client_text: &'a [u8],
    frontend: FrontendId,
    proxy: &'a Proxy,
    activity: &'a ConnActivity,
    /// Requests served on this connection.
    served: u64,
    /// When the last response from a server ended, if known without reading
    /// the clock again.
    ended: Option<Instant>,
    /// For every deadline of the connection, the client's and the servers'.
    timer: Timer,
}

/// Serves requests until the connection ends or needs the hyper path.
pub async fn serve(
    io: ClientIo,
    peer: SocketAddr,
    client_text: &[u8],
    frontend: &Frontend,
    proxy: &Proxy,
    activity: &ConnActivity,
    guard: &mut ConnectionGuard,
) -> End {
    let mut idle_since = tokio::time::Instant::now();
    let mut client = Client::new(io, peer, client_text, frontend, proxy, activity, idle_since);
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
                client.take_scratch();
                match head::scan(&client.buf, &mut client.fields) {
                    Scan::Complete(parsed) => break parsed,
                    Scan::Other => return client.handover(),
                    Scan::Partial if client.buf.len() >= MAX_HEAD_BYTES => {
                        return client.handover()
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
            Served::Hyper => return client.handover(),
        }
        match client.next_request(parsed.len, closing).await {
            Some(since) => idle_since = since,
            None => return End::Closed,
        }
    }
}

impl<'a> Client<'a> {
    fn new(
        io: ClientIo,
        peer: SocketAddr,
        client_text: &'a [u8],
        frontend: &Frontend,
        proxy: &'a Proxy,
        activity: &'a ConnActivity,
        accepted: tokio::time::Instant,
    ) -> Self {
        Client {
            io,
            // Taken from the worker's pool once bytes come.
            buf: BytesMut::new(),
            fields: Vec::new(),
            upstream: Vec::new(),
            out: Vec::new(),
            peer,
            client_text,
            frontend: frontend.id,
            proxy,
            activity,
            served: 0,
            ended: None,
            timer: Timer::new(accepted + Waiting::FirstRequest.limit(&frontend.timeouts)),
        }
    }

    /// Gives the buffers back to the worker's pool: nothing is in flight.
    fn release_buffers(&mut self) {
        debug_assert!(self.buf.is_empty());
        if self.buf.capacity() > 0 {
            buffers::give_read(std::mem::take(&mut self.buf));
        }
        if self.upstream.capacity() > 0 {
            buffers::give_scratch(Scratch {
                fields: std::mem::take(&mut self.fields),
                upstream: std::mem::take(&mut self.upstream),
                out: std::mem::take(&mut self.out),
            });
        }
    }

    /// Takes scratch vectors from the pool for a request, unless held.
    fn take_scratch(&mut self) {
        if self.upstream.capacity() == 0 {
            let scratch = buffers::take_scratch();
            self.fields = scratch.fields;
            self.upstream = scratch.upstream;
            self.out = scratch.out;
        }
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

/// Below this much free space, the read buffer grows before a read.
const MIN_READ: usize = 1024;

/// Reads more of a client's bytes into `buf`. A connection between
/// requests holds no buffer (`buf` without capacity): one is taken from the
/// worker's pool only when a read gives bytes, and given back while the
/// socket has none, so an idle connection waits with nothing allocated.
async fn read_more(io: &mut ClientIo, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() > 0 {
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(READ_SIZE);
        }
        return io.read_buf(buf).await;
    }
    loop {
        let mut taken = buffers::take_read();
        // One try without waiting: it gives bytes (a TLS session's
        // decrypted ones included), the end, or nothing for now.
        let tried = pin!(io.read_buf(&mut taken)).poll(&mut Context::from_waker(Waker::noop()));
        match tried {
            Poll::Ready(read) => {
                *buf = taken;
                return read;
            }
            Poll::Pending => buffers::give_read(taken),
        }
        io.get_ref().tcp().readable().await?;
    }
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
