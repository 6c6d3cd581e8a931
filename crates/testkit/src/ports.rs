//! Free loopback ports for processes that must be told a port up front.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// Ports already handed out by this process. The kernel may pick the same
/// free port for two `bind(0)` calls in a row, and zkgate binds with
/// SO_REUSEPORT: two tests given one port would not fail to bind, they
/// would silently share each other's traffic.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port on 127.0.0.1 that was free a moment ago, and that this process
/// has not handed out before.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port on 127.0.0.1");
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago, and that this
/// process has not handed out before (for TCP or UDP).
pub fn free_udp_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("no free UDP port on 127.0.0.1");
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_handed_out_twice() {
        let ports: Vec<u16> = (0..2_000).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
