//! Host names of servers are resolved here, in the control plane, never on
//! the request path.

use std::net::IpAddr;

use tracing::warn;
use zkgate_config::Config;
use zkgate_routing::Resolved;

/// Resolves every server address of `config`; names that fail are left out
/// (the table builder then skips those servers and logs it).
pub async fn resolve_servers(config: &Config) -> Resolved {
    let mut resolved = Resolved::new();
    for server in config.backends.iter().flat_map(|b| &b.servers) {
        if resolved.contains_key(&server.address) {
            continue;
        }
        let address = &server.address;
        if let Ok(ip) = address.host.parse::<IpAddr>() {
            resolved.insert(address.clone(), (ip, address.port).into());
            continue;
        }
        match tokio::net::lookup_host((address.host.as_str(), address.port)).await {
            Ok(mut found) => match found.next() {
                Some(socket) => {
                    resolved.insert(address.clone(), socket);
                }
                None => warn!(server = %address, "host name has no address"),
            },
            Err(err) => warn!(server = %address, error = %err, "cannot resolve host name"),
        }
    }
    resolved
}
