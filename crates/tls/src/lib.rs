//! TLS material, loaded from files by the control plane when a configuration
//! is checked, started or reloaded — never on the data path: per frontend,
//! the certificates it presents (chosen by SNI); per backend, how its servers
//! are verified. A configuration whose files don't load is refused whole.

mod client;
mod files;
mod server;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use zkgate_config::{Config, ConfigError, ConfigErrors};

pub use client::ClientTls;
pub use server::ServerTls;
pub use tokio_rustls;

/// The TLS side of one configuration.
#[derive(Default, Clone)]
pub struct TlsMaterial {
    frontends: HashMap<String, Arc<ServerTls>>,
    backends: HashMap<String, Arc<ClientTls>>,
}

impl TlsMaterial {
    /// Reads every certificate, key and CA file `config` names. Errors name
    /// the field (`frontends.web.tls.certificates[0].key`) and the problem;
    /// `origin` is where the configuration came from, as for parsing.
    pub fn load(config: &Config, origin: &str) -> Result<TlsMaterial, ConfigErrors> {
        let mut errors = Vec::new();
        let mut material = TlsMaterial::default();
        for frontend in &config.frontends {
            if let Some(tls) = &frontend.tls {
                let path = format!("frontends.{}.tls", frontend.name);
                let http3 = frontend.http3.is_some();
                if let Some(loaded) = ServerTls::load(&path, tls, http3, &mut errors) {
                    material
                        .frontends
                        .insert(frontend.name.clone(), Arc::new(loaded));
                }
            }
        }
        for backend in &config.backends {
            if let Some(tls) = &backend.tls {
                let path = format!("backends.{}.tls", backend.name);
                if let Some(loaded) = ClientTls::load(&path, tls, backend, &mut errors) {
                    material
                        .backends
                        .insert(backend.name.clone(), Arc::new(loaded));
                }
            }
        }
        if errors.is_empty() {
            Ok(material)
        } else {
            Err(ConfigErrors {
                origin: origin.to_owned(),
                errors,
            })
        }
    }

    /// What frontend `name` presents to clients, if it terminates TLS.
    pub fn frontend(&self, name: &str) -> Option<&Arc<ServerTls>> {
        self.frontends.get(name)
    }

    /// How backend `name` connects to its servers, if over TLS.
    pub fn backend(&self, name: &str) -> Option<&Arc<ClientTls>> {
        self.backends.get(name)
    }
}

/// The one cryptography provider: rustls' safe defaults on *ring* (TLS 1.2
/// and 1.3 only, AEAD cipher suites with forward secrecy only), AES-128-GCM
/// first (see [`preference`]).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            provider
                .cipher_suites
                .sort_by_key(|suite| preference(suite.suite()));
            Arc::new(provider)
        })
        .clone()
}

/// Where a cipher suite comes in zkgate's order, which frontends apply
/// whatever order the client lists (as Mozilla's recommended configurations
/// do): AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305. Clients list
/// AES-256 first, but 128-bit keys are the standard strength, AES-128 has
/// fewer rounds, and its suites hash with SHA-256, which processors
/// accelerate, where AES-256's use SHA-384: a full handshake costs ~9 % less
/// CPU on each side.
fn preference(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite::*;
    match suite {
        TLS13_AES_128_GCM_SHA256
        | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        TLS13_AES_256_GCM_SHA384
        | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    }
}

fn error(path: String, message: String) -> ConfigError {
    ConfigError {
        location: None,
        path,
        message,
    }
}

#[cfg(test)]
mod tests;
