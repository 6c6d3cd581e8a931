//! Connections to servers. HTTP/1.1 connections are pooled per thread (no
//! lock, no sharing between cores) and go back to the pool once a response
//! was read to its end; an HTTP/2 connection is shared by every request of a
//! thread to that server. Either is a [`Conn`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::debug;
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, FastHash};

use super::body::ProxyBody;
use crate::dial::dial;
pub use crate::dial::ConnectError;
use zkgate_tls::ClientTls;

/// What zkgate sends servers: the client's body streamed, or nothing (a replay).
pub type UpstreamBody = http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>;

/// An HTTP/1.1 connection's request half.
pub type Sender = http1::SendRequest<UpstreamBody>;
type H2Sender = http2::SendRequest<UpstreamBody>;

/// Idle HTTP/1.1 connections kept per server and thread.
const MAX_IDLE_PER_SERVER: usize = 256;
/// Idle connections older than this are dropped rather than reused: servers
/// commonly close keep-alive connections after 60 s or more, and reusing one
/// they are closing would fail the request.
const MAX_IDLE_AGE: Duration = Duration::from_secs(20);

thread_local! {
    static IDLE: RefCell<Pool<Vec<(Sender, Instant)>>> = RefCell::new(Pool::default());
    static H2: RefCell<Pool<H2Sender>> = RefCell::new(Pool::default());
}

/// A thread's connections by server (addresses the proxy picked, not client
/// input: a cheap unkeyed hash is safe, and SipHash is a measurable part of a
/// small request).
type Pool<T> = HashMap<PoolKey, T, FastHash>;

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

/// A connection to a server, of either HTTP version.
pub enum Conn {
    /// HTTP/1.1: one request at a time.
    H1(Sender),
    /// HTTP/2: multiplexed, shared.
    H2(H2Sender),
}

impl Conn {
    /// An open connection to `server` this thread already has, if any.
    pub fn cached(protocol: Protocol, server: PoolKey) -> Option<Conn> {
        match protocol {
            Protocol::Http1 => IDLE.with(|idle| {
                let mut idle = idle.borrow_mut();
                let list = idle.get_mut(&server)?;
                while let Some((sender, since)) = list.pop() {
                    if !sender.is_closed() && since.elapsed() < MAX_IDLE_AGE {
                        return Some(Conn::H1(sender));
                    }
                }
                None
            }),
            Protocol::Http2 => H2.with(|h2| {
                let mut h2 = h2.borrow_mut();
                match h2.get(&server) {
                    Some(sender) if !sender.is_closed() => Some(Conn::H2(sender.clone())),
                    Some(_) => {
                        h2.remove(&server);
                        None
                    }
                    None => None,
                }
            }),
        }
    }

    /// Opens a new connection (an HTTP/2 one is kept for the thread).
    pub async fn open(
        protocol: Protocol,
        server: PoolKey,
        tls: Option<&ClientTls>,
        timeout: Duration,
    ) -> Result<Conn, ConnectError> {
        let io = TokioIo::new(dial(server.server, None, tls, timeout).await?);
        match protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::Builder::new()
                    .handshake(io)
                    .await
                    .map_err(ConnectError::Http)?;
                spawn_connection(server.server, connection);
                Ok(Conn::H1(sender))
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(ConnectError::Http)?;
                spawn_connection(server.server, connection);
                H2.with(|h2| h2.borrow_mut().insert(server, sender.clone()));
                Ok(Conn::H2(sender))
            }
        }
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Conn::H1(sender) => sender.ready().await,
            Conn::H2(sender) => sender.ready().await,
        }
    }

    /// Sends a request; on failure the request comes back if nothing of it was sent.
    pub async fn send(
        &mut self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>> {
        match self {
            Conn::H1(sender) => sender.try_send_request(request).await,
            Conn::H2(sender) => sender.try_send_request(request).await,
        }
    }

    /// The response body towards the client; an HTTP/1.1 connection returns
    /// to the pool when it has been read to its end.
    pub fn body(self, body: Incoming, server: PoolKey, active: ActiveRequest) -> ProxyBody {
        match self {
            Conn::H1(sender) => ProxyBody::upstream(body, (server, sender), active),
            Conn::H2(_) => ProxyBody::detached(body, active),
        }
    }
}

/// Returns an HTTP/1.1 connection whose last response was fully read.
pub fn checkin(server: PoolKey, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(server).or_default();
        if list.len() >= MAX_IDLE_PER_SERVER {
            // Keep the freshest; the oldest is the likeliest to be closed by the server.
            list.remove(0);
        }
        list.push((sender, Instant::now()));
    });
}

fn spawn_connection<F>(server: SocketAddr, connection: F)
where
    F: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(%server, error = %err, "server connection ended with an error");
        }
    });
}

/// Opens an HTTP/1.1 connection that can be upgraded (for one `Upgrade`
/// request; never pooled).
pub async fn connect_for_upgrade(
    server: SocketAddr,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Sender, ConnectError> {
    let io = TokioIo::new(dial(server, None, tls, timeout).await?);
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(ConnectError::Http)?;
    spawn_connection(server, connection.with_upgrades());
    Ok(sender)
}
