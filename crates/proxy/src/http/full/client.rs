//! The client side of the full path, towards servers. An HTTP/1.1 request
//! takes a connection from the one pool every adapter shares (lending
//! hyper's client the socket if the fast path left it) and puts it back,
//! still in hyper's hands, once its response was read to its end; an
//! HTTP/2 connection (zkgate's own client, `upstream_h2`) is shared by
//! every request of a thread to that server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tracing::debug;
use zkgate_config::Protocol;
use zkgate_routing::{ActiveRequest, FastHash};
use zkgate_tls::ClientTls;

use super::body::{ProxyBody, Reuse, ServerBody};
use super::upstream_h2::{Failed, H2Conn};
use crate::dial::{dial, ConnectError};
use crate::http::interim::{hook_hyper, AfterInterim};
use crate::http::pool::{take_for_hyper, Lent, PoolKey, ServerConn, UpstreamBody};
use crate::http::request_body::is_client_body_timeout;
use crate::http::BoxError;

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
                    Some(conn) if !conn.is_closed() => Some(Conn::H2(conn.clone())),
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
                let io = dial(server.server, None, tls, timeout).await?;
                let conn = H2Conn::handshake(io, server.server)
                    .await
                    .map_err(|err| ConnectError::Http(err.into()))?;
                H2.with(|h2| h2.borrow_mut().insert(server, conn.clone()));
                Ok(Conn::H2(conn))
            }
        }
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> Result<(), BoxError> {
        match self {
            Conn::H1(lent, _) => lent.sender.ready().await.map_err(Into::into),
            Conn::H2(conn) => conn.ready().await.map_err(Into::into),
        }
    }

    /// Whether the server takes extended `CONNECT` (RFC 8441): only an
    /// HTTP/2 one that said so in its `SETTINGS`.
    pub async fn extended_connect(&self) -> bool {
        match self {
            Conn::H1(..) => false,
            Conn::H2(conn) => conn.extended_connect().await,
        }
    }

    /// Sends a request; the server's interim answers go to the request's
    /// `InterimSink`, if it has one.
    pub async fn send(
        &mut self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<ServerBody>, SendFailed> {
        match self {
            Conn::H1(lent, _) => {
                let interim = hook_hyper(&mut request);
                match lent.sender.try_send_request(request).await {
                    Ok(mut response) => {
                        if interim.load(Ordering::Relaxed) {
                            response.extensions_mut().insert(AfterInterim);
                        }
                        Ok(response.map(ServerBody::Hyper))
                    }
                    Err(mut failed) => Err(match failed.take_message() {
                        Some(unsent) => SendFailed::Unsent(Box::new(unsent)),
                        None => {
                            let error = failed.into_error();
                            if error.is_user() || is_client_body_timeout(&error) {
                                SendFailed::ClientBody(error.into())
                            } else {
                                SendFailed::Failed(error.into())
                            }
                        }
                    }),
                }
            }
            Conn::H2(conn) => match conn.send(request).await {
                Ok(response) => Ok(response.map(ServerBody::H2)),
                Err(Failed::ClientBody(err)) => Err(SendFailed::ClientBody(err)),
                Err(Failed::Exchange(err)) => Err(SendFailed::Failed(err)),
            },
        }
    }

    /// The response body towards the client; an HTTP/1.1 connection returns
    /// to the pool when the body was read to its end, if `keep_alive`.
    pub fn body(self, body: ServerBody, keep_alive: bool, active: ActiveRequest) -> ProxyBody {
        match self {
            Conn::H1(lent, key) if keep_alive => {
                ProxyBody::upstream(body, Some(Reuse::new(lent, key)), active)
            }
            Conn::H1(..) | Conn::H2(_) => ProxyBody::upstream(body, None, active),
        }
    }
}

/// Why a request got no answer.
pub enum SendFailed {
    /// Nothing of it reached the server: it comes back, to go elsewhere.
    Unsent(Box<Request<UpstreamBody>>),
    /// The client's body failed on its way (see `is_client_body_timeout`).
    ClientBody(BoxError),
    /// It was sent, then the connection failed before an answer.
    Failed(BoxError),
}

impl std::fmt::Display for SendFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFailed::Unsent(_) => f.write_str("the request could not be sent"),
            SendFailed::ClientBody(err) => write!(f, "the client's body failed: {err}"),
            SendFailed::Failed(err) => write!(f, "{err}"),
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
        .map_err(|err| ConnectError::Http(err.into()))?;
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
        .map_err(|err| ConnectError::Http(err.into()))?;
    spawn_connection(server, connection.with_upgrades());
    Ok(sender)
}
