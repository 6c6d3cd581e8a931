//! The TLS handshake with a client, bounded by `client_header` (a client
//! that trickles its handshake is a slowloris too) and counted by result.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tracing::debug;
use zkgate_routing::Frontend;
use zkgate_tls::tokio_rustls::rustls::HandshakeKind;
use zkgate_tls::tokio_rustls::TlsStream;

use crate::stream::Stream;

/// The client's connection, after a TLS handshake if the frontend
/// terminates TLS; `None` when the handshake failed or took too long.
pub async fn accept(stream: TcpStream, frontend: &Frontend, peer: SocketAddr) -> Option<Stream> {
    let Some(tls) = &frontend.tls else {
        return Some(Stream::Plain(stream));
    };
    // (The caller boxes this future: a handshake's state is large and
    // lasts a moment.)
    accept_tls(stream, tls, frontend, peer).await
}

async fn accept_tls(
    stream: TcpStream,
    tls: &zkgate_tls::ServerTls,
    frontend: &Frontend,
    peer: SocketAddr,
) -> Option<Stream> {
    let counters = frontend.metrics.tls.as_ref();
    // Pinned here, not moved into the timeout, so a client that failed or
    // timed out keeps its socket until it is counted: it sees the close only
    // once the counter says why.
    let handshake = tls.acceptor.accept(stream);
    tokio::pin!(handshake);
    match tokio::time::timeout(frontend.timeouts.client_header, &mut handshake).await {
        Ok(Ok(stream)) => {
            if let Some(counters) = counters {
                match stream.get_ref().1.handshake_kind() {
                    Some(HandshakeKind::Resumed) => counters.resumed.inc(),
                    _ => counters.ok.inc(),
                }
            }
            Some(Stream::Tls(Box::new(TlsStream::Server(stream))))
        }
        Ok(Err(err)) => {
            debug!(%peer, error = %err, "TLS handshake failed");
            if let Some(counters) = counters {
                counters.error.inc();
            }
            None
        }
        Err(_) => {
            debug!(%peer, "TLS handshake not finished within client_header");
            if let Some(counters) = counters {
                counters.timeout.inc();
            }
            None
        }
    }
}
