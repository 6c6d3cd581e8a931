//! The `zookeeper:` section and each backend's `zookeeper:` block.

use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{RawBackendZookeeper, RawFleet, RawProtect, RawZookeeper};

pub(super) fn zookeeper(raw: &RawZookeeper, errors: &mut Vec<ConfigError>) -> ZookeeperConfig {
    if raw.connect.trim().is_empty() {
        errors.push(ConfigError::new(
            "zookeeper.connect",
            "no servers: write host:port[,host:port…], like 127.0.0.1:2181",
        ));
    }
    for (i, server) in raw.connect.split(',').map(str::trim).enumerate() {
        if !server.is_empty() {
            if let Err(why) = ServerAddress::parse(server) {
                errors.push(ConfigError::new(
                    "zookeeper.connect",
                    format!("server {}: {why}", i + 1),
                ));
            }
        }
    }
    if let Some(chroot) = &raw.chroot {
        if let Err(why) = znode_path(chroot) {
            errors.push(ConfigError::new("zookeeper.chroot", why));
        }
    }
    if let Some(node) = &raw.config_node {
        if let Err(why) = znode_path(node) {
            errors.push(ConfigError::new("zookeeper.config_node", why));
        }
    }
    let auth = raw.auth.as_ref().map(|auth| ZookeeperAuth {
        user: auth.user.clone(),
        password_env: auth.password_env.clone(),
    });
    if let Some(Err(why)) = auth.as_ref().map(ZookeeperAuth::credentials) {
        errors.push(ConfigError::new("zookeeper.auth.password_env", why));
    }
    let session_timeout = raw
        .session_timeout
        .map_or(defaults::SESSION_TIMEOUT, |d| d.0);
    if session_timeout < std::time::Duration::from_secs(1) {
        errors.push(ConfigError::new(
            "zookeeper.session_timeout",
            "ZooKeeper does not grant sessions shorter than a few ticks: use 1s or more (10s is typical)",
        ));
    }
    ZookeeperConfig {
        connect: raw
            .connect
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(","),
        chroot: raw.chroot.clone().filter(|c| c != "/"),
        config_node: raw.config_node.clone(),
        fleet: raw.fleet.as_ref().and_then(|raw| fleet(raw, errors)),
        session_timeout,
        auth,
    }
}

/// Checks an absolute znode path: `/a/b`, no trailing or double slash.
fn znode_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` must be an absolute znode path, like /{path}"
        ));
    }
    if path.len() > 1 && (path.ends_with('/') || path.contains("//")) {
        return Err(format!(
            "`{path}` has an empty path segment: remove the extra `/`"
        ));
    }
    Ok(())
}

pub(super) fn discovery(
    path: &str,
    raw: &RawBackendZookeeper,
    errors: &mut Vec<ConfigError>,
) -> Option<DiscoveryConfig> {
    let before = errors.len();
    if let Err(why) = znode_path(&raw.path) {
        errors.push(ConfigError::new(format!("{path}.path"), why));
    } else if raw.path == "/" {
        errors.push(ConfigError::new(
            format!("{path}.path"),
            "the root znode cannot list servers: use a path like /services/web",
        ));
    }
    let format = match raw.format.as_deref() {
        None | Some("zkgate") => MemberFormat::Zkgate,
        Some("serverset") => MemberFormat::Serverset,
        Some("curator") => MemberFormat::Curator,
        Some("nerve") => MemberFormat::Nerve,
        Some(other) => {
            errors.push(ConfigError::new(
                format!("{path}.format"),
                format!("unknown format `{other}`, expected zkgate, serverset, curator or nerve"),
            ));
            MemberFormat::Zkgate
        }
    };
    if raw.endpoint.is_some() && format != MemberFormat::Serverset {
        errors.push(ConfigError::new(
            format!("{path}.endpoint"),
            "`endpoint` picks a serverset additional endpoint: it needs `format: serverset`",
        ));
    }
    let on_empty = match raw.on_empty.as_deref() {
        None | Some("keep_last") => OnEmpty::KeepLast,
        Some("apply") => OnEmpty::Apply,
        Some(other) => {
            errors.push(ConfigError::new(
                format!("{path}.on_empty"),
                format!("unknown value `{other}`, expected keep_last or apply"),
            ));
            OnEmpty::KeepLast
        }
    };
    let protect = raw
        .protect
        .as_ref()
        .and_then(|raw| protect(&format!("{path}.protect"), raw, errors));
    (errors.len() == before).then(|| DiscoveryConfig {
        path: raw.path.clone(),
        format,
        endpoint: raw.endpoint.clone(),
        on_empty,
        protect,
    })
}

/// `protect: { max_removed: 50%, window: 30s }`.
fn protect(path: &str, raw: &RawProtect, errors: &mut Vec<ConfigError>) -> Option<Protect> {
    let Some(percent) = super::percent(&raw.max_removed) else {
        errors.push(ConfigError::new(
            format!("{path}.max_removed"),
            "expected a share of the members like 50% (0% to 100%)",
        ));
        return None;
    };
    if raw.window.0.is_zero() {
        errors.push(ConfigError::new(
            format!("{path}.window"),
            "a window of 0 would hold nothing: give a duration like 30s",
        ));
        return None;
    }
    Some(Protect {
        max_removed_percent: percent,
        window: raw.window.0,
    })
}

/// `zookeeper.fleet: { path, name }`; the name defaults to the host name.
fn fleet(raw: &RawFleet, errors: &mut Vec<ConfigError>) -> Option<FleetConfig> {
    let before = errors.len();
    if let Err(why) = znode_path(&raw.path) {
        errors.push(ConfigError::new("zookeeper.fleet.path", why));
    }
    let name = match &raw.name {
        Some(name) => name.clone(),
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    let valid = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if !valid {
        errors.push(ConfigError::new(
            "zookeeper.fleet.name",
            format!("`{name}` is not a znode name: 1 to 128 visible characters, no `/`"),
        ));
    }
    (errors.len() == before).then(|| FleetConfig {
        path: raw.path.clone(),
        name,
    })
}
