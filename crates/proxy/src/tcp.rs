//! Layer 4: bytes both ways between client and server, each direction closed
//! on its own (half-close), the whole connection closed after `tunnel` of
//! inactivity in both directions.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use prometheus::IntCounter;
use tracing::{debug, warn};
use zkgate_routing::{Backend, Frontend, RoutingTable};

use crate::connections::ConnectionGuard;
use crate::dial::dial;
use crate::stream::Stream;
use crate::tunnel;

/// Serves one client connection of a tcp frontend.
pub async fn serve(
    client: Stream,
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
    // The server learns the real client, as HAProxy's send-proxy does; the
    // header goes first on the wire, before any TLS.
    let proxy_header = backend.send_proxy.map(|version| {
        let destination = client.local_addr().unwrap_or(peer);
        crate::proxy_protocol::encode(version, peer, destination)
    });
    let Some((server, upstream)) = connect(backend, key, proxy_header.as_deref(), proxy).await
    else {
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
    let address = server.address();
    // A tunnel has no request boundary to stop at: on shutdown it carries
    // on until either side closes it, or the grace period ends.
    let copied = relay(client, upstream, idle, received, sent).await;
    log(Some(address), copied);
    drop(active);
    drop(guard);
}

/// Both ways between client and server. Two plain sockets split without a
/// lock (the common case): each direction is woken on its own, and bulk is
/// spliced. A TLS side is split with `tokio::io::split`.
async fn relay(
    client: Stream,
    server: Stream,
    idle: Duration,
    received: IntCounter,
    sent: IntCounter,
) -> (u64, u64) {
    let counters = (Some(received), Some(sent));
    match (client, server) {
        (Stream::Plain(client), Stream::Plain(server)) => {
            tunnel::relay(client.into_split(), server.into_split(), idle, counters).await
        }
        (client, server) => {
            tunnel::relay(
                tokio::io::split(client),
                tokio::io::split(server),
                idle,
                counters,
            )
            .await
        }
    }
}

/// Connects to the first reachable server, trying up to `retries` others.
async fn connect<'a>(
    backend: &'a Backend,
    key: Option<u64>,
    proxy_header: Option<&[u8]>,
    proxy: &crate::Proxy,
) -> Option<(&'a zkgate_routing::Server, Stream)> {
    let mut attempts = backend.attempts(backend.pick(key));
    for server in attempts.by_ref() {
        let tls = backend.tls.as_deref();
        match dial(
            server.address(),
            proxy_header,
            tls,
            backend.timeouts.connect,
        )
        .await
        {
            Ok(stream) => {
                backend.record(server, true);
                return Some((server, stream));
            }
            Err(err) => {
                warn!(backend = %backend.name, server = %server.address(), error = %err, "cannot connect to server")
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
