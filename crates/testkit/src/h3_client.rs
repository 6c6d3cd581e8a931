//! A small HTTP/3 client (quinn + h3) for tests: one QUIC connection,
//! requests on it, answers read whole or watched as they stream.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use h3::client::SendRequest;
use http::{HeaderMap, Request, Response};
use quinn::crypto::rustls::QuicClientConfig;

use crate::pki::Pki;

/// One HTTP/3 connection.
pub struct H3Client {
    /// The QUIC connection, for its stats and address.
    pub connection: quinn::Connection,
    sender: SendRequest<h3_quinn::OpenStreams, Bytes>,
    endpoint: quinn::Endpoint,
    driver: tokio::task::JoinHandle<()>,
}

/// An answer read whole.
#[derive(Debug)]
pub struct H3Reply {
    /// Status and headers.
    pub head: Response<()>,
    /// The body.
    pub body: Bytes,
    /// Trailers, if any.
    pub trailers: Option<HeaderMap>,
}

impl H3Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header of the answer, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

impl H3Client {
    /// Connects to `address`, naming `sni`, trusting `pki`'s CA.
    pub async fn connect(address: SocketAddr, sni: &str, pki: &Pki) -> Result<Self, String> {
        let config = client_config(pki);
        let local: SocketAddr = if address.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        let mut endpoint = quinn::Endpoint::client(local).map_err(|e| e.to_string())?;
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(address, sni)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(connection.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(H3Client {
            connection,
            sender,
            endpoint,
            driver,
        })
    }

    /// Sends `request` with `body` and reads the answer whole.
    pub async fn send(&mut self, request: Request<()>, body: Bytes) -> Result<H3Reply, String> {
        let mut stream = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        // In pieces, as a client streams an upload. A server may answer
        // before taking it all (and stop the upload): the answer is still
        // read, as a browser would.
        let mut sent: Result<(), String> = Ok(());
        for chunk in body.chunks(64 * 1024) {
            sent = stream
                .send_data(Bytes::copy_from_slice(chunk))
                .await
                .map_err(|e| e.to_string());
            if sent.is_err() {
                break;
            }
        }
        if sent.is_ok() {
            sent = stream.finish().await.map_err(|e| e.to_string());
        }
        let head = match stream.recv_response().await {
            Ok(head) => head,
            Err(err) => return Err(sent.err().unwrap_or_else(|| err.to_string())),
        };
        let mut collected = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
            while chunk.has_remaining() {
                let piece = chunk.chunk();
                collected.extend_from_slice(piece);
                let n = piece.len();
                chunk.advance(n);
            }
        }
        let trailers = stream.recv_trailers().await.map_err(|e| e.to_string())?;
        Ok(H3Reply {
            head,
            body: collected.into(),
            trailers,
        })
    }

    /// `GET path` on `authority`.
    pub async fn get(&mut self, authority: &str, path: &str) -> Result<H3Reply, String> {
        let request = Request::get(format!("https://{authority}{path}"))
            .body(())
            .unwrap();
        self.send(request, Bytes::new()).await
    }

    /// Moves the connection to a new local port, as a client whose address
    /// changed (NAT rebinding, another network) would.
    pub fn rebind(&self) -> std::io::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let address = socket.local_addr()?;
        self.endpoint.rebind(socket)?;
        Ok(address)
    }

    /// A handle to send more requests concurrently on the same connection.
    pub fn sender(&self) -> SendRequest<h3_quinn::OpenStreams, Bytes> {
        self.sender.clone()
    }
}

/// A QUIC client configuration trusting `pki`'s CA, offering `h3`.
pub fn client_config(pki: &Pki) -> quinn::ClientConfig {
    let tls = pki.client_config_for(&[&rustls::version::TLS13], &["h3"]);
    let crypto = QuicClientConfig::try_from(tls).expect("a TLS 1.3 client configuration");
    quinn::ClientConfig::new(Arc::new(crypto))
}

impl Drop for H3Client {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"");
        self.driver.abort();
    }
}
