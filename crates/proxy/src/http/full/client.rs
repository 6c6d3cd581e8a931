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
use tokio::sync::oneshot;
use tracing::debug;
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, FastHash};
use zkgate_tls::ClientTls;

use super::body::{ProxyBody, Reuse};
use crate::dial::{dial, ConnectError};
use crate::http::pool::{take_for_hyper, Lent, PoolKey, ServerConn, UpstreamBody};

type H2Sender = http2::SendRequest<UpstreamBody>;

thread_local! {
    static H2: RefCell<HashMap<PoolKey, H2Sender, FastHash>> = RefCell::default();
}

/// A connection to a server, of either HTTP version.
pub enum Conn {
    /// HTTP/1.1: a pooled socket hyper holds, for one request.
    H1(Lent, PoolKey),
    /// HTTP/2: multiplexed, shared.
    H2(H2Sender),
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
        match protocol {
            Protocol::Http1 => lend(ServerConn::open(server, tls, timeout).await?, server).await,
            Protocol::Http2 => {
                let io = TokioIo::new(dial(server.server, None, tls, timeout).await?);
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
            Conn::H1(lent, _) => lent.sender.ready().await,
            Conn::H2(sender) => sender.ready().await,
        }
    }

    /// Sends a request; on failure the request comes back if nothing of it was sent.
    pub async fn send(
        &mut self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>> {
        match self {
            Conn::H1(lent, _) => lent.sender.try_send_request(request).await,
            Conn::H2(sender) => sender.try_send_request(request).await,
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
