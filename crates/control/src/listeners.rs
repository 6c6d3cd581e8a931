//! Keeps the bound listeners in line with the configuration. New sockets are
//! bound before a new table is published (so a bind failure refuses the
//! reload); removed ones stop accepting after it, leaving their accepted
//! connections alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use tracing::info;
use zkgate_config::Config;
use zkgate_proxy::{Inherited, Listener, Proxy, QuicListener, Workers};
use zkgate_routing::FrontendId;

/// Sockets bound for a configuration that is not yet in service.
pub struct Bound {
    desired: HashMap<SocketAddr, FrontendId>,
    sockets: Vec<(SocketAddr, FrontendId, Vec<std::net::TcpListener>)>,
    /// HTTP/3: every UDP address wanted, and the sockets newly bound.
    desired_udp: HashMap<SocketAddr, FrontendId>,
    udp: Vec<(SocketAddr, FrontendId, std::net::UdpSocket)>,
}

/// The running listeners, by configured address.
pub struct Listeners {
    running: HashMap<SocketAddr, Listener>,
    /// HTTP/3 listeners, by configured UDP address. A reload that gives an
    /// address to another frontend keeps the endpoint (and its
    /// connections) and points it at the new frontend.
    quic: HashMap<SocketAddr, QuicListener>,
    /// The data plane's threads, each of which accepts on every address.
    workers: Workers,
}

impl Listeners {
    /// No listeners yet; those started will accept on every one of `workers`.
    pub fn new(workers: Workers) -> Self {
        Listeners {
            running: HashMap::new(),
            quic: HashMap::new(),
            workers,
        }
    }

    /// Binds every address of `config` not already served by the same
    /// frontend (as `frontend_id` identifies them), with the `inherited`
    /// sockets first.
    pub fn bind_new(
        &self,
        config: &Config,
        inherited: &mut Inherited,
        mut frontend_id: impl FnMut(&str) -> FrontendId,
    ) -> Result<Bound, (SocketAddr, std::io::Error)> {
        let mut desired = HashMap::new();
        let mut sockets = Vec::new();
        for frontend in &config.frontends {
            let id = frontend_id(&frontend.name);
            for &address in &frontend.binds {
                desired.insert(address, id);
                let group = match self.running.get(&address) {
                    Some(running) if running.frontend == id => continue,
                    // Another frontend takes the address over: on the same
                    // sockets, so that none closes (closing one resets the
                    // connections it is completing).
                    Some(running) => running.duplicate_sockets(),
                    // SO_REUSEPORT lets this bind succeed even while another process holds the port.
                    None => zkgate_proxy::bind_per_worker(address, &self.workers, inherited),
                }
                .map_err(|err| (address, err))?;
                sockets.push((address, id, group));
            }
        }
        let mut desired_udp = HashMap::new();
        let mut udp = Vec::new();
        for frontend in &config.frontends {
            let id = frontend_id(&frontend.name);
            for &address in frontend.http3.iter().flat_map(|h3| &h3.binds) {
                desired_udp.insert(address, id);
                if !self.quic.contains_key(&address) {
                    let socket =
                        zkgate_proxy::bind_udp(address, inherited).map_err(|err| (address, err))?;
                    udp.push((address, id, socket));
                }
            }
        }
        Ok(Bound {
            desired,
            sockets,
            desired_udp,
            udp,
        })
    }

    /// Stops the listeners whose address `bound` gives to another frontend,
    /// and waits until none of their accept loops runs: until the new table
    /// and listener are in place, connections wait in the kernel's queue of
    /// the sockets they share, rather than being taken for a frontend that
    /// is going away.
    pub async fn stop_moved(&mut self, bound: &Bound) {
        for (address, id, _) in &bound.sockets {
            if self.running.get(address).is_some_and(|l| l.frontend != *id) {
                if let Some(mut moved) = self.running.remove(address) {
                    moved.stopped().await;
                }
            }
        }
    }

    /// Starts the newly bound listeners and stops the ones no longer wanted.
    pub fn commit(&mut self, bound: Bound, proxy: &Proxy) {
        for (address, id, group) in bound.sockets {
            match Listener::spawn(group, id, proxy, &self.workers) {
                Ok(listener) => {
                    // Replacing drops (and so stops) a listener of another frontend.
                    self.running.insert(address, listener);
                }
                Err(err) => tracing::error!(%address, error = %err, "cannot start listener"),
            }
        }
        self.running.retain(|address, listener| {
            let keep = bound.desired.get(address) == Some(&listener.frontend);
            if !keep {
                info!(%address, "no longer listening");
            }
            keep
        });
        for (address, id, socket) in bound.udp {
            match QuicListener::spawn(socket, id, proxy, &self.workers) {
                Ok(listener) => {
                    self.quic.insert(address, listener);
                }
                Err(err) => tracing::error!(%address, error = %err, "cannot start HTTP/3 listener"),
            }
        }
        self.quic
            .retain(|address, listener| match bound.desired_udp.get(address) {
                Some(&id) => {
                    if listener.frontend() != id {
                        listener.serve(id);
                    }
                    true
                }
                None => {
                    info!(%address, "no longer listening for HTTP/3");
                    false
                }
            });
    }

    /// Stops every listener and waits until none can accept any more.
    pub async fn stop_all(&mut self) {
        for listener in self.running.values() {
            listener.stop();
        }
        for listener in self.quic.values() {
            listener.stop();
        }
        for listener in self.running.values_mut() {
            listener.stopped().await;
        }
        for listener in self.quic.values_mut() {
            listener.stopped().await;
        }
        self.running.clear();
        self.quic.clear();
    }

    /// Every listening socket (TCP, then UDP), to hand to a process taking over.
    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        let udp = self.quic.values().filter_map(QuicListener::socket);
        self.running.values().flat_map(Listener::sockets).chain(udp)
    }

    /// The bound addresses (TCP and UDP).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let udp = self.quic.values().map(|l| l.address);
        self.running
            .values()
            .map(|l| l.address)
            .chain(udp)
            .collect()
    }
}
