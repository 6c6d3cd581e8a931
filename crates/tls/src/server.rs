//! What a TLS frontend presents: one certificate per name, chosen by SNI.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use zkgate_config::{ConfigError, FrontendTls};

use crate::{error, files, provider};

/// TLS 1.2 sessions remembered for resumption by session id, process-wide.
const SESSION_CACHE_SIZE: usize = 65_536;

/// A frontend's TLS: its certificates and offered protocols, ready to accept.
pub struct ServerTls {
    /// Accepts client connections.
    pub acceptor: TlsAcceptor,
    /// The DNS names its certificates serve (`*.example.com` for wildcards).
    pub names: Vec<String>,
    /// The same certificates for QUIC, when the frontend serves HTTP/3:
    /// TLS 1.3 only, ALPN `h3`, and no 0-RTT (early data can be replayed).
    pub quic: Option<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    /// Loads a frontend's certificates; on failure, every problem is in `errors`.
    pub(crate) fn load(
        path: &str,
        tls: &FrontendTls,
        http3: bool,
        errors: &mut Vec<ConfigError>,
    ) -> Option<ServerTls> {
        let mut resolver = SniResolver::default();
        let mut names = Vec::new();
        let before = errors.len();
        for (i, files) in tls.certificates.iter().enumerate() {
            let at = format!("{path}.certificates[{i}]");
            let Some((key, cert_names)) = certified_key(&at, files, errors) else {
                continue;
            };
            let key = Arc::new(key);
            resolver.default.get_or_insert_with(|| Arc::clone(&key));
            for name in cert_names {
                let (map, bare) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut resolver.wildcard, suffix.to_owned()),
                    None => (&mut resolver.exact, name.clone()),
                };
                // The first certificate listed for a name wins.
                map.entry(bare).or_insert_with(|| Arc::clone(&key));
                names.push(name);
            }
        }
        if errors.len() > before {
            return None;
        }
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|err| errors.push(error(path.to_owned(), err.to_string())))
            .ok()?;
        let resolver: Arc<dyn ResolvesServerCert> = Arc::new(resolver);
        let mut config = config
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver));
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        // zkgate's order of cipher suites, not the client's: see `preference`.
        config.ignore_client_order = true;
        // Process-wide, so that a reload does not void the sessions clients hold.
        config.session_storage = session_cache();
        config.ticketer = ticketer()
            .map_err(|err| errors.push(error(path.to_owned(), err)))
            .ok()?;
        let quic = if http3 {
            let quic = quic_config(&config, resolver)
                .map_err(|err| errors.push(error(path.to_owned(), err.to_string())))
                .ok()?;
            Some(Arc::new(quic))
        } else {
            None
        };
        Some(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            names,
            quic,
        })
    }
}

/// The QUIC side of a frontend's TLS `tcp` config: the same certificates,
/// session cache and tickets, TLS 1.3 only (RFC 9001 §4.2) and ALPN `h3`.
/// Early data stays off (rustls' default): 0-RTT requests can be replayed.
fn quic_config(
    tcp: &rustls::ServerConfig,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h3".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = Arc::clone(&tcp.session_storage);
    config.ticketer = Arc::clone(&tcp.ticketer);
    config.max_early_data_size = 0;
    Ok(config)
}

/// A certificate chain with its signing key, checked to belong together,
/// and the DNS names of its leaf.
fn certified_key(
    at: &str,
    files: &zkgate_config::CertificateFiles,
    errors: &mut Vec<ConfigError>,
) -> Option<(CertifiedKey, Vec<String>)> {
    let chain = files::certificates(&files.cert)
        .map_err(|err| errors.push(error(format!("{at}.cert"), err)))
        .ok();
    let key = files::private_key(&files.key)
        .map_err(|err| errors.push(error(format!("{at}.key"), err)))
        .ok();
    let (chain, key) = (chain?, key?);
    let names = match webpki::EndEntityCert::try_from(&chain[0]) {
        Ok(leaf) => leaf
            .valid_dns_names()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>(),
        Err(err) => {
            errors.push(error(
                format!("{at}.cert"),
                format!(
                    "{}: the first certificate cannot be parsed: {err}",
                    files.cert.display()
                ),
            ));
            return None;
        }
    };
    let signing_key = match provider().key_provider.load_private_key(key) {
        Ok(key) => key,
        Err(err) => {
            errors.push(error(
                format!("{at}.key"),
                format!("{}: unusable private key: {err}", files.key.display()),
            ));
            return None;
        }
    };
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            errors.push(error(
                at.to_owned(),
                format!(
                    "the key in {} does not belong to the certificate in {}",
                    files.key.display(),
                    files.cert.display()
                ),
            ));
            return None;
        }
    }
    Some((certified, names))
}

/// Picks a certificate by the client's SNI: an exact name, else a wildcard
/// one level up (`*.example.com` serves `a.example.com`, not
/// `a.b.example.com`, as browsers match), else the first listed.
#[derive(Debug, Default)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        if let Some(key) = self.exact.get(name) {
            return Some(key);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello.server_name().and_then(|name| {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                self.find(&name.to_ascii_lowercase()).cloned()
            } else {
                self.find(name).cloned()
            }
        });
        found.or_else(|| self.default.clone())
    }
}

fn session_cache() -> Arc<dyn rustls::server::StoresServerSessions> {
    static CACHE: OnceLock<Arc<ServerSessionMemoryCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| ServerSessionMemoryCache::new(SESSION_CACHE_SIZE))
        .clone()
}

/// Session tickets (TLS 1.2 and 1.3) with keys rotated every few hours.
fn ticketer() -> Result<Arc<dyn ProducesTickets>, String> {
    static TICKETER: OnceLock<Arc<dyn ProducesTickets>> = OnceLock::new();
    if let Some(ticketer) = TICKETER.get() {
        return Ok(ticketer.clone());
    }
    let ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|err| format!("cannot set up session tickets: {err}"))?;
    Ok(TICKETER.get_or_init(|| ticketer).clone())
}
