//! The YAML schema exactly as users write it: serde structs with
//! `deny_unknown_fields`, every field optional where the spec gives a default.
//! Nothing here is validated yet; `validate/` turns it into the typed model.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::duration::Duration;

/// `admin:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub bind: Option<String>,
}

/// `access_log:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub format: Option<String>,
    pub path: Option<String>,
}

/// `zookeeper:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZookeeper {
    pub connect: String,
    pub chroot: Option<String>,
    pub session_timeout: Option<Duration>,
    pub auth: Option<RawZkAuth>,
    pub config_node: Option<String>,
    pub fleet: Option<RawFleet>,
}

/// `zookeeper.fleet:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub path: String,
    pub name: Option<String>,
}

/// `zookeeper.auth:` digest credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZkAuth {
    pub user: String,
    pub password_env: String,
}

/// `timeouts:` block, in `defaults`, a frontend or a backend.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Duration>,
    pub client_header: Option<Duration>,
    pub client_idle: Option<Duration>,
    pub server: Option<Duration>,
    pub tunnel: Option<Duration>,
}

/// `defaults:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub retries: Option<u32>,
}

/// One entry of `frontends:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrontend {
    pub bind: Vec<String>,
    pub mode: Option<String>,
    pub tls: Option<RawFrontendTls>,
    pub http3: Option<RawHttp3>,
    #[serde(default)]
    pub accept_proxy: bool,
    pub max_connections: Option<u32>,
    pub access: Option<RawAccess>,
    #[serde(default)]
    pub max_connections_per_client: u32,
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub default_backend: Option<String>,
    pub forwarded_headers: Option<bool>,
    pub request_id: Option<String>,
    pub compression: Option<RawCompression>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
}

/// `http3:` of a frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp3 {
    pub bind: Vec<String>,
}

/// `compression:` of a frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    pub algorithms: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub min_size: Option<u64>,
    pub levels: Option<RawLevels>,
}

/// `compression.levels:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevels {
    pub gzip: Option<u32>,
    pub br: Option<u32>,
    pub zstd: Option<i32>,
}

/// `tls:` of a frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrontendTls {
    pub certificates: Vec<RawCertificate>,
    #[serde(default)]
    pub alpn: Vec<String>,
}

/// One certificate/key pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
}

/// `access:` allow/deny CIDR lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `rate_limit:` per client address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    #[serde(default)]
    pub requests_per_second: u32,
    #[serde(default)]
    pub burst: u32,
}

/// One entry of a frontend's `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub access: Option<RawAccess>,
    pub backend: Option<String>,
    pub split: Option<Vec<RawSplitSide>>,
    pub split_key: Option<String>,
    pub redirect: Option<RawRedirect>,
    pub rewrite: Option<RawRewrite>,
    pub mirror: Option<RawMirror>,
    pub request_headers: Option<RawHeaderRules>,
    pub response_headers: Option<RawHeaderRules>,
}

/// One side of a route's `split:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplitSide {
    pub backend: String,
    pub weight: u32,
}

/// `redirect:` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub location: String,
    pub code: Option<u16>,
    #[serde(default)]
    pub keep_path: bool,
}

/// `rewrite:` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub path_prefix: String,
}

/// `mirror:` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub backend: String,
    pub percent: serde_yaml::Value,
}

/// `request_headers:` / `response_headers:` of a route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderRules {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// One entry of `backends:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub mode: Option<String>,
    pub balance: Option<String>,
    pub hash_method: Option<String>,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    pub zookeeper: Option<RawBackendZookeeper>,
    pub health_check: Option<RawHealthCheck>,
    pub outlier_detection: Option<RawOutlierDetection>,
    #[serde(default)]
    pub panic_threshold: u32,
    pub slow_start: Option<Duration>,
    pub sticky: Option<RawSticky>,
    pub protocol: Option<String>,
    pub tls: Option<RawBackendTls>,
    pub send_proxy: Option<String>,
    #[serde(default)]
    pub max_connections_per_server: u32,
    pub retries: Option<u32>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub locality: Option<RawLocality>,
}

/// One static server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: String,
    pub weight: Option<u32>,
    pub state: Option<String>,
    pub zone: Option<String>,
}

/// `locality:` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocality {
    pub mode: String,
    pub min_local_healthy: Option<serde_yaml::Value>,
}

/// `zookeeper:` block of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendZookeeper {
    pub path: String,
    pub format: Option<String>,
    pub endpoint: Option<String>,
    pub on_empty: Option<String>,
    pub protect: Option<RawProtect>,
}

/// `protect:` of a backend's `zookeeper:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtect {
    pub max_removed: serde_yaml::Value,
    pub window: Duration,
}

/// `health_check:` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub kind: String,
    pub path: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub send: Option<String>,
    pub expect: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

/// `outlier_detection:` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlierDetection {
    pub consecutive_failures: Option<u32>,
    pub ejection: Option<Duration>,
    pub max_ejected_percent: Option<u32>,
}

/// `sticky:` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    pub cookie: String,
}

/// `tls:` of a backend (TLS towards servers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendTls {
    pub sni: Option<String>,
    pub ca: Option<String>,
    pub verify: Option<bool>,
}
