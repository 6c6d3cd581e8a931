//! The HTTP reverse proxy: one task per client connection, bodies streamed
//! with back-pressure in constant memory. What happens to a request is
//! decided once, in the request core (`policy`); the wire adapters carry
//! it out: HTTP/1.1 connections start on the fast path (`fast`) and move
//! to hyper's full path (`full`) for what it leaves aside; HTTP/2 clients
//! are served by hyper throughout, HTTP/3 clients by `h3` on QUIC with
//! hyper's clients behind. Every adapter takes its connections to
//! servers from one pool per worker (`pool`).

mod copy;
mod fast;
mod full;
pub mod h3;
mod headers;
mod policy;
mod pool;
mod request_body;
mod response;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use zkgate_routing::Frontend;

use crate::connections::ConnectionGuard;
use crate::stream::Stream;
use crate::Proxy;

/// Serves one client connection until it closes, times out, or shutdown asks
/// it to finish.
pub async fn serve(
    stream: Stream,
    peer: SocketAddr,
    frontend: &Arc<Frontend>,
    proxy: Proxy,
    guard: ConnectionGuard,
) {
    let h2 = match &stream {
        // Over TLS, ALPN decides.
        Stream::Tls(_) => stream.alpn() == Some(b"h2"),
        Stream::Plain(tcp) => starts_with_h2_preface(tcp, frontend.timeouts.client_header).await,
    };
    if h2 {
        // Boxed, as the full HTTP/1 path below: the task of a connection
        // keeps room only for the path it is on.
        return Box::pin(full::serve_h2(stream, peer, frontend, proxy, guard)).await;
    }
    serve_h1(stream, peer, frontend, proxy, guard).await
}

/// Whether a cleartext client opened with the HTTP/2 connection preface (h2c
/// with prior knowledge). It starts `PRI `, which no HTTP/1 request does.
async fn starts_with_h2_preface(stream: &TcpStream, wait: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI ";
    let deadline = tokio::time::Instant::now() + wait;
    let mut first = [0u8; 4];
    loop {
        let peeked = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) => n,
            // Closed, failed or silent: HTTP/1 handling deals with it (and its timeouts).
            _ => return false,
        };
        if peeked == 0 || first[..peeked] != PREFACE[..peeked] {
            return false;
        }
        if peeked == PREFACE.len() {
            return true;
        }
        // A partial match: wait for the rest of the first bytes.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves an HTTP/1.x connection: on the fast path, then on hyper's if the
/// fast path hands it over.
async fn serve_h1(
    stream: Stream,
    peer: SocketAddr,
    frontend: &Arc<Frontend>,
    proxy: Proxy,
    mut guard: ConnectionGuard,
) {
    let (io, service, activity) = full::client_side(stream, peer, frontend, proxy.clone());
    let client_text = service.client_text();
    let ended = fast::serve(
        io,
        peer,
        client_text.as_bytes(),
        frontend,
        &proxy,
        &activity,
        &mut guard,
    )
    .await;
    if let fast::End::Handover(io, read) = ended {
        Box::pin(full::serve_h1(
            io, read, peer, frontend, service, &activity, guard,
        ))
        .await;
    }
}
