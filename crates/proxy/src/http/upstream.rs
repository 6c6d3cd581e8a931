//! Connections to servers: a per-thread pool of idle HTTP/1.1 connections
//! (no lock, no sharing between cores), and connecting with a timeout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

/// What zkgate sends servers: the client's body streamed, or nothing (a replay).
pub type UpstreamBody = http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>;

/// A connection's request half.
pub type Sender = SendRequest<UpstreamBody>;

/// Idle connections kept per server and thread.
const MAX_IDLE_PER_SERVER: usize = 256;
/// Idle connections older than this are dropped rather than reused: servers
/// commonly close keep-alive connections after 60 s or more, and reusing one
/// they are closing would fail the request.
const MAX_IDLE_AGE: Duration = Duration::from_secs(20);

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<(Sender, Instant)>>> = RefCell::new(HashMap::new());
}

/// An idle, open connection to `server`, if this thread has one.
pub fn checkout(server: SocketAddr) -> Option<Sender> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&server)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < MAX_IDLE_AGE {
                return Some(sender);
            }
        }
        None
    })
}

/// Returns a connection whose last response was fully read.
pub fn checkin(server: SocketAddr, sender: Sender) {
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

/// Why no connection to a server could be made.
#[derive(Debug)]
pub enum ConnectError {
    /// `connect` timed out.
    Timeout,
    /// Refused, unreachable, reset, …
    Io(std::io::Error),
    /// The HTTP handshake failed.
    Http(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timed out"),
            ConnectError::Io(err) => write!(f, "{err}"),
            ConnectError::Http(err) => write!(f, "{err}"),
        }
    }
}

/// Opens a new HTTP/1.1 connection to `server`.
pub async fn connect(server: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(err)) => return Err(ConnectError::Io(err)),
        Ok(Ok(stream)) => stream,
    };
    stream.set_nodelay(true).ok();
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(%server, error = %err, "server connection ended with an error");
        }
    });
    Ok(sender)
}

/// Opens a connection that can be upgraded (for one `Upgrade` request; it is never pooled).
pub async fn connect_for_upgrade(
    server: SocketAddr,
    timeout: Duration,
) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(err)) => return Err(ConnectError::Io(err)),
        Ok(Ok(stream)) => stream,
    };
    stream.set_nodelay(true).ok();
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            debug!(%server, error = %err, "upgradable server connection ended with an error");
        }
    });
    Ok(sender)
}

/// A multiplexed HTTP/2 connection's request half (cheap to clone).
pub type H2Sender = hyper::client::conn::http2::SendRequest<UpstreamBody>;

thread_local! {
    static H2: RefCell<HashMap<SocketAddr, H2Sender>> = RefCell::new(HashMap::new());
}

/// This thread's HTTP/2 connection to `server`, if open.
pub fn h2_cached(server: SocketAddr) -> Option<H2Sender> {
    H2.with(|h2| {
        let mut h2 = h2.borrow_mut();
        match h2.get(&server) {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                h2.remove(&server);
                None
            }
            None => None,
        }
    })
}

/// Opens an HTTP/2 (h2c, prior knowledge) connection to `server` and keeps it for this thread.
pub async fn h2_connect(server: SocketAddr, timeout: Duration) -> Result<H2Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(err)) => return Err(ConnectError::Io(err)),
        Ok(Ok(stream)) => stream,
    };
    stream.set_nodelay(true).ok();
    let (sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(%server, error = %err, "HTTP/2 server connection ended with an error");
        }
    });
    H2.with(|h2| h2.borrow_mut().insert(server, sender.clone()));
    Ok(sender)
}
