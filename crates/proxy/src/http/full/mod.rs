//! The full path: hyper's HTTP/1.1 and HTTP/2 servers towards clients and
//! hyper's clients towards servers, for everything the fast path leaves
//! aside (request bodies, HTTP/2, upgrades, HTTP/2 servers, unusual
//! heads). Each request goes through the same request core as the fast
//! path's; bodies stream both ways with back-pressure.

mod answer;
mod body;
mod client;
mod compress;
mod forward;
mod h1;
mod h2;
mod mirror;
mod rewind;
mod service;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use zkgate_routing::Frontend;

use crate::io::{ConnActivity, CountingIo};
use crate::stream::Stream;
use crate::Proxy;

pub use h1::serve as serve_h1;
pub use h2::serve as serve_h2;
pub use mirror::{head_of as mirrored_head, spawn as mirror};
pub use service::ProxyService;

/// The counted client socket, the service of its requests, and their activity.
pub fn client_side(
    stream: Stream,
    peer: SocketAddr,
    frontend: &Frontend,
    proxy: Proxy,
) -> (CountingIo<Stream>, ProxyService, Arc<ConnActivity>) {
    let activity = ConnActivity::new();
    let io = CountingIo::new(
        stream,
        frontend.metrics.bytes_received.clone(),
        frontend.metrics.bytes_sent.clone(),
        Some(Arc::clone(&activity)),
    );
    let service = ProxyService::new(proxy, frontend.id, peer, Arc::clone(&activity));
    (io, service, activity)
}
