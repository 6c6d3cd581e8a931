//! One HTTP/2 client connection's life: served until the client closes
//! it, or zkgate tells it to go (GOAWAY) and lets its open streams finish:
//! when it opened no stream within `client_header`, stayed without one
//! for `client_idle` after, shutdown began, or a request found its
//! frontend removed by a reload.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tracing::debug;
use zkgate_routing::{clock, Frontend};

use super::conn::Connection;
use crate::connections::ConnectionGuard;
use crate::http::fast::ClientIo;
use crate::http::full::ProxyService;
use crate::http::policy::client_wait::Waiting;
use crate::io::{Activity, ConnActivity};
use crate::Proxy;

/// Serves one HTTP/2 client connection. `read` are the bytes the fast
/// path read first (a cleartext client's connection preface).
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
    let mut conn = Connection::new(io, read, service);
    let first = frontend
        .timeouts
        .client_header
        .min(frontend.timeouts.client_idle);
    let mut deadline = tokio::time::Instant::now() + first;
    let mut draining = false;
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "HTTP/2 client connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline), if !draining => {
                let since_ms = match activity.snapshot() {
                    Activity::Idle { since_ms, .. } | Activity::ReadingHeaders { since_ms }
                        if conn.open_streams() == 0 => since_ms,
                    // Streams open (a tunnel's included): look again later.
                    _ => clock::now_ms(),
                };
                // As on HTTP/1.1: a connection must start its first request
                // within `client_header`, and may then wait `client_idle`.
                let waiting = if conn.opened_any() {
                    Waiting::NextRequest
                } else {
                    Waiting::FirstRequest
                };
                let at = since_ms + waiting.limit(&frontend.timeouts).as_millis() as u64;
                if clock::now_ms() >= at {
                    debug!(%peer, "closing idle HTTP/2 client connection");
                    draining = true;
                    conn.graceful_shutdown();
                } else {
                    deadline = clock::instant_of(at).into();
                }
            }
            () = activity.retired(), if !draining => {
                debug!(%peer, "its frontend was removed: closing the HTTP/2 connection");
                draining = true;
                conn.graceful_shutdown();
            }
            changed = guard.shutdown.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.graceful_shutdown();
                }
            }
        }
    }
}
