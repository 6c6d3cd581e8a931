//! Connecting to a server: TCP, then TLS when its backend speaks TLS, the
//! whole of it within the backend's `connect` timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zkgate_tls::tokio_rustls::TlsStream;
use zkgate_tls::ClientTls;

use crate::stream::Stream;

/// Why no connection to a server could be made.
#[derive(Debug)]
pub enum ConnectError {
    /// `connect` timed out (TCP or TLS handshake).
    Timeout,
    /// Refused, unreachable, reset, …
    Io(std::io::Error),
    /// The TLS handshake failed: certificate not trusted, name mismatch, …
    Tls(std::io::Error),
    /// The HTTP handshake failed.
    Http(crate::http::BoxError),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timed out"),
            ConnectError::Io(err) => write!(f, "{err}"),
            ConnectError::Tls(err) => write!(f, "TLS handshake failed: {err}"),
            ConnectError::Http(err) => write!(f, "{err}"),
        }
    }
}

/// A connection to `server` within `timeout`; `preamble` (a PROXY protocol
/// header) is written first, before any TLS.
pub async fn dial(
    server: SocketAddr,
    preamble: Option<&[u8]>,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Stream, ConnectError> {
    let connect = async {
        let mut tcp = TcpStream::connect(server).await.map_err(ConnectError::Io)?;
        tcp.set_nodelay(true).ok();
        if let Some(preamble) = preamble {
            tcp.write_all(preamble).await.map_err(ConnectError::Io)?;
        }
        let Some(tls) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let stream = tls
            .connector
            .connect(tls.server_name(server.ip()), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(Stream::Tls(Box::new(TlsStream::Client(stream))))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}
