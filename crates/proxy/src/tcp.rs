//! Layer 4: bytes both ways between client and server, each direction closed
//! on its own (half-close), the whole connection closed after `tunnel` of
//! inactivity in both directions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};
use zkgate_routing::{Backend, Frontend, RoutingTable};

use crate::connections::ConnectionGuard;
use zkgate_routing::clock;

const BUFFER_SIZE: usize = 16 * 1024;

/// Serves one client connection of a tcp frontend.
pub async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    frontend: &Frontend,
    table: Arc<RoutingTable>,
    guard: ConnectionGuard,
    proxy: &crate::Proxy,
) {
    let Some(backend) = frontend.default_backend() else {
        return;
    };
    let key = match backend.balance {
        zkgate_config::Balance::Source => {
            Some(zkgate_routing::balance::hash::client_key(peer.ip()))
        }
        _ => None,
    };
    let Some((server, upstream)) = connect(backend, key, proxy).await else {
        debug!(%peer, backend = %backend.name, "no server reachable; closing client connection");
        return;
    };
    // The table is not needed past this point; let it be freed after a swap.
    let active = server.state.start_request();
    let idle = backend.timeouts.tunnel.min(frontend.timeouts.tunnel);
    drop(table);
    let received = frontend.metrics.bytes_received.clone();
    let sent = frontend.metrics.bytes_sent.clone();
    let mut shutdown = guard.shutdown.clone();
    tokio::select! {
        _ = relay(client, upstream, idle, received, sent) => {}
        // Tunnels have no request boundary to finish at: close on shutdown.
        _ = shutdown.wait_for(|stopping| *stopping) => {}
    }
    drop(active);
    drop(guard);
}

/// Connects to the first reachable server, trying up to `retries` others.
async fn connect<'a>(
    backend: &'a Backend,
    key: Option<u64>,
    proxy: &crate::Proxy,
) -> Option<(&'a zkgate_routing::Server, TcpStream)> {
    let mut tried = Vec::new();
    for attempt in 0..=backend.retries {
        let server = if attempt == 0 {
            backend.pick(key)
        } else {
            backend.pick_untried(&tried)
        };
        let Some(server) = server else { break };
        if attempt > 0 {
            backend.metrics.retries.inc();
        }
        tried.push(server.address());
        match tokio::time::timeout(
            backend.timeouts.connect,
            TcpStream::connect(server.address()),
        )
        .await
        {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).ok();
                backend.record(server, true);
                return Some((server, stream));
            }
            Ok(Err(err)) => {
                warn!(backend = %backend.name, server = %server.address(), error = %err, "cannot connect to server")
            }
            Err(_) => {
                warn!(backend = %backend.name, server = %server.address(), "connect to server timed out")
            }
        }
        backend.metrics.connect_errors.inc();
        if backend.record(server, false) {
            proxy.changed.notify_one();
        }
    }
    if tried.is_empty() {
        backend.metrics.no_server.inc();
    }
    None
}

/// Copies both ways until both directions have ended, or nothing moved for `idle`.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    idle: Duration,
    received: IntCounter,
    sent: IntCounter,
) {
    let last_activity = AtomicU64::new(clock::now_ms());
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upload = pump(client_read, server_write, &last_activity, &received);
    let download = pump(server_read, client_write, &last_activity, &sent);
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
        _ = watchdog => debug!("tcp connection idle for too long; closing"),
    }
}

/// One direction: read until EOF, then shut down the write side so the peer sees EOF too.
async fn pump<R, W>(mut from: R, mut to: W, last_activity: &AtomicU64, counter: &IntCounter)
where
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
        counter.inc_by(n as u64);
        last_activity.store(clock::now_ms(), Relaxed);
    }
    // The peer may already be gone; nothing more to do either way.
    to.shutdown().await.ok();
}
