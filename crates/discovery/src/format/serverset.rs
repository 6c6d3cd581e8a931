//! Finagle/Aurora serversets: `member_<seq>` children holding
//! `{"serviceEndpoint":{"host","port"},"additionalEndpoints":{NAME:{…}},"status":"ALIVE","shard":N}`.
//! Only ALIVE members take traffic; other children are not members. The
//! zone is `metadata.zone`.

use std::collections::HashMap;

use serde::Deserialize;
use zkgate_config::{AdminState, ServerConfig};

use super::Child;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceInstance {
    service_endpoint: Option<Endpoint>,
    #[serde(default)]
    additional_endpoints: HashMap<String, Endpoint>,
    status: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Endpoint {
    host: String,
    port: i64,
}

pub fn decode(name: &str, data: &[u8], endpoint: Option<&str>) -> Result<Child, String> {
    if !name.starts_with("member_") {
        return Ok(Child::NotAMember);
    }
    let instance: ServiceInstance = super::json(data)?;
    let chosen = match endpoint {
        Some(wanted) => instance
            .additional_endpoints
            .get(wanted)
            .ok_or_else(|| format!("no additional endpoint `{wanted}`"))?,
        None => instance
            .service_endpoint
            .as_ref()
            .ok_or("no serviceEndpoint")?,
    };
    let state = match instance.status.as_deref() {
        Some("ALIVE") => AdminState::Ready,
        // STARTING, STOPPING, STOPPED, DEAD, WARNING: Finagle sends them nothing.
        Some(_) => AdminState::Maint,
        None => return Err("no status".into()),
    };
    let zone = super::zone(instance.metadata.as_ref().and_then(|m| m.get("zone")))?;
    Ok(Child::Member(ServerConfig {
        address: super::address(&chosen.host, chosen.port)?,
        weight: zkgate_config::defaults::WEIGHT,
        state,
        zone,
    }))
}
