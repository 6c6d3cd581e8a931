//! Decoders for the ways servers register themselves in ZooKeeper. Each turns
//! one child znode (its name and data) into a server, or explains why not.
//! They never panic and never trust sizes they read.

mod curator;
mod native;
mod nerve;
mod serverset;

use zkgate_config::{MemberFormat, ServerConfig};

pub use native::{encode as encode_native, patch as patch_native};

/// What a child znode means.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    /// A server.
    Member(ServerConfig),
    /// A child the format says to ignore (a serverset's non-`member_` node, say).
    NotAMember,
}

/// Decodes child `name` with `data` of a backend in `format`; `endpoint`
/// selects a serverset additional endpoint.
pub fn decode(
    format: MemberFormat,
    endpoint: Option<&str>,
    name: &str,
    data: &[u8],
) -> Result<Child, String> {
    match format {
        MemberFormat::Zkgate => native::decode(name, data).map(Child::Member),
        MemberFormat::Serverset => serverset::decode(name, data, endpoint),
        MemberFormat::Curator => curator::decode(data).map(Child::Member),
        MemberFormat::Nerve => nerve::decode(name, data).map(Child::Member),
    }
}

/// The first format that decodes this child into a member, for `server list`.
pub fn sniff(name: &str, data: &[u8]) -> Option<(MemberFormat, ServerConfig)> {
    [
        MemberFormat::Zkgate,
        MemberFormat::Serverset,
        MemberFormat::Curator,
        MemberFormat::Nerve,
    ]
    .into_iter()
    .find_map(|format| match decode(format, None, name, data) {
        Ok(Child::Member(member)) => Some((format, member)),
        _ => None,
    })
}

/// Parses JSON, describing a failure in one short phrase.
fn json<'a, T: serde::Deserialize<'a>>(data: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(data).map_err(|err| format!("invalid JSON: {err}"))
}

/// A weight from a registration, checked against zkgate's range.
fn weight(value: Option<i64>) -> Result<u32, String> {
    match value {
        None => Ok(zkgate_config::defaults::WEIGHT),
        Some(w) if (0..=i64::from(zkgate_config::defaults::MAX_WEIGHT)).contains(&w) => {
            Ok(w as u32)
        }
        Some(w) => Err(format!("weight {w} is out of range 0-256")),
    }
}

/// A zone read from a registration: a string of 1 to 64 visible
/// characters; anything else is refused with the member.
fn zone(value: Option<&serde_json::Value>) -> Result<Option<std::sync::Arc<str>>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(zone)) => zkgate_config::zone_name(zone).map(Some),
        Some(other) => Err(format!("zone {other} is not a zone name: it is no string")),
    }
}

/// `host` + `port` into an address, refusing port 0 and malformed hosts.
fn address(host: &str, port: i64) -> Result<zkgate_config::ServerAddress, String> {
    let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?;
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    zkgate_config::ServerAddress::parse(&text)
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
