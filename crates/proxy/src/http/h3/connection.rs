//! One QUIC connection from a client: the handshake within `client_header`,
//! then HTTP/3 requests, each on a task of its own, until the client
//! closes, the connection stays without a request for `client_idle`, its
//! frontend is removed, or shutdown asks it to finish (GOAWAY, then the
//! requests in flight end).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;
use zkgate_routing::{clock, Frontend};

use super::transport::MAX_FIELD_SECTION_SIZE;
use crate::connections::ConnectionGuard;
use crate::http::full::ProxyService;
use crate::io::{Activity, ConnActivity};
use crate::limits::ClientSlot;
use crate::Proxy;

/// What a connection holds besides its socket: its place among the
/// process's connections and its client's, and its place among the
/// listener's handshakes until the handshake ends.
pub struct Held {
    pub guard: ConnectionGuard,
    pub slot: Option<ClientSlot>,
    pub handshaking: Handshaking,
}

/// Serves the connection `connecting` from `peer` for `frontend`.
pub async fn serve(
    connecting: quinn::Connecting,
    peer: SocketAddr,
    frontend: Arc<Frontend>,
    proxy: Proxy,
    held: Held,
) {
    let Held {
        mut guard,
        slot,
        handshaking,
    } = held;
    let tls = frontend.metrics.tls.as_ref();
    let conn = match tokio::time::timeout(frontend.timeouts.client_header, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => {
            debug!(%peer, error = %err, "QUIC handshake failed");
            tls.inspect(|counters| counters.error.inc());
            return;
        }
        Err(_) => {
            debug!(%peer, "QUIC handshake not finished within client_header");
            tls.inspect(|counters| counters.timeout.inc());
            return;
        }
    };
    drop(handshaking);
    tls.inspect(|counters| counters.ok.inc());
    let metrics = &frontend.metrics;
    metrics.http3_connections.as_ref().inspect(|c| c.inc());
    metrics.connections.inc();
    metrics.active_connections.inc();
    let activity = ConnActivity::new();
    let service = ProxyService::new(proxy, frontend.id, peer, Arc::clone(&activity));
    let requests = requests(&conn, &frontend, service, &activity, &mut guard);
    if let Err(err) = requests.await {
        debug!(%peer, error = %err, "HTTP/3 connection ended with an error");
    }
    let stats = conn.stats();
    metrics.bytes_received.inc_by(stats.udp_rx.bytes);
    metrics.bytes_sent.inc_by(stats.udp_tx.bytes);
    metrics.active_connections.dec();
    drop(slot);
}

/// Accepts the connection's requests until it is over (see the module's comment).
async fn requests(
    conn: &quinn::Connection,
    frontend: &Frontend,
    service: ProxyService,
    activity: &ConnActivity,
    guard: &mut ConnectionGuard,
) -> Result<(), h3::error::ConnectionError> {
    let mut h3 = h3::server::builder()
        .max_field_section_size(MAX_FIELD_SECTION_SIZE)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone()))
        .await?;
    let idle = frontend.timeouts.client_idle;
    let client_header = frontend.timeouts.client_header;
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut draining = false;
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted? {
                Some(resolver) => {
                    tokio::spawn(super::request::serve(resolver, service.clone(), client_header));
                }
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(deadline) => {
                match activity.snapshot() {
                    Activity::Busy => {
                        let wait = if draining { DRAIN_CHECK } else { idle };
                        deadline = tokio::time::Instant::now() + wait;
                    }
                    Activity::Idle { since_ms, .. } | Activity::ReadingHeaders { since_ms } => {
                        let at = since_ms + idle.as_millis() as u64;
                        if draining || clock::now_ms() >= at {
                            // Told to go and done, or idle: the client
                            // opens a new connection for its next request.
                            conn.close(H3_NO_ERROR, b"");
                            return Ok(());
                        }
                        deadline = clock::instant_of(at).into();
                    }
                }
            }
            () = activity.retired(), if !draining => {
                debug!("its frontend was removed: closing the HTTP/3 connection");
                draining = true;
                h3.shutdown(0).await?;
                deadline = tokio::time::Instant::now();
            }
            changed = guard.shutdown.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    h3.shutdown(0).await?;
                }
                deadline = tokio::time::Instant::now();
            }
        }
    }
}

/// How often a draining connection looks whether its requests ended.
const DRAIN_CHECK: std::time::Duration = std::time::Duration::from_millis(50);
/// HTTP/3's code for a connection closed in good order (RFC 9114 §8.1).
const H3_NO_ERROR: quinn::VarInt = quinn::VarInt::from_u32(0x100);

/// One handshake under way on a listener, counted until dropped.
pub struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    pub fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Handshaking(Arc::clone(count))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
