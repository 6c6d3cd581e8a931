//! Apache Curator service discovery: `<base>/<service>/<id>` holding a
//! `ServiceInstance` JSON (`name`, `id`, `address`, `port`, `sslPort`,
//! `payload`, `registrationTimeUTC`, `serviceType`, `uriSpec`, `enabled`).
//! Unknown fields are ignored; `enabled: false` means maint.

use serde::Deserialize;
use zkgate_config::{AdminState, ServerConfig};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceInstance {
    address: Option<String>,
    port: Option<i64>,
    ssl_port: Option<i64>,
    enabled: Option<bool>,
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
    Ok(ServerConfig {
        address: super::address(&host, port)?,
        weight: zkgate_config::defaults::WEIGHT,
        state,
    })
}
