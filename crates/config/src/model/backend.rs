//! A backend: its servers, how it picks one, and how it checks them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use super::{DiscoveryConfig, Mode, Timeouts};

/// `tls:` of a backend: zkgate speaks TLS to its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls {
    /// Name sent as SNI and verified against the server's certificate;
    /// without it, the server's IP address is verified (and no SNI is sent).
    pub sni: Option<String>,
    /// PEM file of the CAs that sign the servers' certificates.
    pub ca: Option<PathBuf>,
    /// Verify the server's certificate (on unless turned off explicitly).
    pub verify: bool,
}

/// Load-balancing algorithm of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest requests (http) or connections (tcp) in flight per unit of weight.
    LeastConn,
    /// Power of two weighted random choices, the less loaded wins.
    Random,
    /// Power of two choices by peak-EWMA latency × load (http).
    Ewma,
    /// Consistent hashing of the client address.
    Source,
    /// Consistent hashing of the request path (http).
    Uri,
    /// Consistent hashing of a request header's value (http).
    Header(HeaderName),
    /// Consistent hashing of a cookie's value (http).
    Cookie(String),
}

impl Balance {
    /// The YAML spelling, like `roundrobin` or `header(x-user)`.
    pub fn name(&self) -> String {
        match self {
            Balance::RoundRobin => "roundrobin".into(),
            Balance::LeastConn => "leastconn".into(),
            Balance::Random => "random".into(),
            Balance::Ewma => "ewma".into(),
            Balance::Source => "source".into(),
            Balance::Uri => "uri".into(),
            Balance::Header(name) => format!("header({name})"),
            Balance::Cookie(name) => format!("cookie({name})"),
        }
    }

    /// Whether this algorithm hashes a request key.
    pub fn hashes(&self) -> bool {
        matches!(
            self,
            Balance::Source | Balance::Uri | Balance::Header(_) | Balance::Cookie(_)
        )
    }
}

/// How consistent hashing places servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMethod {
    /// Maglev lookup table (default): one index per lookup, even spread.
    Maglev,
    /// Hash ring with virtual nodes.
    Ring,
}

/// One `backends:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// The backend's name (its YAML key).
    pub name: String,
    /// http or tcp; must match every frontend that uses it.
    pub mode: Mode,
    /// Algorithm.
    pub balance: Balance,
    /// Placement for the hashing algorithms.
    pub hash_method: HashMethod,
    /// Static servers.
    pub servers: Vec<ServerConfig>,
    /// Servers discovered in ZooKeeper, merged with the static ones.
    pub discovery: Option<DiscoveryConfig>,
    /// Active health checks.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive ejection of servers that keep failing.
    pub outlier_detection: Option<OutlierConfig>,
    /// Percent: below this share of usable servers, route to all ready servers. 0 = off.
    pub panic_threshold: u32,
    /// Ramp a new or recovered server's weight up over this long. Zero = off.
    pub slow_start: Duration,
    /// Cookie that pins a client to a server.
    pub sticky_cookie: Option<String>,
    /// Requests (connections, tcp) in flight per server. 0 = unlimited.
    pub max_connections_per_server: u32,
    /// HTTP version spoken to servers.
    pub protocol: Protocol,
    /// PROXY protocol version sent to tcp servers (1 or 2), if any.
    pub send_proxy: Option<u8>,
    /// Extra attempts on other servers when connecting fails.
    pub retries: u32,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    /// TLS towards the servers, when they speak it.
    pub tls: Option<BackendTls>,
    /// `locality: { mode: prefer_local, … }`, or `None` (off).
    pub locality: Option<Locality>,
}

/// A server's administrative state, with HAProxy's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminState {
    /// Takes traffic.
    Ready,
    /// Takes no new traffic; in-flight traffic finishes.
    Drain,
    /// Takes no traffic at all.
    Maint,
}

impl AdminState {
    /// The YAML/znode spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    /// Parses `ready | drain | maint`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ready" => Some(AdminState::Ready),
            "drain" => Some(AdminState::Drain),
            "maint" => Some(AdminState::Maint),
            _ => None,
        }
    }
}

/// A server address as written: an IP or a hostname, and a port.
/// Hostnames are resolved by the control plane, never on the request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    /// IP literal or DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `host` parsed, when it is an IP literal (parsed once, here, rather
    /// than at every table build).
    ip: Option<IpAddr>,
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ServerAddress {
    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(ServerAddress {
                host: addr.ip().to_string(),
                port: addr.port(),
                ip: Some(addr.ip()),
            });
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` has no port: write HOST:PORT, like 10.0.0.5:8080"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` in `{text}` is not a port number (1-65535)"))?;
        if port == 0 {
            return Err(format!("port 0 in `{text}`: give the server's real port"));
        }
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid_name {
            return Err(format!(
                "`{host}` in `{text}` is neither an IP address nor a host name"
            ));
        }
        Ok(ServerAddress {
            ip: host.parse().ok(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The socket address, when the host is an IP literal (no lookup needed).
    pub fn literal(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// One static server of a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where it listens.
    pub address: ServerAddress,
    /// 0–256; 0 takes no new traffic.
    pub weight: u32,
    /// ready, drain or maint.
    pub state: AdminState,
    /// The zone it runs in, if known (locality).
    pub zone: Option<std::sync::Arc<str>>,
}

/// A zone name, of this instance or a server, wherever it is written (the
/// configuration, a member's znode, the command line, `state_dir`): 1 to
/// 64 visible characters.
pub fn zone_name(text: &str) -> Result<std::sync::Arc<str>, String> {
    let visible = text.bytes().all(|b| b.is_ascii_graphic());
    if text.is_empty() || text.len() > 64 || !visible {
        return Err(format!(
            "`{text}` is not a zone name: 1 to 64 visible characters, like us-east-1a"
        ));
    }
    Ok(text.into())
}

/// A backend's `locality:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locality {
    /// Traffic stays in this instance's zone while at least this share (in
    /// percent) of the zone's configured weight is ready; below it, the
    /// rest spills over to other zones.
    pub min_local_healthy_percent: u8,
}

/// A backend's `health_check:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// What one check does.
    pub kind: HealthCheckKind,
    /// Between checks of one server (each check is jittered by up to 10%).
    pub interval: Duration,
    /// For one check.
    pub timeout: Duration,
    /// Passing checks in a row that bring a server up.
    pub rise: u32,
    /// Failing checks in a row that take a server down.
    pub fall: u32,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// Connect; optionally send bytes and expect a substring in the reply (HAProxy's tcp-check).
    Tcp {
        /// Sent after connecting.
        send: Option<String>,
        /// Must appear in what the server answers.
        expect: Option<String>,
    },
    /// An HTTP/1.1 request whose status must fall in `expect`.
    Http {
        /// Request method.
        method: http::Method,
        /// Request path.
        path: String,
        /// Host header (default: the server's address).
        host: Option<String>,
        /// Accepted status ranges.
        expect: Vec<(u16, u16)>,
    },
}

impl HealthCheckKind {
    /// Whether `status` passes an http check.
    pub fn accepts(expect: &[(u16, u16)], status: u16) -> bool {
        expect
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

/// A backend's `outlier_detection:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Failures in a row (connect errors, resets, timeouts, 5xx) that eject a server.
    pub consecutive_failures: u32,
    /// How long the first ejection lasts; repeated ejections last longer.
    pub ejection: Duration,
    /// At most this percent of a backend's servers are ejected at once.
    pub max_ejected_percent: u32,
}

/// The HTTP version zkgate speaks to a backend's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, pooled keep-alive connections.
    Http1,
    /// HTTP/2 over cleartext (h2c, prior knowledge), one multiplexed connection per server and worker.
    Http2,
}
