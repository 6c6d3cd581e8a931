//! zkgate's own format: JSON `{"address","weight","state","zone","tags"}`, or
//! empty data with the address as the znode's name (so
//! `zkCli.sh create -e /services/web/10.0.0.5:8080 ""` registers a server).
//! Unknown fields are ignored so newer writers work with older readers.

use serde::{Deserialize, Serialize};
use zkgate_config::{AdminState, ServerAddress, ServerConfig};

#[derive(Deserialize, Serialize)]
struct Native {
    address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<serde_json::Value>,
}

pub fn decode(name: &str, data: &[u8]) -> Result<ServerConfig, String> {
    if data.iter().all(u8::is_ascii_whitespace) {
        let address = ServerAddress::parse(name)
            .map_err(|why| format!("empty data and the name is no address: {why}"))?;
        return Ok(ServerConfig {
            address,
            weight: zkgate_config::defaults::WEIGHT,
            state: AdminState::Ready,
            zone: None,
        });
    }
    let native: Native = super::json(data)?;
    let state = match native.state.as_deref() {
        None => AdminState::Ready,
        Some(text) => AdminState::parse(text)
            .ok_or_else(|| format!("unknown state `{text}` (ready, drain or maint)"))?,
    };
    Ok(ServerConfig {
        address: ServerAddress::parse(&native.address)?,
        weight: super::weight(native.weight)?,
        state,
        zone: super::zone(native.zone.as_ref())?,
    })
}

/// The JSON `zkgate server add|set` writes.
pub fn encode(server: &ServerConfig) -> Vec<u8> {
    let native = Native {
        address: server.address.to_string(),
        weight: Some(i64::from(server.weight)),
        state: Some(server.state.as_str().to_owned()),
        zone: server.zone.as_deref().map(Into::into),
    };
    serde_json::to_vec(&native).unwrap_or_default()
}

/// `data` (a native member) with its weight and/or state changed, every
/// other field (`zone`, `tags`, and any a newer writer added) kept as it
/// was; a member written as an empty node named after its address becomes
/// JSON.
pub fn patch(
    name: &str,
    data: &[u8],
    weight: Option<u32>,
    state: Option<AdminState>,
) -> Result<(ServerConfig, Vec<u8>), String> {
    let current = decode(name, data)?;
    let mut object = if data.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => return Err("not a JSON object".to_owned()),
        }
    };
    let updated = ServerConfig {
        address: current.address.clone(),
        weight: weight.unwrap_or(current.weight),
        state: state.unwrap_or(current.state),
        zone: current.zone.clone(),
    };
    object
        .entry("address")
        .or_insert_with(|| updated.address.to_string().into());
    object.insert("weight".to_owned(), updated.weight.into());
    object.insert("state".to_owned(), updated.state.as_str().into());
    let bytes = serde_json::to_vec(&object).map_err(|err| err.to_string())?;
    Ok((updated, bytes))
}
