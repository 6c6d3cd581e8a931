//! Host names of servers are resolved here, in the control plane, never on
//! the request path. Answers are cached until the next reload, so a burst of
//! ZooKeeper updates costs no DNS traffic.

use std::collections::HashMap;
use std::net::SocketAddr;

use tracing::warn;
use zkgate_config::ServerAddress;
use zkgate_routing::Resolved;

/// Resolves server addresses, remembering host names it has looked up.
#[derive(Default)]
pub struct Resolver {
    names: HashMap<ServerAddress, Option<SocketAddr>>,
}

impl Resolver {
    /// Forgets cached names, so the next build looks them up again.
    pub fn forget(&mut self) {
        self.names.clear();
    }

    /// Resolves the host names among `addresses` (IP literals need no
    /// lookup: the table builder reads them itself); names that fail are left
    /// out (the table builder then skips those servers and logs it).
    pub async fn resolve<'a>(
        &mut self,
        addresses: impl Iterator<Item = &'a ServerAddress>,
    ) -> Resolved {
        let mut resolved = Resolved::new();
        for address in addresses {
            // Literals first: they are most servers, and need no hashing.
            if address.literal().is_some() || resolved.contains_key(address) {
                continue;
            }
            if !self.names.contains_key(address) {
                let found =
                    match tokio::net::lookup_host((address.host.as_str(), address.port)).await {
                        Ok(mut found) => found.next(),
                        Err(err) => {
                            warn!(server = %address, error = %err, "cannot resolve host name");
                            None
                        }
                    };
                self.names.insert(address.clone(), found);
            }
            if let Some(Some(socket)) = self.names.get(address) {
                resolved.insert(address.clone(), *socket);
            }
        }
        resolved
    }
}
