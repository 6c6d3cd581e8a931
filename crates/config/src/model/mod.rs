//! The validated, typed configuration that the rest of zkgate consumes.
//! Every default is resolved here: consumers never see an `Option` that means
//! "use the default".

mod backend;
mod frontend;
mod route;

pub use backend::*;
pub use frontend::*;
pub use route::*;

use std::net::SocketAddr;
use std::time::Duration;

/// Built-in defaults, documented in `docs/configuration.md`.
pub mod defaults {
    use std::time::Duration;

    /// `admin.bind`.
    pub const ADMIN_BIND: &str = "127.0.0.1:9900";
    /// `timeouts.connect`.
    pub const CONNECT: Duration = Duration::from_secs(3);
    /// `timeouts.client_header`.
    pub const CLIENT_HEADER: Duration = Duration::from_secs(10);
    /// `timeouts.client_idle`.
    pub const CLIENT_IDLE: Duration = Duration::from_secs(60);
    /// `timeouts.server`.
    pub const SERVER: Duration = Duration::from_secs(30);
    /// `timeouts.tunnel`.
    pub const TUNNEL: Duration = Duration::from_secs(3600);
    /// `retries`.
    pub const RETRIES: u32 = 2;
    /// `health_check.interval`.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
    /// `health_check.timeout`.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    /// `health_check.rise`.
    pub const HEALTH_RISE: u32 = 2;
    /// `health_check.fall`.
    pub const HEALTH_FALL: u32 = 3;
    /// `zookeeper.session_timeout`.
    pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
    /// A frontend's `max_connections`.
    pub const MAX_CONNECTIONS: u32 = 20_000;
    /// A server's `weight`.
    pub const WEIGHT: u32 = 1;
    /// The largest allowed `weight`, as in HAProxy.
    pub const MAX_WEIGHT: u32 = 256;
    /// `locality.min_local_healthy`, in percent.
    pub const MIN_LOCAL_HEALTHY: u8 = 70;
    /// `compression.algorithms`, in order of preference.
    pub const COMPRESSION_ALGORITHMS: [&str; 3] = ["zstd", "br", "gzip"];
    /// `compression.types`.
    pub const COMPRESSION_TYPES: [&str; 5] = [
        "text/*",
        "application/json",
        "application/javascript",
        "application/xml",
        "image/svg+xml",
    ];
    /// `compression.min_size`, in bytes.
    pub const COMPRESSION_MIN_SIZE: u64 = 1024;
    /// `compression.levels`: gzip's, as nginx's usual configurations set it.
    pub const GZIP_LEVEL: u32 = 6;
    /// `compression.levels`: brotli's, a quality fast enough to stream.
    pub const BR_LEVEL: u32 = 4;
    /// `compression.levels`: zstd's own default.
    pub const ZSTD_LEVEL: i32 = 3;
}

/// A whole, valid zkgate configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The admin listener.
    pub admin: AdminConfig,
    /// The ZooKeeper ensemble, if any backend follows it.
    pub zookeeper: Option<ZookeeperConfig>,
    /// One line per request or connection, when configured.
    pub access_log: Option<AccessLogConfig>,
    /// Where each ZooKeeper-backed backend's last-known members are kept,
    /// for a start while ZooKeeper does not answer.
    pub state_dir: Option<std::path::PathBuf>,
    /// This instance's zone (locality).
    pub zone: Option<std::sync::Arc<str>>,
    /// Frontends, sorted by name.
    pub frontends: Vec<FrontendConfig>,
    /// Backends, sorted by name.
    pub backends: Vec<BackendConfig>,
}

impl Config {
    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// `zookeeper:`: how to reach the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperConfig {
    /// `host:port,host:port,…`
    pub connect: String,
    /// Path prefix applied to every znode path, like `/prod`.
    pub chroot: Option<String>,
    /// A znode holding `defaults`/`frontends`/`backends`, hot-reloaded.
    pub config_node: Option<String>,
    /// Where this instance announces itself to its fleet, if it does.
    pub fleet: Option<FleetConfig>,
    /// Session timeout asked of ZooKeeper.
    pub session_timeout: Duration,
    /// Digest credentials.
    pub auth: Option<ZookeeperAuth>,
}

/// Digest authentication; the password is read from the environment when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperAuth {
    /// User name.
    pub user: String,
    /// Name of the environment variable holding the password.
    pub password_env: String,
}

impl ZookeeperAuth {
    /// `user:password`, as ZooKeeper's digest scheme takes it.
    pub fn credentials(&self) -> Result<String, String> {
        std::env::var(&self.password_env)
            .map(|password| format!("{}:{password}", self.user))
            .map_err(|_| {
                format!(
                    "environment variable {} (zookeeper.auth.password_env) is not set",
                    self.password_env
                )
            })
    }
}

/// How the children of a backend's znode describe servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberFormat {
    /// zkgate's own JSON, or the address as the znode name.
    Zkgate,
    /// Finagle/Aurora serverset `member_*` nodes.
    Serverset,
    /// Apache Curator service discovery instances.
    Curator,
    /// Airbnb Nerve (SmartStack) registrations.
    Nerve,
}

impl MemberFormat {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberFormat::Zkgate => "zkgate",
            MemberFormat::Serverset => "serverset",
            MemberFormat::Curator => "curator",
            MemberFormat::Nerve => "nerve",
        }
    }
}

/// What to do when ZooKeeper says a backend has no members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEmpty {
    /// Keep serving the last non-empty set (a mass deletion is more often an accident).
    KeepLast,
    /// Obey: the backend has no ZooKeeper servers.
    Apply,
}

/// `zookeeper.fleet:`: this instance's ephemeral znode `<path>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The fleet's znode.
    pub path: String,
    /// This instance's name (default: the host name).
    pub name: String,
}

/// A backend's `zookeeper:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The znode whose children are the servers.
    pub path: String,
    /// How the children are written.
    pub format: MemberFormat,
    /// serverset only: use this additional endpoint instead of `serviceEndpoint`.
    pub endpoint: Option<String>,
    /// Behaviour on an empty member list.
    pub on_empty: OnEmpty,
    /// The mass-removal guard, if on.
    pub protect: Option<Protect>,
}

/// `protect:`: removals beyond `max_removed_percent` of a backend's members
/// within `window` are held (the servers keep serving while healthy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protect {
    /// The share of members that may go within a window, in percent (0–100).
    pub max_removed_percent: u8,
    /// How far back removals count.
    pub window: Duration,
}

/// `admin:`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address of the metrics/health/status listener.
    pub bind: SocketAddr,
}

/// Whether a frontend or backend speaks HTTP or forwards raw TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Layer 7: HTTP/1.1 reverse proxy.
    Http,
    /// Layer 4: bytes both ways.
    Tcp,
}

impl Mode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
    }
}

/// Every timeout, resolved from the section, then `defaults`, then built-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP connection to a server.
    pub connect: Duration,
    /// Receiving a client's complete request headers.
    pub client_header: Duration,
    /// A keep-alive client connection with no request in flight.
    pub client_idle: Duration,
    /// Waiting for a server's response headers.
    pub server: Duration,
    /// Inactivity in both directions of a TCP-mode connection.
    pub tunnel: Duration,
}
/// `access_log:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Line format.
    pub format: AccessLogFormat,
    /// `stdout`, or a file appended to.
    pub path: String,
}

/// How access log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// HAProxy-like text.
    Text,
}
