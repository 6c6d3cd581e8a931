//! The fast path's connections to servers: a socket and its read buffer,
//! kept per thread (no lock, no task of their own) between requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use zkgate_routing::FastHash;
use zkgate_tls::ClientTls;

use crate::dial::{dial, ConnectError};
use crate::http::upstream::PoolKey;
use crate::stream::Stream;

/// Idle connections kept per server and thread.
const MAX_IDLE_PER_SERVER: usize = 256;
/// Idle connections older than this are closed rather than reused: servers
/// commonly close keep-alive connections after 60 s or more, and reusing
/// one they are closing would fail the request.
const MAX_IDLE_AGE: Duration = Duration::from_secs(20);

/// Largest read buffer an idle connection keeps.
const MAX_IDLE_BUFFER: usize = 32 * 1024;

thread_local! {
    static IDLE: RefCell<HashMap<PoolKey, Vec<ServerConn>, FastHash>> = RefCell::default();
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

    /// A connection to `key` this thread kept, if one still looks usable
    /// `now`.
    pub fn cached(key: PoolKey, now: Instant) -> Option<ServerConn> {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.get_mut(&key)?;
            while let Some(conn) = list.pop() {
                let age = now.saturating_duration_since(conn.idle_since);
                if age < MAX_IDLE_AGE && conn.quiet() {
                    return Some(conn);
                }
            }
            None
        })
    }

    /// Keeps a connection whose last response was read to its end. Its idle
    /// age counts from `sent`, when that request went out: the clock was read
    /// then anyway, and an age a response's length too old only retires the
    /// connection a little sooner.
    pub fn checkin(mut self, key: PoolKey, sent: Instant) {
        self.idle_since = sent;
        if self.buf.capacity() > MAX_IDLE_BUFFER {
            // A large body's buffer is not kept while idle.
            self.buf = BytesMut::new();
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.entry(key).or_default();
            if list.len() >= MAX_IDLE_PER_SERVER {
                // Keep the freshest; the oldest is the likeliest to be closed by the server.
                list.remove(0);
            }
            list.push(self);
        });
    }

    /// Whether nothing arrived while idle. A server that closed the
    /// connection (or sent anything unasked) made it readable; the event
    /// loop already knows, so this costs no system call.
    fn quiet(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.io.tcp().poll_read_ready(&mut cx).is_pending()
    }
}
