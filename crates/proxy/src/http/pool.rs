//! The pool of HTTP/1.1 connections to servers, kept per worker thread (no
//! lock) between requests, whichever adapter opened or used them last. An
//! idle connection is either a socket and its read buffer (the fast path
//! left it), or still in hyper's hands (hyper's adapters left it): hyper
//! takes the next request on it as it is, and the fast path asks hyper to
//! hand the socket back first. Either way, one socket per server
//! connection, reused by every path.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use zkgate_routing::FastHash;
use zkgate_tls::ClientTls;

use std::net::SocketAddr;

use hyper::client::conn::http1;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::buffers::{self, Side};
use crate::dial::{dial, ConnectError};
use crate::stream::Stream;

/// Idle connections kept per server and worker for `MAX_IDLE_AGE`.
const KEPT_IDLE_PER_SERVER: usize = 256;
/// Most idle connections per server and worker: beyond the kept ones, a
/// burst's (64 HTTP/2 clients with 10 streams each keep 640 requests in
/// flight to one server). With no more than the kept ones, a burst of
/// answers closed connections the next burst of requests opened again (5 %
/// of such clients' requests paid for a new connection); those beyond the
/// kept ones go once no burst took them for `BURST_IDLE_AGE`, so that a
/// burst that is not repeated leaves no more than the kept ones behind.
const MAX_IDLE_PER_SERVER: usize = 1024;
/// How long a connection beyond the kept ones may stay idle.
const BURST_IDLE_AGE: Duration = Duration::from_secs(1);
/// Idle connections older than this are closed rather than reused: servers
/// commonly close keep-alive connections after 60 s or more, and reusing
/// one they are closing would fail the request.
const MAX_IDLE_AGE: Duration = Duration::from_secs(20);
/// How often a worker closes the idle connections no request would take.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// By server: addresses the proxy picked, not client input, so a cheap
    /// unkeyed hash is safe (SipHash is a measurable part of a small request).
    static IDLE: RefCell<HashMap<PoolKey, VecDeque<Idle>, FastHash>> = RefCell::default();
}

/// Which open connections a request may use: those to the same server made
/// with the same TLS settings (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The server.
    pub server: SocketAddr,
    /// [`ClientTls::id`], 0 for cleartext.
    tls: u64,
}

impl PoolKey {
    /// The key of connections to `server` made with `tls`.
    pub fn new(server: SocketAddr, tls: Option<&ClientTls>) -> Self {
        PoolKey {
            server,
            tls: tls.map_or(0, |tls| tls.id),
        }
    }
}

/// An idle connection in the pool.
enum Idle {
    /// A socket, as the fast path left it.
    Raw(ServerConn),
    /// A socket hyper holds, as hyper's adapters left it.
    Lent(Lent, Instant),
}

impl Idle {
    /// Whether it is still worth trying `now`: young enough, and the
    /// server did not close it (or send anything unasked) meanwhile.
    fn usable(&self, now: Instant) -> bool {
        let open = match self {
            Idle::Raw(conn) => conn.quiet(),
            Idle::Lent(lent, _) => lent.is_open(),
        };
        now.saturating_duration_since(self.since()) < MAX_IDLE_AGE && open
    }

    /// When it went idle.
    fn since(&self) -> Instant {
        match self {
            Idle::Raw(conn) => conn.idle_since,
            Idle::Lent(_, since) => *since,
        }
    }
}

/// Closes, every few seconds, this thread's idle connections that no
/// request would take any more (too old, or closed by their server): when
/// traffic stops, nothing else would, and each keeps a socket open on
/// both ends. Runs on every worker for the life of the process.
pub async fn sweep_idle() {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sweep(Instant::now());
    }
}

fn sweep(now: Instant) {
    IDLE.with(|idle| {
        idle.borrow_mut().retain(|_, list| {
            list.retain(|conn| conn.usable(now));
            // Oldest first: beyond the kept ones, those no burst took.
            while list.len() > KEPT_IDLE_PER_SERVER
                && list.front().is_some_and(|conn| {
                    now.saturating_duration_since(conn.since()) >= BURST_IDLE_AGE
                })
            {
                list.pop_front();
            }
            !list.is_empty()
        });
    });
}

/// Takes the freshest usable idle connection to `key`.
fn take(key: PoolKey, now: Instant) -> Option<Idle> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        while let Some(conn) = list.pop_back() {
            if conn.usable(now) {
                return Some(conn);
            }
        }
        None
    })
}

fn keep(key: PoolKey, conn: Idle) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() >= MAX_IDLE_PER_SERVER {
            // Keep the freshest; the oldest is the likeliest to be closed by the server.
            list.pop_front();
        }
        list.push_back(conn);
    });
}

/// An idle connection to `key` for hyper: one hyper holds as it is, or a
/// socket to lend it.
pub(super) fn take_for_hyper(key: PoolKey, now: Instant) -> Option<Result<Lent, ServerConn>> {
    Some(match take(key, now)? {
        Idle::Lent(lent, _) => Ok(lent),
        Idle::Raw(conn) => Err(conn),
    })
}

/// Keeps a connection hyper holds, whose last response was read to its end.
pub(super) fn keep_lent(key: PoolKey, lent: Lent) {
    keep(key, Idle::Lent(lent, Instant::now()));
}

/// What zkgate sends servers: the client's body streamed, or a body known
/// whole (none, for a replay; a mirror's copy).
pub type UpstreamBody = http_body_util::Either<
    crate::http::request_body::ClientBody,
    http_body_util::Full<bytes::Bytes>,
>;

/// A pooled socket in hyper's hands: its request half, and where its task
/// hands the socket back once that half is dropped while the connection is
/// idle and clean (nothing read beyond the last response).
pub struct Lent {
    /// hyper's request half of the connection.
    pub sender: http1::SendRequest<UpstreamBody>,
    back: oneshot::Receiver<ServerConn>,
}

impl Lent {
    /// A socket lent to hyper: `sender` is its request half, and `back`
    /// where hyper's task hands it back.
    pub fn new(
        sender: http1::SendRequest<UpstreamBody>,
        back: oneshot::Receiver<ServerConn>,
    ) -> Self {
        Lent { sender, back }
    }

    /// Whether hyper still considers the connection open.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// The socket, taken back from hyper; `None` if hyper found it unfit.
    pub async fn hand_back(self) -> Option<ServerConn> {
        let Lent { sender, back } = self;
        drop(sender);
        back.await.ok()
    }
}

/// An HTTP/1.1 connection to a server.
pub struct ServerConn {
    pub io: Stream,
    /// Bytes read from the server and not yet forwarded.
    pub buf: BytesMut,
    idle_since: Instant,
}

impl ServerConn {
    /// Connects within `timeout` (TCP, then TLS if the backend uses it).
    pub async fn open(
        key: PoolKey,
        tls: Option<&ClientTls>,
        timeout: Duration,
    ) -> Result<ServerConn, ConnectError> {
        Ok(ServerConn {
            io: dial(key.server, None, tls, timeout).await?,
            buf: BytesMut::new(),
            idle_since: Instant::now(),
        })
    }

    /// A socket to `key` this thread kept, if one still looks usable `now`;
    /// taken back from hyper if hyper holds it.
    pub async fn cached(key: PoolKey, now: Instant) -> Option<ServerConn> {
        match take(key, now)? {
            Idle::Raw(conn) => Some(conn),
            // Rare (the paths take turns on one server) and its future
            // larger: boxed, so the common case's future stays small.
            Idle::Lent(lent, _) => Box::pin(Self::take_back(lent, key, now)).await,
        }
    }

    /// The socket of `lent` once hyper hands it back, or the next usable one.
    async fn take_back(mut lent: Lent, key: PoolKey, now: Instant) -> Option<ServerConn> {
        loop {
            if let Some(conn) = lent.hand_back().await.filter(ServerConn::quiet) {
                return Some(conn);
            }
            match take(key, now)? {
                Idle::Raw(conn) => return Some(conn),
                Idle::Lent(next, _) => lent = next,
            }
        }
    }

    /// A connection over `io`, which carries no unread bytes.
    pub fn over(io: Stream) -> ServerConn {
        ServerConn {
            io,
            buf: BytesMut::new(),
            idle_since: Instant::now(),
        }
    }

    /// Keeps a connection whose last response was read to its end. Its idle
    /// age counts from `sent`, when that request went out: the clock was read
    /// then anyway, and an age a response's length too old only retires the
    /// connection a little sooner.
    pub fn checkin(mut self, key: PoolKey, sent: Instant) {
        debug_assert!(self.buf.is_empty());
        self.idle_since = sent;
        // An idle connection holds no buffer: the next answer takes one
        // from the worker's pool when its first bytes come.
        buffers::give(Side::Server, std::mem::take(&mut self.buf));
        keep(key, Idle::Raw(self));
    }

    /// Reads what the server sent next into `buf`; a connection waiting
    /// for its answer holds a buffer only once bytes come (see
    /// [`buffers::read_pooled`]).
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() > 0 {
            self.buf.reserve(Side::Server.read_size());
        }
        buffers::read_pooled(&mut self.io, &mut self.buf, Side::Server).await
    }

    /// [`ServerConn::read_more`] as a poll, for a body read by whoever
    /// polls it (the full path's bodies): the buffer comes from the
    /// worker's pool once bytes are awaited.
    pub fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf = buffers::take(Side::Server);
        } else {
            self.buf.reserve(Side::Server.read_size());
        }
        std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    /// Whether nothing arrived while idle. A server that closed the
    /// connection (or sent anything unasked) made it readable; the event
    /// loop already knows, so this costs no system call.
    fn quiet(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.io.tcp().poll_read_ready(&mut cx).is_pending()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_sweep_closes_idle_connections_too_old_to_reuse_and_keeps_the_others() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let key = PoolKey::new(listener.local_addr().unwrap(), None);
        let timeout = Duration::from_secs(5);
        let old = ServerConn::open(key, None, timeout).await.unwrap();
        let (mut old_peer, _) = listener.accept().await.unwrap();
        let fresh = ServerConn::open(key, None, timeout).await.unwrap();
        let (_fresh_peer, _) = listener.accept().await.unwrap();
        let now = Instant::now();
        old.checkin(key, now.checked_sub(MAX_IDLE_AGE * 2).unwrap());
        fresh.checkin(key, now);

        sweep(now);

        // The old one is closed: its server reads the end.
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(timeout, old_peer.read(&mut byte)).await;
        assert_eq!(read.unwrap().unwrap(), 0, "the old connection is closed");
        // The fresh one stays, and is the one taken.
        assert!(ServerConn::cached(key, now).await.is_some());
        assert!(ServerConn::cached(key, now).await.is_none());
    }

    #[tokio::test]
    async fn a_burst_s_connections_beyond_the_kept_ones_go_once_no_burst_takes_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let key = PoolKey::new(listener.local_addr().unwrap(), None);
        let timeout = Duration::from_secs(5);
        let burst = KEPT_IDLE_PER_SERVER + 44;
        let mut peers = Vec::new();
        let now = Instant::now();
        for i in 0..burst {
            let conn = ServerConn::open(key, None, timeout).await.unwrap();
            peers.push(listener.accept().await.unwrap().0);
            // Idle for two seconds, the last 20 for a moment only.
            let idle = if i < burst - 20 { 2000 } else { 10 };
            conn.checkin(key, now.checked_sub(Duration::from_millis(idle)).unwrap());
        }
        let count = || IDLE.with(|idle| idle.borrow().get(&key).map_or(0, VecDeque::len));
        assert_eq!(count(), burst, "a burst's worth is held");

        sweep(now);

        // The kept ones stay, the freshest among them; the oldest 44 went.
        assert_eq!(count(), KEPT_IDLE_PER_SERVER);
        let mut byte = [0u8; 1];
        for peer in &mut peers[..44] {
            let read = tokio::time::timeout(timeout, peer.read(&mut byte)).await;
            assert_eq!(read.unwrap().unwrap(), 0, "an extra connection is closed");
        }
        // A second sweep leaves the kept ones, however long idle.
        sweep(now + Duration::from_secs(5));
        assert_eq!(count(), KEPT_IDLE_PER_SERVER);
    }
}
