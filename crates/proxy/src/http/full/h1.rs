//! hyper's HTTP/1.1 server, for a client connection the fast path handed
//! over (with the bytes it had read), until the connection ends. zkgate
//! keeps the client-wait rules of the request core (`client_header`,
//! `client_idle`, the 408) itself: hyper would close without a 408.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tracing::debug;
use zkgate_config::Timeouts;
use zkgate_routing::{clock, Frontend};

use super::rewind;
use super::service::ProxyService;
use crate::connections::ConnectionGuard;
use crate::http::fast::ClientIo;
use crate::http::policy::client_wait::{closes_on_shutdown, Waiting};
use crate::http::policy::{MAX_HEADERS, MAX_HEAD_BYTES};
use crate::http::response;
use crate::io::{Activity, ConnActivity};

/// Serves the rest of a client connection: `read` are the bytes the fast
/// path read and did not serve.
pub async fn serve(
    io: ClientIo,
    read: BytesMut,
    peer: SocketAddr,
    frontend: &Arc<Frontend>,
    service: ProxyService,
    activity: &ConnActivity,
    mut guard: ConnectionGuard,
) {
    let io = TokioIo::new(rewind::Rewind::new(read, io));
    let mut conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(false)
        // zkgate enforces client_header/client_idle itself, with a 408 for a
        // request cut short (hyper would close without one).
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        // `GET /a  HTTP/1.1`: RFC 9112 §3 lets a recipient split the request
        // line on runs of spaces, as HAProxy and nginx do. (The fast path
        // leaves any head it cannot parse to this parser: one decision.)
        .allow_multiple_spaces_in_request_line_delimiters(true)
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
