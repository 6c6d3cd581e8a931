//! `tls:` of frontends and backends. Only the shape is checked here; the
//! files themselves are read (and their certificates matched with their
//! keys) when the TLS material is loaded, at `check`, start and reload.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::model::{BackendTls, CertificateFiles, FrontendTls, Mode};
use crate::raw::{RawBackendTls, RawFrontendTls};

/// ALPN protocols an http frontend can serve.
const HTTP_ALPN: [&str; 2] = ["h2", "http/1.1"];

pub(super) fn frontend_tls(
    path: &str,
    raw: &RawFrontendTls,
    mode: Mode,
    errors: &mut Vec<ConfigError>,
) -> FrontendTls {
    if raw.certificates.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.certificates"),
            "a TLS frontend needs at least one `{ cert: FILE, key: FILE }`",
        ));
    }
    let mut certificates = Vec::new();
    for (i, pair) in raw.certificates.iter().enumerate() {
        let at = |field: &str| format!("{path}.certificates[{i}].{field}");
        if pair.cert.is_empty() {
            errors.push(ConfigError::new(at("cert"), "empty file name"));
        }
        if pair.key.is_empty() {
            errors.push(ConfigError::new(at("key"), "empty file name"));
        }
        certificates.push(CertificateFiles {
            cert: PathBuf::from(&pair.cert),
            key: PathBuf::from(&pair.key),
        });
    }
    let alpn = if raw.alpn.is_empty() && mode == Mode::Http {
        HTTP_ALPN.iter().map(|p| (*p).to_owned()).collect()
    } else {
        raw.alpn.clone()
    };
    for (i, protocol) in alpn.iter().enumerate() {
        let at = format!("{path}.alpn[{i}]");
        if mode == Mode::Http && !HTTP_ALPN.contains(&protocol.as_str()) {
            errors.push(ConfigError::new(
                at,
                format!("an http frontend serves h2 and http/1.1 only, not `{protocol}`"),
            ));
        } else if protocol.is_empty() || protocol.len() > 255 {
            errors.push(ConfigError::new(
                at,
                "an ALPN protocol name is 1 to 255 bytes",
            ));
        }
    }
    FrontendTls { certificates, alpn }
}

pub(super) fn backend_tls(
    path: &str,
    raw: &RawBackendTls,
    errors: &mut Vec<ConfigError>,
) -> BackendTls {
    let verify = raw.verify.unwrap_or(true);
    if verify && raw.ca.is_none() {
        errors.push(ConfigError::new(
            format!("{path}.ca"),
            "servers' certificates are verified, against this CA file: set `ca: FILE` (or `verify: false` to trust any server, which is unsafe)",
        ));
    }
    if let Some(sni) = &raw.sni {
        let valid = !sni.is_empty()
            && sni.len() <= 253
            && sni.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            errors.push(ConfigError::new(
                format!("{path}.sni"),
                format!("`{sni}` is not a DNS name"),
            ));
        }
    }
    BackendTls {
        sni: raw.sni.clone(),
        ca: raw.ca.as_ref().map(PathBuf::from),
        verify,
    }
}
