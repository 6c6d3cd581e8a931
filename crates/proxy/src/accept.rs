//! Listening sockets. Each is bound with SO_REUSEPORT (so a new zkgate can
//! bind the same ports before the old one stops, and each worker thread can
//! have a socket of its own), or handed over by the previous process, and
//! serves one frontend by id: the frontend's current mode, timeouts and
//! routes come from the table at accept time, so a reload changes them
//! without rebinding.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use zkgate_config::Mode;
use zkgate_routing::{Frontend, FrontendId, RoutingTable};

use crate::handover::Inherited;
use crate::limits::ClientSlot;
use crate::proxy_protocol;
use crate::stream::Stream;

use crate::{Proxy, Workers};

/// Unsent bytes a client connection's kernel send queue may hold before
/// zkgate stops writing to it. Without a bound, a large response is moved
/// whole from the server into the client's send queue at once (it is sized
/// in megabytes), and the kernel then sends it piecemeal from the client's
/// acknowledgements, on whatever core processes them; with it, the
/// rest waits upstream and goes out from zkgate's own writes. Measured on
/// 1 MiB responses: ~9 % more throughput when the client side is the
/// bottleneck, at the cost of a few more wakeups per response.
const CLIENT_NOTSENT_LOWAT: u32 = 128 * 1024;

/// Binds `address` for listening, with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// At least one listening socket on `address` per worker: the kernel
/// spreads new connections over them. Sockets the previous process handed
/// over for `address` are used first (all of them: closing one would reset
/// the connections it is completing), and new ones bound for the rest. With
/// port 0, all take the port the first one got.
pub fn bind_per_worker(
    address: SocketAddr,
    workers: &Workers,
    inherited: &mut Inherited,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = inherited.take(address);
    if sockets.is_empty() {
        sockets.push(bind(address)?);
    }
    let bound = sockets[0].local_addr()?;
    while sockets.len() < workers.count() {
        sockets.push(bind(bound)?);
    }
    Ok(sockets)
}

/// Running accept loops, at least one per worker, on one address; dropping
/// or stopping it closes the listening sockets but leaves accepted
/// connections alone.
pub struct Listener {
    /// The frontend it serves.
    pub frontend: FrontendId,
    /// The bound address.
    pub address: SocketAddr,
    stop: watch::Sender<bool>,
    /// A second descriptor of each socket the accept loops own, to hand
    /// them to the next process; closed once the loops have ended.
    shared: Vec<OwnedFd>,
}

impl Listener {
    /// Starts accepting for `frontend` on `sockets` (from [`bind_per_worker`]),
    /// spread over the workers.
    pub fn spawn(
        sockets: Vec<std::net::TcpListener>,
        frontend: FrontendId,
        proxy: &Proxy,
        workers: &Workers,
    ) -> std::io::Result<Self> {
        let address = match sockets.first() {
            Some(socket) => socket.local_addr()?,
            None => return Err(std::io::Error::other("no socket to listen on")),
        };
        // On an early return, dropping `stop` ends the loops already started.
        let (stop, stopped) = watch::channel(false);
        let mut shared = Vec::with_capacity(sockets.len());
        for (socket, worker) in sockets.into_iter().zip(workers.handles().iter().cycle()) {
            shared.push(OwnedFd::from(socket.try_clone()?));
            // Registered with the event loop of the worker that will accept on it.
            let listener = {
                let _entered = worker.enter();
                TcpListener::from_std(socket)?
            };
            worker.spawn(accept_loop(
                listener,
                frontend,
                proxy.clone(),
                stopped.clone(),
            ));
        }
        info!(%address, frontend = frontend.0, "listening");
        Ok(Listener {
            frontend,
            address,
            stop,
            shared,
        })
    }

    /// New descriptors of its listening sockets, for a listener that takes
    /// over the address.
    pub fn duplicate_sockets(&self) -> std::io::Result<Vec<std::net::TcpListener>> {
        self.shared
            .iter()
            .map(|fd| fd.try_clone().map(std::net::TcpListener::from))
            .collect()
    }

    /// Its listening sockets, to hand to the next process.
    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.shared.iter().map(AsFd::as_fd)
    }

    /// Stops accepting.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops accepting and waits until every accept loop has closed its
    /// socket. Afterwards no connection can be accepted by this listener:
    /// every one it took is already counted in `Connections`. A socket
    /// handed to a newer process goes on listening there; otherwise the
    /// kernel moves any connection still queued to another socket on the
    /// port (`net.ipv4.tcp_migrate_req`), or resets it if there is none.
    pub async fn stopped(&mut self) {
        self.stop();
        // Each accept loop holds a receiver until it ends.
        self.stop.closed().await;
        self.shared.clear();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long to wait before accepting again when over `max_connections` or
/// out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

async fn accept_loop(
    listener: TcpListener,
    id: FrontendId,
    proxy: Proxy,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if holding(&proxy, id) {
            // Leave new clients in the kernel's backlog until a slot frees up
            // (or, while the previous process serves them, until ready).
            tokio::select! {
                _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                _ = stopped.changed() => break,
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => serve(stream, peer, id, &proxy),
            Err(err) => {
                // EMFILE and friends: back off rather than spin.
                warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
    debug!(address = ?listener.local_addr().ok(), "listener stopped");
    // The socket closes before the receiver goes: `Listener::stopped` waits
    // for every receiver to go and promises the sockets are closed by then.
    // (Left to themselves, parameters drop in reverse order: `stopped` first.)
    drop(listener);
    drop(stopped);
}

/// Whether not to accept for now: the table says so (see
/// `RoutingTable::accepting`), or the frontend has `max_connections` open.
fn holding(proxy: &Proxy, id: FrontendId) -> bool {
    let table = proxy.table.load();
    !table.accepting()
        || table.frontend(id).is_some_and(|fe| {
            fe.max_connections > 0
                && fe.metrics.active_connections.get() >= i64::from(fe.max_connections)
        })
}

fn serve(stream: TcpStream, peer: SocketAddr, id: FrontendId, proxy: &Proxy) {
    let table = proxy.table.load_full();
    let Some(frontend) = table.frontend(id).cloned() else {
        // The frontend was removed and this listener is about to stop.
        return;
    };
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "set_nodelay failed");
    }
    if let Err(err) = SockRef::from(&stream).set_tcp_notsent_lowat(CLIENT_NOTSENT_LOWAT) {
        debug!(error = %err, "TCP_NOTSENT_LOWAT failed");
    }
    let guard = proxy.connections.open();
    let proxy = proxy.clone();
    // Boxed: the PROXY header and the TLS handshake last a moment, and the
    // task keeps no room for them (nor for the accepted socket's first
    // form) for the rest of its life.
    let opening = Box::pin(open(
        stream,
        peer,
        Arc::clone(&frontend),
        table,
        proxy.clone(),
    ));
    tokio::spawn(async move {
        let Some(Opened {
            stream,
            client,
            slot,
            table,
        }) = opening.await
        else {
            return;
        };
        match frontend.mode {
            Mode::Http => {
                drop(table);
                crate::http::serve(stream, client, &frontend, &proxy, guard).await
            }
            // Boxed: only the mode a connection is in takes room.
            Mode::Tcp => {
                Box::pin(crate::tcp::serve(
                    stream, client, &frontend, table, guard, &proxy,
                ))
                .await
            }
        }
        frontend.metrics.active_connections.dec();
        drop(slot);
    });
}

/// A connection admitted, through its PROXY header and TLS handshake.
struct Opened {
    stream: Stream,
    /// The client: the peer, or whom its PROXY header names.
    client: SocketAddr,
    /// The client's connection slot, if counted (boxed: it is rare, and
    /// a connection's task keeps it for its whole life).
    slot: Option<Box<ClientSlot>>,
    /// The table the connection was accepted under.
    table: Arc<RoutingTable>,
}

/// Reads the PROXY header (if the frontend expects one), admits the client
/// and shakes hands (if the frontend terminates TLS); `None` closes the
/// connection.
async fn open(
    mut stream: TcpStream,
    peer: SocketAddr,
    frontend: Arc<Frontend>,
    table: Arc<RoutingTable>,
    proxy: Proxy,
) -> Option<Opened> {
    let frontend = &*frontend;
    // Behind an L4 balancer speaking the PROXY protocol, the client is the one it names.
    let client = if frontend.accept_proxy {
        match proxy_protocol::read(&mut stream, frontend.timeouts.client_header).await {
            Ok(proxy_protocol::Header::Proxied { source, .. }) => source,
            Ok(proxy_protocol::Header::Local) => peer,
            Err(why) => {
                debug!(%peer, "closing connection: {why}");
                return None;
            }
        }
    } else {
        peer
    };
    let slot = admit(frontend, client, &proxy)?;
    frontend.metrics.connections.inc();
    frontend.metrics.active_connections.inc();
    match crate::handshake::accept(stream, frontend, client).await {
        Some(stream) => Some(Opened {
            stream,
            client,
            slot: slot.map(Box::new),
            table,
        }),
        None => {
            frontend.metrics.active_connections.dec();
            None
        }
    }
}

/// Connection-level refusals (the client's socket is simply closed): tcp
/// access lists and rate limits, and per-client connection limits. `Some`
/// holds the client's connection slot, if it is counted.
pub(crate) fn admit(
    frontend: &Frontend,
    client: SocketAddr,
    proxy: &Proxy,
) -> Option<Option<ClientSlot>> {
    let ip = client.ip();
    if frontend.mode == Mode::Tcp {
        if frontend
            .access
            .as_ref()
            .is_some_and(|access| !access.permits(ip))
        {
            frontend.metrics.denied_access.inc();
            return None;
        }
        if let Some(limit) = frontend.rate_limit {
            if proxy.limits.take(frontend.id, ip, limit).is_err() {
                frontend.metrics.denied_rate_limit.inc();
                return None;
            }
        }
    }
    match frontend.max_connections_per_client {
        0 => Some(None),
        max => match proxy.limits.connect(frontend.id, ip, max) {
            Some(slot) => Some(Some(slot)),
            None => {
                frontend.metrics.denied_max_connections.inc();
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arc_swap::ArcSwap;
    use zkgate_routing::RoutingTable;

    use super::*;

    #[tokio::test]
    async fn once_stopped_no_worker_accepts_on_the_port() {
        let workers = Workers::start(2).unwrap();
        let proxy = Proxy::new(Arc::new(ArcSwap::from_pointee(RoutingTable::empty())), None);
        let sockets = bind_per_worker(
            ([127, 0, 0, 1], 0).into(),
            &workers,
            &mut Inherited::default(),
        )
        .unwrap();
        let mut listener = Listener::spawn(sockets, FrontendId(0), &proxy, &workers).unwrap();
        TcpStream::connect(listener.address)
            .await
            .expect("listening before the stop");
        listener.stopped().await;
        // Only an accept loop that has ended has closed its socket; one still
        // running (on its worker's thread) would let this connect through.
        let refused = TcpStream::connect(listener.address).await;
        assert!(refused.is_err(), "connected after the stop: {refused:?}");
    }
}
