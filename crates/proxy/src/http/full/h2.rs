//! HTTP/2 from clients (ALPN `h2` over TLS, or h2c with prior knowledge on cleartext listeners),
//! with limits against abuse: concurrent streams, header list size, window
//! sizes, and hyper's defences against rapid resets. The same service as
//! HTTP/1 handles each stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::debug;
use zkgate_routing::{clock, Frontend};

use super::rewind;
use super::service::ProxyService;
use crate::connections::ConnectionGuard;
use crate::http::fast::ClientIo;
use crate::io::{Activity, ConnActivity};
use crate::Proxy;

/// Streams a client may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Decoded size of one request's headers.
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Request body bytes a client may send on one stream before zkgate has
/// passed them on (flow control), and on the whole connection.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// How long an idle connection told to go may take to close.
const IDLE_GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves one HTTP/2 client connection until it closes, stays idle for
/// `client_idle` with no stream open, or shutdown asks it to finish, or a
/// request finds its frontend removed by a reload.
/// `read` are the bytes the fast path read first (a cleartext client's
/// connection preface).
pub async fn serve(
    mut io: ClientIo,
    read: BytesMut,
    peer: SocketAddr,
    frontend: &Arc<Frontend>,
    proxy: Proxy,
    mut guard: ConnectionGuard,
) {
    let activity = ConnActivity::new();
    io.watch(Arc::clone(&activity));
    let service = ProxyService::new(proxy, frontend.id, peer, Arc::clone(&activity));
    let io = TokioIo::new(rewind::Rewind::new(read, io));
    let mut conn = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(Some(64))
        // WebSocket (and other protocol switches) over HTTP/2: RFC 8441.
        .enable_connect_protocol()
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .serve_connection(io, service);
    let idle = frontend.timeouts.client_idle;
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut draining = false;
    // An idle connection told to go (GOAWAY) closes once its client
    // acknowledges the PING that follows; one that never does is dropped
    // after this grace (it has no stream open to lose).
    let mut dropped_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "HTTP/2 client connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(dropped_at.unwrap_or(deadline)), if dropped_at.is_some() => {
                if matches!(activity.snapshot(), Activity::Busy) {
                    dropped_at = Some(tokio::time::Instant::now() + IDLE_GOAWAY_GRACE);
                } else {
                    debug!(%peer, "the idle HTTP/2 client did not finish closing: dropped");
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline), if !draining => {
                match activity.snapshot() {
                    // Streams open, or control frames only: look again later.
                    Activity::Busy => deadline = tokio::time::Instant::now() + idle,
                    Activity::Idle { since_ms, .. } | Activity::ReadingHeaders { since_ms } => {
                        let at = since_ms + idle.as_millis() as u64;
                        if clock::now_ms() >= at {
                            debug!(%peer, "closing idle HTTP/2 client connection");
                            draining = true;
                            dropped_at = Some(tokio::time::Instant::now() + IDLE_GOAWAY_GRACE);
                            std::pin::Pin::new(&mut conn).graceful_shutdown();
                        } else {
                            deadline = clock::instant_of(at).into();
                        }
                    }
                }
            }
            () = activity.retired(), if !draining => {
                debug!(%peer, "its frontend was removed: closing the HTTP/2 connection");
                draining = true;
                std::pin::Pin::new(&mut conn).graceful_shutdown();
            }
            changed = guard.shutdown.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }
}
