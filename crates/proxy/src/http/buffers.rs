//! Read buffers taken from a pool of the worker's only while bytes are in
//! flight, on both sides of the proxy: a client connection waiting for its
//! next request, and a server connection waiting for its answer or idle in
//! the pool, hold none (as HAProxy's connections hold no buffer while
//! nothing moves). A worker is one thread, so a pool is a thread-local
//! list: no lock, no sharing. A pool keeps at most [`KEPT`] buffers;
//! beyond, they go back to the allocator, so memory follows the
//! connections that are busy, not those that ever were.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread::LocalKey;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::io::CountingIo;
use crate::stream::Stream;

/// Buffers each pool keeps for reuse.
const KEPT: usize = 64;

/// Which side a buffer reads from, and so its size.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// A client: request heads, 8 KiB at a time.
    Client,
    /// A server: response heads and the bodies that come with them, 16 KiB
    /// at a time.
    Server,
}

impl Side {
    /// How much is read at once into a buffer of this side.
    pub const fn read_size(self) -> usize {
        match self {
            Side::Client => 8 * 1024,
            Side::Server => 16 * 1024,
        }
    }

    fn pool(self) -> &'static LocalKey<RefCell<Vec<BytesMut>>> {
        match self {
            Side::Client => &CLIENT_READS,
            Side::Server => &SERVER_READS,
        }
    }
}

thread_local! {
    static CLIENT_READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static SERVER_READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer of `side`'s size.
pub fn take(side: Side) -> BytesMut {
    side.pool()
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(side.read_size()))
}

/// Returns a read buffer, emptied; one not of `side`'s size is freed.
pub fn give(side: Side, mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    // Reclaims the bytes advanced past: a lone owner gets its whole
    // allocation back without copying (and a smaller one is freed).
    if !buf.try_reclaim(side.read_size()) || buf.capacity() != side.read_size() {
        return;
    }
    side.pool().with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT {
            pool.push(buf);
        }
    });
}

/// A socket whose TCP readiness can be waited on.
pub trait OnTcp {
    fn tcp(&self) -> &TcpStream;
}

impl OnTcp for Stream {
    fn tcp(&self) -> &TcpStream {
        Stream::tcp(self)
    }
}

impl OnTcp for CountingIo<Stream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().tcp()
    }
}

/// Reads into `buf`. A `buf` without capacity (nothing in flight) gets one
/// from `side`'s pool only when a read gives bytes or the end; while the
/// socket has none, it waits for it to become readable holding nothing.
pub async fn read_pooled<T>(io: &mut T, buf: &mut BytesMut, side: Side) -> io::Result<usize>
where
    T: AsyncRead + OnTcp + Unpin,
{
    if buf.capacity() > 0 {
        return io.read_buf(buf).await;
    }
    loop {
        if let Poll::Ready(read) = try_read(io, buf, side) {
            return read;
        }
        // Polled in place rather than through `readable()`, whose future
        // would take room in every waiting connection's task.
        poll_fn(|cx| io.tcp().poll_read_ready(cx)).await?;
    }
}

/// One read without waiting, into a buffer from the pool that is kept only
/// if it gets bytes (a TLS session's decrypted ones included) or the end.
fn try_read<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    side: Side,
) -> Poll<io::Result<usize>> {
    let mut taken = take(side);
    let tried = pin!(io.read_buf(&mut taken)).poll(&mut Context::from_waker(Waker::noop()));
    if tried.is_ready() {
        *buf = taken;
    } else {
        give(side, taken);
    }
    tried
}
