//! Apache Curator service discovery: `<base>/<service>/<id>` holding a
//! `ServiceInstance` JSON (`name`, `id`, `address`, `port`, `sslPort`,
//! `payload`, `registrationTimeUTC`, `serviceType`, `uriSpec`, `enabled`).
//! Unknown fields are ignored; `enabled: false` means maint. A `payload`
//! that is a JSON object may say the instance's `zone` and `weight`.

use serde::Deserialize;
use zkgate_config::{AdminState, ServerConfig};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceInstance {
    address: Option<String>,
    port: Option<i64>,
    ssl_port: Option<i64>,
    enabled: Option<bool>,
    payload: Option<serde_json::Value>,
}

pub fn decode(data: &[u8]) -> Result<ServerConfig, String> {
    let instance: ServiceInstance = super::json(data)?;
    let host = instance.address.ok_or("no address")?;
    let port = instance
        .port
        .or(instance.ssl_port)
        .ok_or("neither port nor sslPort")?;
    let state = if instance.enabled == Some(false) {
        AdminState::Maint
    } else {
        AdminState::Ready
    };
    let payload = instance
        .payload
        .as_ref()
        .and_then(serde_json::Value::as_object);
    let weight = match payload.and_then(|p| p.get("weight")) {
        None | Some(serde_json::Value::Null) => None,
        Some(weight) => Some(
            weight
                .as_i64()
                .ok_or_else(|| format!("payload weight {weight} is not a whole number"))?,
        ),
    };
    Ok(ServerConfig {
        address: super::address(&host, port)?,
        weight: super::weight(weight)?,
        state,
        zone: super::zone(payload.and_then(|p| p.get("zone")))?,
    })
}
