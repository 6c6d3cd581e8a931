//! The PROXY protocol (HAProxy, versions 1 and 2): the real client address
//! an L4 balancer in front of zkgate passes at the start of a connection,
//! and the header zkgate sends to tcp servers with `send_proxy`.
//!
//! The parser never panics and never allocates more than one header's worth
//! of bytes (v1: 107, v2: 16 + 65,535), whatever it is fed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection from `source` to `destination`.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// A connection the proxy made itself (health checks: v2 LOCAL, v1 UNKNOWN).
    Local,
}

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl std::error::Error for Invalid {}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid PROXY protocol header: {}", self.0)
    }
}

/// Parses a header at the start of `buffer`: `Ok(Some((header, length)))`,
/// `Ok(None)` if more bytes are needed, `Err` if it can never be valid.
pub fn parse(buffer: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    if buffer.is_empty() {
        return Ok(None);
    }
    if buffer[0] == b'P' {
        return parse_v1(buffer);
    }
    if buffer[0] == b'\r' {
        return parse_v2(buffer);
    }
    Err(Invalid("no PROXY signature"))
}

fn parse_v1(buffer: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    let prefix = b"PROXY ";
    let n = buffer.len().min(prefix.len());
    if buffer[..n] != prefix[..n] {
        return Err(Invalid("no PROXY signature"));
    }
    let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        return if buffer.len() >= V1_MAX {
            Err(Invalid("v1 line too long"))
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err(Invalid("v1 line too long"));
    }
    let line = std::str::from_utf8(&buffer[prefix.len()..end])
        .map_err(|_| Invalid("v1 line is not text"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let ip = |text: &str| -> Result<IpAddr, Invalid> {
                let ip: IpAddr = text.parse().map_err(|_| Invalid("v1 address"))?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Invalid("v1 address does not match its family")),
                }
            };
            let port = |text: &str| -> Result<u16, Invalid> {
                if text.len() > 1 && text.starts_with('0') {
                    return Err(Invalid("v1 port with a leading zero"));
                }
                text.parse().map_err(|_| Invalid("v1 port"))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(source)?, port(source_port)?),
                destination: SocketAddr::new(ip(destination)?, port(destination_port)?),
            }
        }
        _ => return Err(Invalid("v1 fields")),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buffer: &[u8]) -> Result<Option<(Header, usize)>, Invalid> {
    let n = buffer.len().min(V2_SIGNATURE.len());
    if buffer[..n] != V2_SIGNATURE[..n] {
        return Err(Invalid("no PROXY signature"));
    }
    if buffer.len() < 16 {
        return Ok(None);
    }
    let version_command = buffer[12];
    if version_command >> 4 != 2 {
        return Err(Invalid("v2 version"));
    }
    let length = usize::from(u16::from_be_bytes([buffer[14], buffer[15]]));
    let total = 16 + length;
    if buffer.len() < total {
        return Ok(None);
    }
    let body = &buffer[16..total];
    let header = match version_command & 0x0f {
        0 => Header::Local,
        1 => match buffer[13] {
            // TCP over IPv4.
            0x11 => {
                let a = body.get(..12).ok_or(Invalid("v2 IPv4 addresses"))?;
                let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
                Header::Proxied {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([a[8], a[9]])),
                    destination: SocketAddr::new(ip(4), u16::from_be_bytes([a[10], a[11]])),
                }
            }
            // TCP over IPv6.
            0x21 => {
                let a = body.get(..36).ok_or(Invalid("v2 IPv6 addresses"))?;
                let ip = |i: usize| {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&a[i..i + 16]);
                    IpAddr::V6(Ipv6Addr::from(octets))
                };
                Header::Proxied {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([a[32], a[33]])),
                    destination: SocketAddr::new(ip(16), u16::from_be_bytes([a[34], a[35]])),
                }
            }
            // UDP, unix sockets, unspecified: nothing zkgate can use.
            _ => Header::Local,
        },
        _ => return Err(Invalid("v2 command")),
    };
    // TLVs after the addresses are skipped.
    Ok(Some((header, total)))
}

/// Reads a header from the start of `stream`, consuming exactly its bytes.
pub async fn read(stream: &mut TcpStream, timeout: Duration) -> Result<Header, Invalid> {
    let work = async {
        let mut peeked = vec![0u8; 16];
        loop {
            let n = stream
                .peek(&mut peeked)
                .await
                .map_err(|_| Invalid("connection failed"))?;
            if n == 0 {
                return Err(Invalid("connection closed"));
            }
            match parse(&peeked[..n])? {
                Some((header, length)) => {
                    let mut consumed = vec![0u8; length];
                    stream
                        .read_exact(&mut consumed)
                        .await
                        .map_err(|_| Invalid("connection failed"))?;
                    return Ok(header);
                }
                None if n == peeked.len() => {
                    // The header is longer than what was looked at: look further.
                    let want = match peeked[0] {
                        b'P' => V1_MAX,
                        _ => 16 + usize::from(u16::from_be_bytes([peeked[14], peeked[15]])),
                    };
                    peeked.resize(want.max(peeked.len() + 1), 0);
                }
                // Part of the header is still on its way.
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| Invalid("header not received in time"))?
}

/// The header zkgate sends a server for a client connection.
pub fn encode(version: u8, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    // Mixed families (an IPv4 client on an IPv6 listener) are sent as IPv6.
    let (source, destination) = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (source, destination)
        }
        _ => (to_v6(source), to_v6(destination)),
    };
    if version == 1 {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        return format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes();
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            for ip in [s, d] {
                let v6 = match ip {
                    IpAddr::V6(v6) => v6,
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                };
                out.extend_from_slice(&v6.octets());
            }
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

fn to_v6(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests;
