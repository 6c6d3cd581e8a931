//! Keeps the bound listeners in line with the configuration. New sockets are
//! bound before a new table is published (so a bind failure refuses the
//! reload); removed ones stop accepting after it, leaving their accepted
//! connections alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use tracing::info;
use zkgate_config::Config;
use zkgate_proxy::{Inherited, Listener, Proxy, Workers};
use zkgate_routing::FrontendId;

/// Sockets bound for a configuration that is not yet in service.
pub struct Bound {
    desired: HashMap<SocketAddr, FrontendId>,
    sockets: Vec<(SocketAddr, FrontendId, Vec<std::net::TcpListener>)>,
}

/// The running listeners, by configured address.
pub struct Listeners {
    running: HashMap<SocketAddr, Listener>,
    /// The data plane's threads, each of which accepts on every address.
    workers: Workers,
}

impl Listeners {
    /// No listeners yet; those started will accept on every one of `workers`.
    pub fn new(workers: Workers) -> Self {
        Listeners {
            running: HashMap::new(),
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
        Ok(Bound { desired, sockets })
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
    }

    /// Stops every listener and waits until none can accept any more.
    pub async fn stop_all(&mut self) {
        for listener in self.running.values() {
            listener.stop();
        }
        for listener in self.running.values_mut() {
            listener.stopped().await;
        }
        self.running.clear();
    }

    /// Every listening socket, to hand to a process taking over.
    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.running.values().flat_map(Listener::sockets)
    }

    /// The bound addresses.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.running.values().map(|l| l.address).collect()
    }
}
