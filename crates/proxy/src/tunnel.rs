//! Bytes both ways between two peers — a TCP-mode connection, or an HTTP
//! connection after an Upgrade (WebSocket) — each direction shut down on its
//! own (half-close), everything closed after `idle` with no byte either way.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;
use zkgate_routing::clock;

const BUFFER_SIZE: usize = 16 * 1024;

/// Copies both ways until both directions have ended, or nothing moved for
/// `idle`; `received` counts client → server bytes, `sent` the other way
/// (none when the client socket counts them itself). Returns the bytes
/// copied each way, (client → server, server → client).
pub async fn relay<CR, CW, SR, SW>(
    (client_read, client_write): (CR, CW),
    (server_read, server_write): (SR, SW),
    idle: Duration,
    received: Option<IntCounter>,
    sent: Option<IntCounter>,
) -> (u64, u64)
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    let last_activity = AtomicU64::new(clock::now_ms());
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let upload = pump(
        client_read,
        server_write,
        &last_activity,
        received.as_ref(),
        &up,
    );
    let download = pump(
        server_read,
        client_write,
        &last_activity,
        sent.as_ref(),
        &down,
    );
    let watchdog = async {
        loop {
            let deadline = last_activity.load(Relaxed) + idle.as_millis() as u64;
            if clock::now_ms() >= deadline {
                return;
            }
            tokio::time::sleep_until(clock::instant_of(deadline).into()).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(upload, download) } => {}
        _ = watchdog => debug!("tunnel idle for too long; closing"),
    }
    (up.load(Relaxed), down.load(Relaxed))
}

/// One direction: read until EOF, then shut down the write side so the peer sees EOF too.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    last_activity: &AtomicU64,
    counter: Option<&IntCounter>,
    total: &AtomicU64,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        if let Some(counter) = counter {
            counter.inc_by(n as u64);
        }
        total.fetch_add(n as u64, Relaxed);
        last_activity.store(clock::now_ms(), Relaxed);
    }
    // The peer may already be gone; nothing more to do either way.
    to.shutdown().await.ok();
}
