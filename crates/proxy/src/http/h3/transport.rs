//! QUIC's limits for HTTP/3 clients, as HTTP/2's are in `h2::conn`: how
//! many streams, how much unread data, how long an idle connection lives,
//! and how many connection attempts may wait.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};
use zkgate_tls::tokio_rustls::rustls;

/// Requests a client may have open at once on one connection (HTTP/2's too).
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Unidirectional streams: HTTP/3 needs three (control, QPACK encoder and
/// decoder); a few more for extensions the peer may open and zkgate ignores.
const MAX_UNI_STREAMS: u32 = 8;
/// Request body bytes a client may send on one stream before zkgate has
/// passed them on (flow control), and on the whole connection.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Decoded size of one request's headers (HTTP/2's limit too).
pub const MAX_FIELD_SECTION_SIZE: u64 = 64 * 1024;
/// Connection attempts not yet taken by the accept loop; beyond it, new
/// ones are refused. Each holds its first packet (at most ~1.5 KB).
const MAX_INCOMING: usize = 4096;
/// Bytes buffered for one waiting attempt, and for all of them.
const INCOMING_BUFFER: u64 = 64 * 1024;
const INCOMING_BUFFER_TOTAL: u64 = 8 * 1024 * 1024;
/// Handshakes from addresses not yet validated that may run at once on one
/// listener; beyond it, a client must first prove its address with a
/// Retry round trip (RFC 9000 §8.1.2), which costs zkgate no state.
pub const MAX_UNVALIDATED_HANDSHAKES: usize = 64;

/// The listener's QUIC configuration for a frontend's TLS and idle timeout.
pub fn server_config(
    tls: Arc<rustls::ServerConfig>,
    idle: Duration,
) -> Result<quinn::ServerConfig, String> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|err| err.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config
        .transport_config(Arc::new(transport(idle)))
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(INCOMING_BUFFER)
        .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL)
        // Clients that move (a phone from Wi-Fi to mobile data) keep their
        // connection: the path is validated before it carries much.
        .migration(true);
    Ok(config)
}

/// `current` with new TLS material and idle timeout, keeping its Retry
/// token key: a token issued before a reload stays valid after it.
pub fn refreshed(
    current: &quinn::ServerConfig,
    tls: Arc<rustls::ServerConfig>,
    idle: Duration,
) -> Result<quinn::ServerConfig, String> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|err| err.to_string())?;
    let mut config = current.clone();
    config.crypto = Arc::new(crypto);
    config.transport_config(Arc::new(transport(idle)));
    Ok(config)
}

fn transport(idle: Duration) -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        // A silent client is gone after `idle` (QUIC's own timer, which
        // any packet resets; the connection's task closes one that sends
        // no request for `client_idle`).
        .max_idle_timeout(IdleTimeout::try_from(idle).ok());
    transport
}
