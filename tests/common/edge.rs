//! HTTP/3 test set-up: a TLS frontend with `http3`, its certificates and
//! free ports, and an HTTP/3 client for it.

use std::net::SocketAddr;

use zkgate_testkit::h3_client::H3Client;
use zkgate_testkit::pki::{CertFiles, Pki};
use zkgate_testkit::{free_port, free_udp_port};

pub fn pair(files: &CertFiles) -> String {
    format!(
        "{{ cert: \"{}\", key: \"{}\" }}",
        files.cert.display(),
        files.key.display()
    )
}

pub fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A TLS frontend `web` on TCP `tcp` and UDP `udp` presenting
/// `certificates`, with `extra` lines under it, in front of `backends`.
pub fn h3_config(
    tcp: u16,
    udp: u16,
    certificates: &[&CertFiles],
    extra: &str,
    backends: &str,
) -> String {
    let list: Vec<String> = certificates.iter().map(|c| pair(c)).collect();
    format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:{tcp}\"]\n    tls: {{ certificates: [{}] }}\n    http3: {{ bind: [\"127.0.0.1:{udp}\"] }}\n{extra}backends:\n{backends}",
        list.join(", ")
    )
}

/// A TLS frontend `web` with HTTP/3, on free TCP and UDP ports, presenting
/// a certificate for `edge.test` from a CA of its own.
pub struct Edge {
    pub pki: Pki,
    pub cert: CertFiles,
    pub tcp: u16,
    pub udp: u16,
}

impl Edge {
    pub fn new() -> Self {
        let pki = Pki::new("edge CA");
        let cert = pki.issue("edge", &["edge.test"]);
        Edge {
            pki,
            cert,
            tcp: free_port(),
            udp: free_udp_port(),
        }
    }

    /// Its configuration, with `extra` lines under the frontend.
    pub fn config(&self, extra: &str, backends: &str) -> String {
        h3_config(self.tcp, self.udp, &[&self.cert], extra, backends)
    }

    /// An HTTP/3 connection to it, naming `edge.test`.
    pub async fn connect(&self) -> Result<H3Client, String> {
        H3Client::connect(addr(self.udp), "edge.test", &self.pki).await
    }
}

pub fn app_backend(server: SocketAddr) -> String {
    format!("  app:\n    servers: [{{ address: \"{server}\" }}]\n")
}
