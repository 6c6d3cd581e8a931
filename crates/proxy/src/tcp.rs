//! Layer 4: bytes both ways between client and server, each direction closed
//! on its own (half-close), the whole connection closed after `tunnel` of
//! inactivity in both directions.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{debug, warn};
use zkgate_routing::{Backend, Frontend, RoutingTable};

use crate::connections::ConnectionGuard;
use crate::tunnel;

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
    let started = std::time::Instant::now();
    let log = |server: Option<std::net::SocketAddr>, (bytes_in, bytes_out): (u64, u64)| {
        if let Some(log) = &proxy.access_log {
            log.tcp(&crate::access_log::TcpEntry {
                client: peer,
                frontend: &frontend.name,
                backend: &backend.name,
                server,
                bytes_in,
                bytes_out,
                total: started.elapsed(),
            });
        }
    };
    let Some((server, upstream)) = connect(backend, key, proxy).await else {
        debug!(%peer, backend = %backend.name, "no server reachable; closing client connection");
        log(None, (0, 0));
        return;
    };
    // The table is not needed past this point; let it be freed after a swap.
    let active = server.state.start_request();
    let idle = backend.timeouts.tunnel.min(frontend.timeouts.tunnel);
    drop(table);
    let received = frontend.metrics.bytes_received.clone();
    let sent = frontend.metrics.bytes_sent.clone();
    let mut shutdown = guard.shutdown.clone();
    let mut upstream = upstream;
    if let Some(version) = backend.send_proxy {
        // The server learns the real client, as HAProxy's send-proxy does.
        let destination = client.local_addr().unwrap_or(peer);
        let header = crate::proxy_protocol::encode(version, peer, destination);
        if tokio::io::AsyncWriteExt::write_all(&mut upstream, &header)
            .await
            .is_err()
        {
            log(Some(server.address()), (0, 0));
            return;
        }
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = upstream.into_split();
    let address = server.address();
    let copied = tokio::select! {
        copied = tunnel::relay((client_read, client_write), (server_read, server_write), idle, Some(received), Some(sent)) => copied,
        // Tunnels have no request boundary to finish at: close on shutdown.
        _ = shutdown.wait_for(|stopping| *stopping) => (0, 0),
    };
    log(Some(address), copied);
    drop(active);
    drop(guard);
}

/// Connects to the first reachable server, trying up to `retries` others.
async fn connect<'a>(
    backend: &'a Backend,
    key: Option<u64>,
    proxy: &crate::Proxy,
) -> Option<(&'a zkgate_routing::Server, TcpStream)> {
    let mut attempts = backend.attempts(backend.pick(key));
    for server in attempts.by_ref() {
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
    if attempts.none_tried() {
        backend.metrics.no_server.inc();
    }
    None
}
