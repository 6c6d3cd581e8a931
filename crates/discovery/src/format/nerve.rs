//! Airbnb Nerve (SmartStack): JSON `{"host","port","name","weight","labels"}`;
//! the zone is `labels.zone`, else `labels.az`.
//! With path encoding, Nerve also puts the JSON in the child's name as
//! `base64_<len>_<urlsafe base64>_<sequence>`; the data wins when present.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use zkgate_config::{AdminState, ServerConfig};

#[derive(Deserialize)]
struct Registration {
    host: String,
    port: i64,
    weight: Option<i64>,
    labels: Option<serde_json::Map<String, serde_json::Value>>,
}

pub fn decode(name: &str, data: &[u8]) -> Result<ServerConfig, String> {
    let from_name;
    let json = if data.iter().all(u8::is_ascii_whitespace) {
        from_name = decode_name(name)?;
        &from_name[..]
    } else {
        data
    };
    let registration: Registration = super::json(json)?;
    let labels = registration.labels.as_ref();
    let zone = labels.and_then(|l| l.get("zone").or_else(|| l.get("az")));
    Ok(ServerConfig {
        address: super::address(&registration.host, registration.port)?,
        weight: super::weight(registration.weight)?,
        state: AdminState::Ready,
        zone: super::zone(zone)?,
    })
}

/// `base64_<len>_<data>_<seq>` → the JSON bytes. `<len>` is the length of
/// the URL-safe base64 text, which may itself contain `_`.
fn decode_name(name: &str) -> Result<Vec<u8>, String> {
    let rest = name
        .strip_prefix("base64_")
        .ok_or("empty data and the name is not base64_<len>_<data>_<seq>")?;
    let (length, rest) = rest.split_once('_').ok_or("malformed base64_ name")?;
    let length: usize = length
        .parse()
        .map_err(|_| "malformed length in base64_ name")?;
    let encoded = rest
        .get(..length)
        .ok_or_else(|| format!("base64_ name says {length} characters but holds fewer"))?;
    let sequence = &rest[length..];
    if !(sequence.is_empty()
        || sequence.starts_with('_') && sequence[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("malformed sequence after base64_ data".into());
    }
    URL_SAFE
        .decode(encoded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded))
        .map_err(|err| format!("bad base64 in name: {err}"))
}
