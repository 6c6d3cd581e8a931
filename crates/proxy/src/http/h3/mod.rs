//! HTTP/3 from clients: QUIC (RFC 9000) on UDP with a TLS frontend's
//! certificates, and HTTP/3 (RFC 9114) on it, by quinn and h3. Each request
//! goes through the same request core and full path as HTTP/1.1 and HTTP/2
//! requests, to the same backends.

mod connection;
mod listener;
mod request;
mod transport;

pub use listener::{bind_udp, QuicListener};
