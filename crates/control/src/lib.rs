//! The control plane: the single owner of change, in two parts. The table
//! publisher (`publisher`) builds the next `RoutingTable` off the data path
//! from the configuration, ZooKeeper's membership and health checks, and
//! publishes it with one `ArcSwap` store. The lifecycle ([`ControlPlane`])
//! owns it and the process around it: configuration sources and reloads,
//! listeners, readiness and the start hold, signals, and the hand-over of
//! listening sockets to a successor.

mod build_budget;
mod fleet;
mod handover;
mod last_known;
mod lifecycle;
mod listeners;
mod member;
mod members;
mod notify;
mod on_cpu;
mod protect;
mod publisher;
mod readiness;
mod resolve;
mod signals;
mod sources;
mod succession;
mod warming;

use std::net::SocketAddr;
use std::path::PathBuf;

use zkgate_config::Config;
use zkgate_tls::TlsMaterial;

pub use lifecycle::{ControlPlane, SHUTDOWN_GRACE};
pub use signals::Signals;
pub use zkgate_proxy::Workers;

/// Why zkgate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hand-over socket (`--upgrade-socket`) could not be served.
    #[error("cannot serve the upgrade socket {path}: {source}")]
    HandoverSocket {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Metrics could not be registered (a bug: names are fixed).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Another live instance announces itself under this instance's fleet name.
    #[error("the fleet name is taken: {0}; give this instance another `zookeeper.fleet.name`")]
    FleetName(String),
    /// The access log could not be opened.
    #[error("cannot open the access log {path}: {source}")]
    AccessLog {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The configuration zkgate starts with: read and validated, with its TLS
/// material loaded.
pub struct LoadedConfig {
    /// The file, re-read at every SIGHUP.
    pub path: PathBuf,
    /// The file's text, which a config node's sections are merged into.
    pub text: String,
    /// The configuration.
    pub config: Config,
    /// Its certificates and keys.
    pub tls: TlsMaterial,
}
