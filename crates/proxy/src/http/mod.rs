//! The HTTP reverse proxy: one task per client connection, bodies streamed
//! with back-pressure in constant memory. What happens to a request is
//! decided once, in the request core (`policy`); the wire adapters carry
//! it out: HTTP/1.1 connections start on the fast path (`fast`) and move
//! to hyper's full path (`full`) for what it leaves aside; HTTP/2 clients
//! are served by zkgate's own HTTP/2 layer (`h2`), HTTP/3 clients by `h3`
//! on QUIC; both hand each request to the full path's request core. Every adapter takes its connections to
//! servers from one pool per worker (`pool`).

mod buffers;
mod copy;
mod fast;
mod full;
mod h2;
pub mod h3;
mod headers;
mod interim;
mod policy;
mod pool;
mod request_body;
mod response;
mod switched;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use zkgate_routing::Frontend;

pub(crate) use pool::sweep_idle as sweep_idle_connections;

/// A body's error, whichever side it came from.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

use crate::connections::ConnectionGuard;
use crate::stream::Stream;
use crate::Proxy;

/// Serves one client connection until it closes, times out, or shutdown asks
/// it to finish. Its state while it waits for a request is the fast path's
/// [`fast::Client`] and little else: every other path is boxed where the
/// connection enters it.
///
/// Not an `async fn`: an `async fn` keeps a second copy of its arguments
/// in the future, for the connection's whole life.
pub fn serve<'a>(
    stream: Stream,
    peer: SocketAddr,
    frontend: &'a Arc<Frontend>,
    proxy: &'a Proxy,
    mut guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send + 'a {
    let mut client = fast::Client::new(stream, peer, frontend, proxy);
    async move {
        // Over TLS, ALPN decides; a cleartext client's first bytes do
        // (the fast path looks).
        let ended = if client.alpn_h2() {
            fast::End::H2
        } else {
            fast::serve(&mut client, frontend, &mut guard).await
        };
        // Read after the fast path, not kept beside it: every idle
        // connection's task would hold it.
        let peer = client.peer();
        match ended {
            fast::End::Closed => {}
            fast::End::H2 => {
                let (io, read) = client.into_parts();
                let proxy = proxy.clone();
                Box::pin(h2::serve(io, read, peer, frontend, proxy, guard)).await
            }
            fast::End::Handover => {
                let (io, read, activity) = client.into_handover();
                let service = full::ProxyService::new(
                    proxy.clone(),
                    frontend.id,
                    peer,
                    Arc::clone(&activity),
                );
                Box::pin(full::serve_h1(
                    io, read, peer, frontend, service, &activity, guard,
                ))
                .await
            }
        }
    }
}
