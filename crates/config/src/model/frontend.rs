//! A frontend: where clients connect, what they may do, and which backend
//! each request goes to.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::HeaderName;

use super::{Mode, RouteConfig, Timeouts};

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
    /// HTTP/3 over QUIC beside the TLS binds, with the same certificates.
    pub http3: Option<Http3>,
    /// `request_id:` the header that carries each request's id (set when
    /// absent, passed to servers, returned to clients, logged); a W3C
    /// `traceparent` is then kept or started.
    pub request_id: Option<HeaderName>,
    /// `compression:` of responses, when on.
    pub compression: Option<Compression>,
}

/// `compression:` of a frontend: which answers are compressed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// The codings offered, in the frontend's order of preference.
    pub algorithms: Vec<Algorithm>,
    /// Media types compressed, lowercase: `text/html`, or `text/*` for a
    /// whole top-level type.
    pub types: Vec<String>,
    /// Answers that state a smaller length are left alone.
    pub min_size: u64,
    /// gzip level (1–9).
    pub gzip_level: u32,
    /// Brotli quality (0–11).
    pub br_level: u32,
    /// zstd level (1–19).
    pub zstd_level: i32,
}

/// A content coding zkgate can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `zstd` (RFC 8878).
    Zstd,
    /// `br` (RFC 7932).
    Br,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Algorithm {
    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Zstd => "zstd",
            Algorithm::Br => "br",
            Algorithm::Gzip => "gzip",
        }
    }
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

/// `http3:` of a TLS frontend: QUIC on UDP, with the frontend's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http3 {
    /// UDP addresses to listen on.
    pub binds: Vec<SocketAddr>,
}

impl Http3 {
    /// The port announced in `Alt-Svc`: the first bind's.
    pub fn port(&self) -> Option<u16> {
        self.binds.first().map(SocketAddr::port)
    }
}

/// A PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// Leaf first, then intermediates.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key.
    pub key: PathBuf,
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
