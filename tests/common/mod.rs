//! Shared by the end-to-end tests: the binary under test and config snippets.
#![allow(dead_code)]

use std::net::SocketAddr;

/// The zkgate binary built for this test run.
pub const ZKGATE: &str = env!("CARGO_BIN_EXE_zkgate");

/// A YAML flow list of servers: `[{ address: "127.0.0.1:1", weight: 3 }, …]`.
pub fn servers(list: &[(SocketAddr, u32)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(addr, weight)| format!("{{ address: \"{addr}\", weight: {weight} }}"))
        .collect();
    format!("[{}]", items.join(", "))
}

/// An address nothing listens on: bound, then released.
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
