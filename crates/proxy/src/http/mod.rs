//! The HTTP reverse proxy: one task per client connection, bodies streamed
//! with back-pressure in constant memory. HTTP/1.1 connections start on the
//! fast path (`fast`) and move to hyper (both sides) for what it leaves
//! aside; HTTP/2 clients are served by hyper throughout.

mod body;
mod fast;
mod forward;
mod h2;
mod headers;
mod policy;
mod response;
mod rewind;
mod service;
mod upgrade;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;
use zkgate_routing::Frontend;

use crate::connections::ConnectionGuard;
use crate::io::{Activity, ConnActivity, CountingIo};
use crate::stream::Stream;
use crate::Proxy;
use zkgate_routing::clock;

use policy::client_wait::{closes_on_shutdown, Waiting};
use service::ProxyService;
use zkgate_config::Timeouts;

/// Largest request head accepted (request line + headers); beyond it: 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most request headers accepted; beyond it: 431.
const MAX_HEADERS: usize = 100;

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
        return h2::serve(stream, peer, frontend, proxy, guard).await;
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

/// The counted client socket, the service of its requests, and their activity.
fn client_side(
    stream: Stream,
    peer: SocketAddr,
    frontend: &Frontend,
    proxy: Proxy,
) -> (CountingIo<Stream>, ProxyService, Arc<ConnActivity>) {
    let activity = ConnActivity::new();
    let io = CountingIo::new(
        stream,
        frontend.metrics.bytes_received.clone(),
        frontend.metrics.bytes_sent.clone(),
        Some(Arc::clone(&activity)),
    );
    let service = ProxyService::new(proxy, frontend.id, peer, Arc::clone(&activity));
    (io, service, activity)
}

async fn serve_h1(
    stream: Stream,
    peer: SocketAddr,
    frontend: &Arc<Frontend>,
    proxy: Proxy,
    mut guard: ConnectionGuard,
) {
    let (io, service, activity) = client_side(stream, peer, frontend, proxy.clone());
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
    let fast::End::Handover(io, read) = ended else {
        return;
    };
    let io = TokioIo::new(rewind::Rewind::new(read, io));
    let mut conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(false)
        // zkgate enforces client_header/client_idle itself, with a 408 for a
        // request cut short (hyper would close without one).
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(io, service)
        .with_upgrades();

    let mut deadline =
        tokio::time::Instant::now() + Waiting::FirstRequest.limit(&frontend.timeouts);
    // Shutdown asked (`stopping`), and passed on to hyper (`draining`). A
    // connection accepted as shutdown began still gets its first request
    // answered: closing it unread would fail a client that did nothing wrong.
    let mut stopping = *guard.shutdown.borrow();
    let mut watching = !stopping;
    let mut draining = false;
    loop {
        let served_any = !matches!(activity.snapshot(), Activity::Idle { first: true, .. });
        if stopping && !draining && closes_on_shutdown(served_any) {
            draining = true;
            std::pin::Pin::new(&mut conn).graceful_shutdown();
        }
        tokio::select! {
            result = &mut conn => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "client connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                match expired(activity.snapshot(), &frontend.timeouts) {
                    Expiry::NotYet(next) => deadline = next,
                    Expiry::Idle => {
                        debug!(%peer, "closing idle client connection");
                        return;
                    }
                    Expiry::HeaderTimeout => {
                        debug!(%peer, "client did not send complete headers in time");
                        if let Some(parts) = conn.into_parts() {
                            let mut io = parts.io.into_inner().into_inner().into_inner();
                            // Best effort: the client may already be gone.
                            if io.write_all(&response::REQUEST_TIMEOUT_RAW).await.is_ok() {
                                io.shutdown().await.ok();
                            }
                        }
                        return;
                    }
                }
            }
            changed = guard.shutdown.changed(), if watching => {
                watching = false;
                stopping = changed.is_ok();
            }
            // Until the first request starts, look again now and then.
            _ = tokio::time::sleep(FIRST_REQUEST_POLL), if stopping && !draining => {}
        }
    }
}

/// How often a connection accepted during shutdown checks whether its
/// first request has started arriving.
const FIRST_REQUEST_POLL: Duration = Duration::from_millis(5);

enum Expiry {
    NotYet(tokio::time::Instant),
    Idle,
    HeaderTimeout,
}

fn expired(activity: Activity, timeouts: &Timeouts) -> Expiry {
    let (since_ms, waiting) = match activity {
        // Look again later; a request in flight is governed by server timeouts.
        Activity::Busy => {
            let next = timeouts.client_header.min(timeouts.client_idle);
            return Expiry::NotYet(tokio::time::Instant::now() + next);
        }
        Activity::Idle {
            since_ms,
            first: true,
        } => (since_ms, Waiting::FirstRequest),
        Activity::Idle {
            since_ms,
            first: false,
        } => (since_ms, Waiting::NextRequest),
        Activity::ReadingHeaders { since_ms } => (since_ms, Waiting::RestOfHead),
    };
    let at = since_ms + waiting.limit(timeouts).as_millis() as u64;
    if clock::now_ms() < at {
        Expiry::NotYet(clock::instant_of(at).into())
    } else if waiting.answers_timeout() {
        Expiry::HeaderTimeout
    } else {
        Expiry::Idle
    }
}
