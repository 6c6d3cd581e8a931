//! How a backend speaks TLS to its servers: which CAs vouch for them, which
//! name is sent (SNI) and verified, which protocol is offered (ALPN).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;
use zkgate_config::{BackendConfig, BackendTls, ConfigError, Mode, Protocol};

use crate::{error, files, provider};

/// A backend's TLS towards its servers.
pub struct ClientTls {
    /// Opens TLS connections (and resumes sessions with servers seen before).
    pub connector: TlsConnector,
    /// Tells connections made with different TLS settings apart, so that a
    /// pooled connection is only reused by the settings that made it.
    pub id: u64,
    sni: Option<ServerName<'static>>,
}

impl ClientTls {
    pub(crate) fn load(
        path: &str,
        tls: &BackendTls,
        backend: &BackendConfig,
        errors: &mut Vec<ConfigError>,
    ) -> Option<ClientTls> {
        let sni = match &tls.sni {
            Some(name) => match ServerName::try_from(name.clone()) {
                Ok(name) => Some(name),
                Err(err) => {
                    errors.push(error(format!("{path}.sni"), format!("`{name}`: {err}")));
                    return None;
                }
            },
            None => None,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|err| errors.push(error(path.to_owned(), err.to_string())))
            .ok()?;
        let mut config = if tls.verify {
            let ca = tls.ca.as_ref()?;
            let certs = files::certificates(ca)
                .map_err(|err| errors.push(error(format!("{path}.ca"), err)))
                .ok()?;
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                errors.push(error(
                    format!("{path}.ca"),
                    format!(
                        "{}: none of its {ignored} certificates can serve as a CA",
                        ca.display()
                    ),
                ));
                return None;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TrustAnyServer(provider())))
                .with_no_client_auth()
        };
        config.alpn_protocols = match (backend.mode, backend.protocol) {
            (Mode::Tcp, _) => Vec::new(),
            (Mode::Http, Protocol::Http1) => vec![b"http/1.1".to_vec()],
            (Mode::Http, Protocol::Http2) => vec![b"h2".to_vec()],
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Some(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sni,
        })
    }

    /// The name to send and verify for a server at `ip`: the configured
    /// `sni`, or else the address itself (verified against the certificate's
    /// IP addresses; no SNI is sent for an address).
    pub fn server_name(&self, ip: IpAddr) -> ServerName<'static> {
        self.sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(ip.into()))
    }
}

/// `verify: false`: any certificate is accepted (the handshake's signatures
/// are still checked, so the server must hold the key of what it presents).
#[derive(Debug)]
struct TrustAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
