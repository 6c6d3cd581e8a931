//! The servers of a backend being built: static ones first, then those
//! ZooKeeper lists, each address once, each with its state carried over
//! from the last table (or new).
//!
//! A change to a large backend is usually one member: a weight, a state,
//! one member in or out. The new list then follows the last table's in
//! order (ZooKeeper's members come sorted by znode name), and the states are
//! taken from the last table's servers as the two lists are walked side by
//! side, with no lookup per server (a lookup per server in a map of 10,000
//! is most of what a build of such a backend costs: each one misses the
//! cache). Anything else — a member moved, an address listed twice — takes
//! the general path: a lookup per server by address.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::{debug, warn};
use zkgate_config::{BackendConfig, ServerConfig};

use super::Resolved;
use crate::server::{BackendClaims, FastHash, RegistryGeneration, Server, ServerSource};

/// A server as listed, with its address resolved.
type Listed<'a> = (&'a ServerConfig, ServerSource, SocketAddr);

/// The servers of backend `name`, with their states; `previous` are the
/// last table's servers of the backend, in order.
pub(super) fn servers_of(
    name: &Arc<str>,
    config: &BackendConfig,
    discovered: &[&ServerConfig],
    resolved: &Resolved,
    previous: &[Server],
    registry: &mut RegistryGeneration<'_>,
) -> Vec<Server> {
    let mut listed: Vec<Listed<'_>> = Vec::with_capacity(config.servers.len() + discovered.len());
    let all = config
        .servers
        .iter()
        .map(|s| (s, ServerSource::Static))
        .chain(discovered.iter().map(|&s| (s, ServerSource::ZooKeeper)));
    for (server, source) in all {
        match server
            .address
            .literal()
            .or_else(|| resolved.get(&server.address).copied())
        {
            Some(address) => listed.push((server, source, address)),
            None => {
                warn!(backend = %name, server = %server.address, "server left out: its host name did not resolve");
            }
        }
    }
    let mut claims = registry.claims(name);
    if !previous.is_empty() {
        if let Some(servers) = in_step(&listed, previous, &mut claims) {
            return servers;
        }
    }
    let mut servers: Vec<Server> = Vec::with_capacity(listed.len());
    let mut seen: HashSet<SocketAddr, FastHash> =
        HashSet::with_capacity_and_hasher(listed.len(), Default::default());
    for &(server, source, address) in &listed {
        if !seen.insert(address) {
            // The first entry wins: a static server over a discovered one.
            debug!(backend = %name, server = %server.address, %address, "server left out: another entry has the same address");
            continue;
        }
        servers.push(Server::listed(server, source, claims.claim(address)));
    }
    claims.release_unlisted(&seen);
    servers
}

/// The servers when `listed` follows `previous` in order, but for servers
/// added (addresses not seen before) and removed; `None` otherwise.
fn in_step(
    listed: &[Listed<'_>],
    previous: &[Server],
    claims: &mut BackendClaims<'_>,
) -> Option<Vec<Server>> {
    let mut servers: Vec<Server> = Vec::with_capacity(listed.len());
    let mut removed: Vec<SocketAddr> = Vec::new();
    let mut added: HashSet<SocketAddr, FastHash> = HashSet::default();
    // The first server of `previous` not yet matched.
    let mut next = 0;
    for &(server, source, address) in listed {
        let state = if previous.get(next).is_some_and(|p| p.address() == address) {
            next += 1;
            Arc::clone(&previous[next - 1].state)
        } else if claims.is_new(address) {
            if !added.insert(address) {
                return None; // listed twice
            }
            claims.claim(address)
        } else {
            // Known, further on: the servers before it were removed. Not
            // further on: it moved, or is listed twice.
            let skipped = previous[next..]
                .iter()
                .position(|p| p.address() == address)?;
            removed.extend(previous[next..next + skipped].iter().map(Server::address));
            next += skipped + 1;
            Arc::clone(&previous[next - 1].state)
        };
        servers.push(Server::listed(server, source, state));
    }
    removed.extend(previous[next..].iter().map(Server::address));
    claims.release(&removed);
    Some(servers)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prometheus::Registry;
    use zkgate_config::{AdminState, ServerAddress};
    use zkgate_metrics::Metrics;

    use super::*;
    use crate::server::ServerState;
    use crate::{Discovered, RoutingTable, TableBuilder};

    const CONFIG: &str = "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: web\nbackends:\n  web:\n    servers: [{ address: \"127.0.0.1:9000\" }]\n";

    /// Builds the next table with ZooKeeper listing `ports` (with weights).
    fn table(builder: &mut TableBuilder, listed: &[(u16, u32)]) -> RoutingTable {
        let config = zkgate_config::parse(CONFIG, "t").unwrap();
        let members = listed
            .iter()
            .map(|&(port, weight)| ServerConfig {
                address: ServerAddress::parse(&format!("127.0.0.1:{port}")).unwrap(),
                weight,
                state: AdminState::Ready,
                zone: None,
            })
            .collect::<Vec<_>>();
        let discovered: Discovered = [("web".to_owned(), members.iter().collect())].into();
        let changed = ["web".to_owned()].into();
        builder.build_changed(
            &config,
            &discovered,
            &Default::default(),
            crate::Changed::Backends(&changed),
        )
    }

    fn states(table: &RoutingTable) -> HashMap<u16, Arc<ServerState>> {
        let servers = &table.backend("web").unwrap().servers;
        servers
            .iter()
            .map(|s| (s.address().port(), Arc::clone(&s.state)))
            .collect()
    }

    fn ports(table: &RoutingTable) -> Vec<(u16, u32)> {
        let servers = &table.backend("web").unwrap().servers;
        servers
            .iter()
            .map(|s| (s.address().port(), s.weight))
            .collect()
    }

    fn series(registry: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    #[test]
    fn a_servers_gauges_follow_every_build_back_and_forth() {
        let registry = Registry::new();
        let mut builder = TableBuilder::new(Metrics::register(&registry).unwrap());
        let gauges = |table: &RoutingTable| {
            let servers = &table.backend("web").unwrap().servers;
            let server = servers.iter().find(|s| s.address().port() == 9002);
            let state = &server.unwrap().state;
            (state.up.get(), state.weight.get())
        };
        // Only what changed is set; a value that comes back is set again.
        for (weight, expected) in [
            (1, (1, 1)),
            (3, (1, 3)),
            (0, (0, 0)),
            (3, (1, 3)),
            (1, (1, 1)),
        ] {
            let table = table(&mut builder, &[(9001, 1), (9002, weight)]);
            assert_eq!(gauges(&table), expected, "weight {weight}");
        }
        assert!(series(&registry)
            .contains(r#"zkgate_server_weight{backend="web",server="127.0.0.1:9002"} 1"#));
    }

    #[test]
    fn servers_that_stay_keep_their_state_whatever_else_changes_in_the_list() {
        let registry = Registry::new();
        let mut builder = TableBuilder::new(Metrics::register(&registry).unwrap());
        let first = table(&mut builder, &[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
        let changes: [&[(u16, u32)]; 6] = [
            // A weight.
            &[(1, 1), (2, 7), (3, 1), (4, 1), (5, 1)],
            // One out in the middle, one in at the end.
            &[(1, 1), (2, 7), (4, 1), (5, 1), (6, 1)],
            // One in in the middle, two out at the start.
            &[(4, 1), (8, 2), (5, 1), (6, 1)],
            // Moved: the general path.
            &[(6, 1), (4, 1), (8, 2), (5, 1)],
            // Listed twice: the first entry wins.
            &[(6, 1), (4, 3), (6, 9), (5, 1)],
            // Nothing in step: every server new but 5.
            &[(9, 1), (5, 1), (10, 1)],
        ];
        let mut before = states(&first);
        for listed in changes {
            let next = table(&mut builder, listed);
            let mut expected: Vec<(u16, u32)> = Vec::new();
            for &(port, weight) in listed {
                if !expected.iter().any(|&(p, _)| p == port) {
                    expected.push((port, weight));
                }
            }
            // The static server first, then ZooKeeper's, once each.
            expected.insert(0, (9000, 1));
            assert_eq!(ports(&next), expected, "{listed:?}");
            let after = states(&next);
            for (port, state) in &after {
                if let Some(old) = before.get(port) {
                    assert!(Arc::ptr_eq(old, state), "{port} kept its state: {listed:?}");
                }
            }
            let text = series(&registry);
            for port in before.keys().filter(|p| !after.contains_key(p)) {
                assert!(
                    !text.contains(&format!("127.0.0.1:{port}\"")),
                    "{port} lost its series: {listed:?}\n{text}"
                );
            }
            for port in after.keys() {
                assert!(
                    text.contains(&format!(
                        "zkgate_server_weight{{backend=\"web\",server=\"127.0.0.1:{port}\"}}"
                    )),
                    "{port} has its series: {listed:?}\n{text}"
                );
            }
            before = after;
        }
    }

    #[test]
    fn in_step_takes_changes_in_order_and_leaves_the_rest_to_the_general_path() {
        let metrics = Metrics::register(&Registry::new()).unwrap();
        let name: Arc<str> = "web".into();
        let address = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let config = |port: u16| ServerConfig {
            address: ServerAddress::parse(&format!("127.0.0.1:{port}")).unwrap(),
            weight: 1,
            state: AdminState::Ready,
            zone: None,
        };
        let configs: HashMap<u16, ServerConfig> = (1..=9).map(|p| (p, config(p))).collect();
        let cases: [(&[u16], bool); 6] = [
            (&[1, 2, 3, 4, 5], true),
            (&[1, 3, 4, 5, 6], true),
            (&[7, 2, 8, 5], true),
            (&[], true),
            (&[2, 1, 3, 4, 5], false),
            (&[1, 2, 2, 3, 4, 5], false),
        ];
        for (ports, in_order) in cases {
            let listed: Vec<Listed<'_>> = ports
                .iter()
                .map(|p| (&configs[p], ServerSource::ZooKeeper, address(*p)))
                .collect();
            // The last table held 1 to 5.
            let mut registry = crate::server::ServerRegistry::default();
            let mut generation = registry.generation(&metrics);
            let mut claims = generation.claims(&name);
            let previous: Vec<Server> = (1..=5)
                .map(|p| {
                    let state = claims.claim(address(p));
                    Server::listed(&configs[&p], ServerSource::ZooKeeper, state)
                })
                .collect();
            drop(claims);
            generation.finish();
            let mut generation = registry.generation(&metrics);
            let mut claims = generation.claims(&name);
            let servers = in_step(&listed, &previous, &mut claims);
            assert_eq!(servers.is_some(), in_order, "{ports:?}");
            if let Some(servers) = servers {
                let got: Vec<u16> = servers.iter().map(|s| s.address().port()).collect();
                assert_eq!(got, ports);
                for server in &servers {
                    let port = server.address().port();
                    if port <= 5 {
                        assert!(Arc::ptr_eq(
                            &server.state,
                            &previous[usize::from(port) - 1].state
                        ));
                    }
                }
            }
        }
    }
}
