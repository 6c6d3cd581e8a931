//! PEM files: certificate chains, private keys, CA bundles.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file, in order.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            format!(
                "{}: not a valid PEM certificate file: {err}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no `BEGIN CERTIFICATE` block in this file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{}: no `BEGIN PRIVATE KEY` (or RSA / EC PRIVATE KEY) block in this file",
            path.display()
        ),
        err => format!(
            "{}: not a valid PEM private key file: {err}",
            path.display()
        ),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    zkgate_config::files::read_regular(path, zkgate_config::files::MAX_PEM_BYTES)
}
