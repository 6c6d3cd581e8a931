//! `http3:` of a frontend: QUIC binds beside its TLS ones.

use std::net::SocketAddr;

use super::{socket_addr, Bound};
use crate::error::ConfigError;
use crate::model::{Http3, Mode};
use crate::raw::RawHttp3;

/// Checks `http3:` of frontend `name` (at `path`): it needs `mode: http`
/// and `tls:` (QUIC always encrypts, with the frontend's certificates), and
/// at least one UDP address, each bound once.
pub(super) fn http3(
    path: &str,
    raw: &RawHttp3,
    mode: Mode,
    tls: bool,
    bound: &mut Bound,
    errors: &mut Vec<ConfigError>,
) -> Http3 {
    if mode == Mode::Tcp {
        errors.push(ConfigError::new(
            path,
            "HTTP/3 carries HTTP requests: remove it from a tcp frontend",
        ));
    } else if !tls {
        errors.push(ConfigError::new(
            path,
            "HTTP/3 needs the frontend's certificates: add `tls:` to this frontend",
        ));
    }
    if raw.bind.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.bind"),
            "no UDP address: add one, like [\"0.0.0.0:443\"]",
        ));
    }
    let mut binds: Vec<SocketAddr> = Vec::new();
    for (i, text) in raw.bind.iter().enumerate() {
        let at = format!("{path}.bind[{i}]");
        if let Some(address) = socket_addr(&at, text, errors) {
            if let Some(first) = bound.udp.get(&address) {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "UDP {address} is already bound by {first}: each address can be bound once"
                    ),
                ));
            } else {
                bound.udp.insert(address, at);
                binds.push(address);
            }
        }
    }
    Http3 { binds }
}
