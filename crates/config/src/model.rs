//! The validated, typed configuration that the rest of zkgate consumes.
//! Every default is resolved here: consumers never see an `Option` that means
//! "use the default".

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

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

/// One `frontends:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendConfig {
    /// The frontend's name (its YAML key).
    pub name: String,
    /// Listening addresses.
    pub binds: Vec<SocketAddr>,
    /// http or tcp.
    pub mode: Mode,
    /// Concurrent client connections accepted; beyond it, accepting pauses. 0 = unlimited.
    pub max_connections: u32,
    /// Routes, first match wins (http only).
    pub routes: Vec<RouteConfig>,
    /// The backend used when no route matches.
    pub default_backend: Option<String>,
    /// Add `X-Forwarded-For/-Proto/-Host` (http only).
    pub forwarded_headers: bool,
    /// Which client addresses may connect.
    pub access: Option<AccessList>,
    /// Expect a PROXY protocol (v1 or v2) header on every connection.
    pub accept_proxy: bool,
    /// Open connections per client address. 0 = unlimited.
    pub max_connections_per_client: u32,
    /// Requests (tcp: connections) per second per client address.
    pub rate_limit: Option<RateLimit>,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    /// TLS termination, when the frontend speaks TLS to clients.
    pub tls: Option<FrontendTls>,
}

/// `tls:` of a frontend: the certificates it presents and the protocols it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendTls {
    /// Certificate chains with their keys; SNI picks one by the names it
    /// carries, and the first is the default for unknown or missing SNI.
    pub certificates: Vec<CertificateFiles>,
    /// ALPN protocols offered, in order of preference.
    pub alpn: Vec<String>,
}

/// A PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// Leaf first, then intermediates.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key.
    pub key: PathBuf,
}

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

/// One route of an http frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Host to match, exact or `*.suffix`.
    pub host: Option<HostPattern>,
    /// Path prefix to match.
    pub path_prefix: Option<String>,
    /// Request headers that must be present with exactly these values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Target backend.
    pub backend: String,
    /// Which client addresses may use this route.
    pub access: Option<AccessList>,
}

/// A route's `host:` pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: matches any name ending in it.
    Suffix(String),
}

impl HostPattern {
    /// Whether a request's host (without port, any case) matches. It is
    /// taken as the bytes the client sent: names are ASCII.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
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

/// `access: { allow, deny }`: a client is refused if a `deny` network holds
/// its address, or if `allow` is not empty and no `allow` network does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    /// Networks allowed (empty: everyone not denied).
    pub allow: Vec<ipnet::IpNet>,
    /// Networks denied; deny wins over allow.
    pub deny: Vec<ipnet::IpNet>,
}

impl AccessList {
    /// Whether `client` may pass.
    pub fn permits(&self, client: std::net::IpAddr) -> bool {
        let client = match client {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, std::net::IpAddr::V4),
            v4 => v4,
        };
        !self.deny.iter().any(|net| net.contains(&client))
            && (self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&client)))
    }
}

/// `rate_limit:` per client address: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate.
    pub requests_per_second: u32,
    /// Extra requests allowed in a burst (the bucket's size beyond one second's worth).
    pub burst: u32,
}
