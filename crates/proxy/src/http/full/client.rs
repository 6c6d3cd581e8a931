//! hyper's client side, for the requests the fast path leaves to hyper
//! (bodies, HTTP/2 clients, HTTP/2 servers). An HTTP/1.1 request takes a
//! connection from the one pool every adapter shares (lending hyper the
//! socket if the fast path left it) and puts it back, still in hyper's
//! hands, once its response was read to its end; an HTTP/2 connection is
//! shared by every request of a thread to that server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future as _;
use tokio::sync::{oneshot, watch};
use tracing::debug;
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, FastHash};
use zkgate_tls::ClientTls;

use super::body::{ProxyBody, Reuse};
use crate::dial::{dial, ConnectError};
use crate::http::pool::{take_for_hyper, Lent, PoolKey, ServerConn, UpstreamBody};

type H2Sender = http2::SendRequest<UpstreamBody>;

/// An HTTP/2 connection to a server: its request half, and whether the
/// server announced extended `CONNECT` (RFC 8441) in its `SETTINGS`.
#[derive(Clone)]
pub struct H2Conn {
    sender: H2Sender,
    extended: watch::Receiver<bool>,
    opened: Instant,
}

thread_local! {
    static H2: RefCell<HashMap<PoolKey, H2Conn, FastHash>> = RefCell::default();
}

/// A connection to a server, of either HTTP version.
pub enum Conn {
    /// HTTP/1.1: a pooled socket hyper holds, for one request.
    H1(Lent, PoolKey),
    /// HTTP/2: multiplexed, shared.
    H2(H2Conn),
}

impl Conn {
    /// An open connection to `server` this thread already has, if any.
    pub async fn cached(protocol: Protocol, server: PoolKey) -> Option<Conn> {
        match protocol {
            Protocol::Http1 => match take_for_hyper(server, Instant::now())? {
                Ok(lent) => Some(Conn::H1(lent, server)),
                Err(conn) => lend(conn, server).await.ok(),
            },
            Protocol::Http2 => H2.with(|h2| {
                let mut h2 = h2.borrow_mut();
                match h2.get(&server) {
                    Some(conn) if !conn.sender.is_closed() => Some(Conn::H2(conn.clone())),
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
        match protocol {
            Protocol::Http1 => lend(ServerConn::open(server, tls, timeout).await?, server).await,
            Protocol::Http2 => {
                let io = TokioIo::new(dial(server.server, None, tls, timeout).await?);
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(ConnectError::Http)?;
                let (tell, extended) = watch::channel(false);
                spawn_connection(server.server, watch_settings(connection, tell));
                let conn = H2Conn {
                    sender,
                    extended,
                    opened: Instant::now(),
                };
                H2.with(|h2| h2.borrow_mut().insert(server, conn.clone()));
                Ok(Conn::H2(conn))
            }
        }
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Conn::H1(lent, _) => lent.sender.ready().await,
            Conn::H2(conn) => conn.sender.ready().await,
        }
    }

    /// Whether the server takes extended `CONNECT` (RFC 8441): only an
    /// HTTP/2 one that said so in its `SETTINGS`. A connection younger
    /// than [`SETTINGS_WAIT`] may not have read them yet: it is waited for.
    pub async fn extended_connect(&self) -> bool {
        let Conn::H2(conn) = self else {
            return false;
        };
        let mut extended = conn.extended.clone();
        let until = tokio::time::Instant::from_std(conn.opened + SETTINGS_WAIT);
        let waited = tokio::time::timeout_at(until, extended.wait_for(|on| *on)).await;
        matches!(waited, Ok(Ok(_))) || *conn.extended.borrow()
    }

    /// Sends a request; on failure the request comes back if nothing of it was sent.
    pub async fn send(
        &mut self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>> {
        match self {
            Conn::H1(lent, _) => {
                crate::http::interim::hook_hyper(&mut request);
                lent.sender.try_send_request(request).await
            }
            Conn::H2(conn) => conn.sender.try_send_request(request).await,
        }
    }

    /// The response body towards the client; an HTTP/1.1 connection returns
    /// to the pool when the body was read to its end, if `keep_alive`.
    pub fn body(self, body: Incoming, keep_alive: bool, active: ActiveRequest) -> ProxyBody {
        match self {
            Conn::H1(lent, key) if keep_alive => {
                ProxyBody::upstream(body, Some(Reuse::new(lent, key)), active)
            }
            Conn::H1(..) | Conn::H2(_) => ProxyBody::upstream(body, None, active),
        }
    }
}

/// Lends a pooled socket to hyper: hyper keeps it for as many requests as
/// its adapters send, and its task hands the socket back when asked (see
/// [`Lent::hand_back`]).
async fn lend(conn: ServerConn, key: PoolKey) -> Result<Conn, ConnectError> {
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(conn.io))
        .await
        .map_err(ConnectError::Http)?;
    let (hand_back, back) = oneshot::channel();
    tokio::spawn(async move {
        match connection.without_shutdown().await {
            // Unasked bytes from the server make it unfit.
            Ok(parts) if parts.read_buf.is_empty() => {
                // Nobody waits when the connection was not kept: it closes.
                hand_back.send(ServerConn::over(parts.io.into_inner())).ok();
            }
            Ok(_) => {}
            Err(err) => {
                debug!(server = %key.server, error = %err, "server connection ended with an error")
            }
        }
    });
    Ok(Conn::H1(Lent::new(sender, back), key))
}

/// How long a new HTTP/2 connection is watched for its server's first
/// `SETTINGS`: a switch waits up to this for a server that does not
/// announce extended `CONNECT`.
pub const SETTINGS_WAIT: Duration = Duration::from_secs(1);

/// Drives an HTTP/2 connection, telling `tell` whether its server takes
/// extended `CONNECT` once its `SETTINGS` say so. hyper reads frames in a
/// task of its own and tells no event for them: for its first
/// [`SETTINGS_WAIT`], the connection is looked at every millisecond.
async fn watch_settings<T>(
    mut connection: http2::Connection<T, UpstreamBody, TokioExecutor>,
    tell: watch::Sender<bool>,
) -> hyper::Result<()>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let until = tokio::time::Instant::now() + SETTINGS_WAIT;
    let mut look = Box::pin(tokio::time::sleep(Duration::from_millis(1)));
    std::future::poll_fn(|cx| {
        let polled = std::pin::Pin::new(&mut connection).poll(cx);
        let on = connection.is_extended_connect_protocol_enabled();
        tell.send_if_modified(|was| std::mem::replace(was, on) != on);
        if !on && tokio::time::Instant::now() < until {
            look.as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_millis(1));
            // Registers the wake-up; it is never ready right after a reset.
            let _ = look.as_mut().poll(cx);
        }
        polled
    })
    .await
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
pub async fn connect_for_upgrade<B>(
    server: SocketAddr,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<http1::SendRequest<B>, ConnectError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(dial(server, None, tls, timeout).await?);
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(ConnectError::Http)?;
    spawn_connection(server, connection.with_upgrades());
    Ok(sender)
}
