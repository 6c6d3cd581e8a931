//! Certificates made at test time: a private CA, leaf certificates for any
//! DNS names or IP addresses, PEM files in a temporary directory, and client
//! configurations that trust the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A private certificate authority whose files live as long as it does.
pub struct Pki {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub ca: PathBuf,
}

/// A certificate chain file and its key file.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM chain: the leaf.
    pub cert: PathBuf,
    /// PEM PKCS#8 key.
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, issuer.pem()).unwrap();
        Pki { dir, issuer, ca }
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf certificate for `names` (DNS names, `*.wildcards` or IP
    /// addresses), written as `<stem>.pem` and `<stem>.key`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, stem.to_owned());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// A client configuration trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
        self.client_config_for(rustls::DEFAULT_VERSIONS, alpn)
    }

    /// Like [`Pki::client_config`], speaking only `versions` of TLS.
    pub fn client_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&str],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&self.ca).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

impl CertFiles {
    /// The certificate, as a server presents it.
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.cert).unwrap()
    }
}

impl Pki {
    /// A server configuration presenting `files`, offering `alpn`.
    pub fn server_config(&self, files: &CertFiles, alpn: &[&str]) -> Arc<rustls::ServerConfig> {
        let chain = vec![files.der()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&files.key).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS connection to `addr` naming `sni`.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// What a TLS client saw of the handshake.
#[derive(Debug)]
pub struct Session {
    /// The server's leaf certificate.
    pub cert: CertificateDer<'static>,
    /// The protocol agreed by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// Whether an earlier session was resumed.
    pub resumed: bool,
    /// TLS version agreed.
    pub version: Option<rustls::ProtocolVersion>,
}

/// `GET path` over HTTPS (HTTP/1.1) on a new connection, with what the handshake showed.
pub async fn https_get(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
    path: &str,
) -> std::io::Result<(crate::Reply, Session)> {
    let stream = tls_connect(addr, config, sni).await?;
    let session = session_of(stream.get_ref().1);
    let request = http::Request::get(path)
        .header("host", sni)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid request");
    let reply = crate::http_request_on(stream, request).await?;
    Ok((reply, session))
}

/// What the client side of `connection` saw of its handshake.
pub fn session_of(connection: &rustls::ClientConnection) -> Session {
    Session {
        cert: connection
            .peer_certificates()
            .expect("a server certificate")[0]
            .clone(),
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        resumed: connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        version: connection.protocol_version(),
    }
}

/// A client configuration that accepts any certificate, for load
/// generators in front of a bench's self-signed one (never for a test that
/// checks what the server presents).
pub fn any_certificate(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&str],
) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCertificate))
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verify_tls13_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
