//! HTTP/3 listeners: one QUIC endpoint per UDP address, bound with
//! SO_REUSEPORT (or handed over by the previous process), serving one
//! frontend by id. The endpoint reads its socket on the first worker; each
//! connection's requests are served on the workers in turn. The frontend's
//! certificates and idle timeout come from the table at each connection
//! attempt, so a reload changes them without rebinding, and Retry tokens
//! issued before it stay valid.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use zkgate_routing::{Frontend, FrontendId};
use zkgate_tls::tokio_rustls::rustls;

use super::connection::{self, Handshaking, Held};
use super::transport::{self, MAX_UNVALIDATED_HANDSHAKES};
use crate::handover::Inherited;
use crate::limits::ClientSlot;
use crate::{Proxy, Workers};

/// Bytes the kernel may queue for the socket before zkgate reads them: a
/// burst of connection attempts waits there rather than being dropped.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// The UDP socket for `address`: the one the previous process handed over,
/// else a new one with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind_udp(
    address: SocketAddr,
    inherited: &mut Inherited,
) -> std::io::Result<std::net::UdpSocket> {
    if let Some(socket) = inherited.take_udp(address) {
        return Ok(socket);
    }
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if let Err(err) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        debug!(error = %err, "SO_RCVBUF not raised");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// A running QUIC endpoint on one address. Stopping it refuses new
/// connections; those open finish on their own.
pub struct QuicListener {
    /// The bound address.
    pub address: SocketAddr,
    serving: watch::Sender<FrontendId>,
    stop: watch::Sender<bool>,
    /// A second descriptor of the socket, to hand to the next process.
    shared: Option<OwnedFd>,
}

impl QuicListener {
    /// Starts serving `frontend` on `socket` (from [`bind_udp`]).
    pub fn spawn(
        socket: std::net::UdpSocket,
        frontend: FrontendId,
        proxy: &Proxy,
        workers: &Workers,
    ) -> std::io::Result<Self> {
        let address = socket.local_addr()?;
        let shared = OwnedFd::from(socket.try_clone()?);
        let worker = workers
            .handles()
            .first()
            .ok_or_else(|| std::io::Error::other("no worker to serve HTTP/3 on"))?;
        let endpoint = {
            let _entered = worker.enter();
            quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                None,
                socket,
                Arc::new(quinn::TokioRuntime),
            )?
        };
        let (stop, stopped) = watch::channel(false);
        let (serving, frontend_of) = watch::channel(frontend);
        let accepting = Accepting {
            endpoint,
            frontend: frontend_of,
            proxy: proxy.clone(),
            workers: workers.clone(),
            handshaking: Arc::default(),
            current: None,
            next_worker: 0,
        };
        worker.spawn(accepting.run(stopped));
        info!(%address, frontend = frontend.0, "listening for HTTP/3");
        Ok(QuicListener {
            address,
            serving,
            stop,
            shared: Some(shared),
        })
    }

    /// The frontend it serves.
    pub fn frontend(&self) -> FrontendId {
        *self.serving.borrow()
    }

    /// Serves `frontend` from the next connection on (a reload gave the
    /// address to another frontend; the socket stays).
    pub fn serve(&self, frontend: FrontendId) {
        self.serving.send_replace(frontend);
    }

    /// Its socket, to hand to the next process.
    pub fn socket(&self) -> Option<BorrowedFd<'_>> {
        self.shared.as_ref().map(AsFd::as_fd)
    }

    /// Stops taking new connections.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops taking new connections and waits until the accept loop has ended.
    pub async fn stopped(&mut self) {
        self.stop();
        self.stop.closed().await;
        self.shared = None;
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A QUIC configuration, and the TLS and idle timeout it was made from.
struct Current {
    tls: Arc<rustls::ServerConfig>,
    idle: Duration,
    config: Arc<quinn::ServerConfig>,
}

/// The accept loop's state.
struct Accepting {
    endpoint: quinn::Endpoint,
    frontend: watch::Receiver<FrontendId>,
    proxy: Proxy,
    workers: Workers,
    /// Handshakes under way.
    handshaking: Arc<AtomicUsize>,
    /// The QUIC configuration in use.
    current: Option<Current>,
    next_worker: usize,
}

impl Accepting {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        // Without a configuration the endpoint drops every Initial packet.
        if let Some(frontend) = self.frontend() {
            self.configure(&frontend);
        }
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                _ = stopped.changed() => break,
            };
            match incoming {
                Some(incoming) => self.take(incoming),
                None => break,
            }
        }
        // New attempts are refused from now on; open connections go on.
        self.endpoint.set_server_config(None);
        debug!(address = ?self.endpoint.local_addr().ok(), "HTTP/3 listener stopped");
        drop(stopped);
    }

    fn frontend(&self) -> Option<Arc<Frontend>> {
        let id = *self.frontend.borrow();
        self.proxy.table.load().frontend(id).cloned()
    }

    /// The QUIC configuration for `frontend`'s current TLS and timeouts,
    /// made anew only when they changed; `None` if it has no HTTP/3 TLS.
    fn configure(&mut self, frontend: &Frontend) -> Option<Arc<quinn::ServerConfig>> {
        let tls = frontend.tls.as_ref()?.quic.clone()?;
        // QUIC's own idle timer also runs during the handshake, which
        // `client_header` bounds: it must not end one sooner. A connection
        // without a request for `client_idle` is closed by its task.
        let timeouts = &frontend.timeouts;
        let idle = timeouts.client_idle.max(timeouts.client_header);
        if let Some(current) = &self.current {
            if Arc::ptr_eq(&current.tls, &tls) && current.idle == idle {
                return Some(Arc::clone(&current.config));
            }
        }
        let made = match &self.current {
            Some(current) => transport::refreshed(&current.config, Arc::clone(&tls), idle),
            None => transport::server_config(Arc::clone(&tls), idle),
        };
        match made {
            Ok(config) => {
                self.endpoint.set_server_config(Some(config.clone()));
                let config = Arc::new(config);
                let current = Current {
                    tls,
                    idle,
                    config: Arc::clone(&config),
                };
                self.current = Some(current);
                Some(config)
            }
            Err(err) => {
                warn!(frontend = %frontend.name, error = %err, "cannot serve HTTP/3 with this TLS");
                None
            }
        }
    }

    /// Accepts, validates or refuses one connection attempt.
    fn take(&mut self, incoming: quinn::Incoming) {
        let peer = incoming.remote_address();
        let Some(frontend) = self.frontend() else {
            // The frontend was removed and this listener is about to stop.
            return incoming.refuse();
        };
        let Some(config) = self.configure(&frontend) else {
            return incoming.refuse();
        };
        if !self.proxy.table.load().accepting() {
            // Not serving yet: the client sends its Initial again shortly.
            return incoming.ignore();
        }
        let Some(slot) = admit(&frontend, peer, &self.proxy) else {
            return incoming.refuse();
        };
        let validated = incoming.remote_address_validated();
        if !validated && self.handshaking.load(Ordering::Relaxed) >= MAX_UNVALIDATED_HANDSHAKES {
            // Many handshakes at once, perhaps from forged addresses: a
            // client first proves it receives at its address.
            if let Err(err) = incoming.retry() {
                err.into_incoming().ignore();
            }
            return;
        }
        let connecting = match incoming.accept_with(config) {
            Ok(connecting) => connecting,
            Err(err) => return debug!(%peer, error = %err, "QUIC connection attempt failed"),
        };
        let held = Held {
            guard: self.proxy.connections.open(),
            slot,
            handshaking: Handshaking::new(&self.handshaking),
        };
        let handles = self.workers.handles();
        let worker = &handles[self.next_worker % handles.len()];
        self.next_worker = self.next_worker.wrapping_add(1);
        worker.spawn(connection::serve(
            connecting,
            peer,
            frontend,
            self.proxy.clone(),
            held,
        ));
    }
}

/// Connection-level refusals of an HTTP/3 attempt: the frontend has
/// `max_connections` open (a TCP listener would stop accepting; an attempt
/// on UDP is refused instead), then those of every connection
/// (`accept::admit`). `Some` holds the client's connection slot, if counted.
fn admit(frontend: &Frontend, peer: SocketAddr, proxy: &Proxy) -> Option<Option<ClientSlot>> {
    let metrics = &frontend.metrics;
    if frontend.max_connections > 0
        && metrics.active_connections.get() >= i64::from(frontend.max_connections)
    {
        metrics.denied_max_connections.inc();
        return None;
    }
    crate::accept::admit(frontend, peer, proxy)
}
