use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CipherSuite, ClientConnection, ServerConnection};
use zkgate_testkit::pki::{CertFiles, Pki};

use super::*;

fn config(frontend_tls: &str, backend_tls: &str) -> Config {
    let text = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:1\"]\n    tls: {frontend_tls}\n    default_backend: app\nbackends:\n  app:\n    servers: [{{ address: \"127.0.0.1:2\" }}]\n    tls: {backend_tls}\n"
    );
    zkgate_config::parse(&text, "<test>").unwrap()
}

fn pair(files: &CertFiles) -> String {
    format!(
        "{{ cert: {}, key: {} }}",
        files.cert.display(),
        files.key.display()
    )
}

/// Runs a whole handshake in memory; returns the client's side of it.
fn handshake(
    server: &Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<ClientConnection, rustls::Error> {
    let mut client = ClientConnection::new(client, ServerName::try_from(sni.to_owned()).unwrap())?;
    let mut server = ServerConnection::new(Arc::clone(server))?;
    for _ in 0..10 {
        let mut buffer = Vec::new();
        client.write_tls(&mut buffer).unwrap();
        server.read_tls(&mut &buffer[..]).unwrap();
        server.process_new_packets()?;
        buffer.clear();
        server.write_tls(&mut buffer).unwrap();
        client.read_tls(&mut &buffer[..]).unwrap();
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    Ok(client)
}

/// The certificate the server chose.
fn leaf(client: ClientConnection) -> Vec<u8> {
    client.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn sni_picks_exact_then_wildcard_then_the_first_certificate() {
    let pki = Pki::new("test CA");
    let default = pki.issue("default", &["default.test"]);
    let exact = pki.issue("exact", &["api.example.com"]);
    let wildcard = pki.issue("wildcard", &["*.example.com"]);
    let cfg = config(
        &format!(
            "{{ certificates: [{}, {}, {}] }}",
            pair(&default),
            pair(&exact),
            pair(&wildcard)
        ),
        &format!("{{ ca: {} }}", pki.ca.display()),
    );
    let material = TlsMaterial::load(&cfg, "<test>").unwrap();
    let server = material.frontend("web").unwrap();
    assert_eq!(
        server.names,
        ["default.test", "api.example.com", "*.example.com"]
    );
    let config = server.acceptor.config();
    let client = pki.client_config(&["h2"]);
    let chosen = |sni: &str| handshake(config, Arc::clone(&client), sni).map(leaf);
    assert_eq!(chosen("api.example.com").unwrap(), exact.der().to_vec());
    assert_eq!(chosen("API.Example.com").unwrap(), exact.der().to_vec());
    assert_eq!(chosen("www.example.com").unwrap(), wildcard.der().to_vec());
    // One level only, as browsers match wildcards: the default is served,
    // and the client (rightly) refuses it.
    assert!(chosen("a.b.example.com").is_err());
    assert_eq!(chosen("default.test").unwrap(), default.der().to_vec());
    assert!(chosen("unknown.test").is_err());
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn unreadable_and_mismatched_files_are_reported_by_field() {
    let pki = Pki::new("test CA");
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let mismatched = format!("{{ cert: {}, key: {} }}", a.cert.display(), b.key.display());
    let cfg = config(
        &format!(
            "{{ certificates: [{mismatched}, {{ cert: /nonexistent.pem, key: {} }}] }}",
            a.cert.display()
        ),
        &format!("{{ ca: {} }}", a.key.display()),
    );
    let errors = TlsMaterial::load(&cfg, "<test>").err().unwrap();
    let text: Vec<String> = errors
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    assert_eq!(text.len(), 4, "{text:#?}");
    assert!(
        text[0].starts_with("frontends.web.tls.certificates[0]: the key in"),
        "{text:#?}"
    );
    assert!(
        text[0].contains("does not belong to the certificate"),
        "{text:#?}"
    );
    assert!(
        text[1].starts_with("frontends.web.tls.certificates[1].cert: cannot read /nonexistent.pem"),
        "{text:#?}"
    );
    assert!(
        text[2].starts_with("frontends.web.tls.certificates[1].key:")
            && text[2].contains("no `BEGIN PRIVATE KEY`"),
        "{text:#?}"
    );
    assert!(
        text[3].starts_with("backends.app.tls.ca:") && text[3].contains("no `BEGIN CERTIFICATE`"),
        "{text:#?}"
    );
}

#[test]
fn backends_verify_servers_against_their_ca() {
    let pki = Pki::new("servers CA");
    let other = Pki::new("another CA");
    let server_cert = pki.issue("server", &["internal.test", "127.0.0.1"]);
    let cfg = config(
        &format!("{{ certificates: [{}] }}", pair(&server_cert)),
        &format!("{{ ca: {}, sni: internal.test }}", pki.ca.display()),
    );
    let material = TlsMaterial::load(&cfg, "<test>").unwrap();
    let server = material.frontend("web").unwrap().acceptor.config();
    let client = material.backend("app").unwrap();
    assert_eq!(
        client.connector.config().alpn_protocols,
        [b"http/1.1".to_vec()]
    );
    let name = client.server_name([127, 0, 0, 1].into());
    assert_eq!(name, ServerName::try_from("internal.test").unwrap());
    assert!(handshake(
        server,
        Arc::clone(client.connector.config()),
        "internal.test"
    )
    .is_ok());

    // The same server, trusted through the wrong CA: refused.
    let wrong = config(
        &format!("{{ certificates: [{}] }}", pair(&server_cert)),
        &format!("{{ ca: {} }}", other.ca.display()),
    );
    let wrong = TlsMaterial::load(&wrong, "<test>").unwrap();
    let wrong_client = wrong.backend("app").unwrap();
    assert!(matches!(
        wrong_client.server_name([127, 0, 0, 1].into()),
        ServerName::IpAddress(_)
    ));
    let refused = handshake(
        server,
        Arc::clone(wrong_client.connector.config()),
        "internal.test",
    );
    assert!(
        matches!(refused, Err(rustls::Error::InvalidCertificate(_))),
        "{refused:?}"
    );

    // verify: false trusts it anyway.
    let trusting = config(
        &format!("{{ certificates: [{}] }}", pair(&server_cert)),
        "{ verify: false }",
    );
    let trusting = TlsMaterial::load(&trusting, "<test>").unwrap();
    let trusting = trusting.backend("app").unwrap();
    assert!(handshake(
        server,
        Arc::clone(trusting.connector.config()),
        "internal.test"
    )
    .is_ok());
}

#[test]
fn frontends_prefer_aes_128_whatever_order_the_client_lists() {
    let pki = Pki::new("test CA");
    let cert = pki.issue("site", &["site.test"]);
    let cfg = config(
        &format!("{{ certificates: [{}] }}", pair(&cert)),
        &format!("{{ ca: {} }}", pki.ca.display()),
    );
    let material = TlsMaterial::load(&cfg, "<test>").unwrap();
    let server = material.frontend("web").unwrap().acceptor.config();
    for (version, expected) in [
        (
            &rustls::version::TLS13,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            &rustls::version::TLS12,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        let client = pki.client_config_for(&[version], &[]);
        // The client lists AES-256 first, as rustls and OpenSSL do.
        let offered: Vec<_> = client
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|suite| suite.suite())
            .collect();
        assert!(
            offered.iter().position(|s| *s == expected) > Some(0),
            "{offered:?}"
        );
        let agreed = handshake(server, client, "site.test").unwrap();
        assert_eq!(
            agreed.negotiated_cipher_suite().map(|suite| suite.suite()),
            Some(expected)
        );
    }
    // A client offering only ChaCha20-Poly1305 still gets it.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.suite() == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let agreed = handshake(server, Arc::new(client), "site.test").unwrap();
    assert_eq!(
        agreed.negotiated_cipher_suite().map(|suite| suite.suite()),
        Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
}
