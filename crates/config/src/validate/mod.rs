//! Raw schema → typed [`Config`]: defaults resolved, references checked,
//! every error recorded with its path (the caller adds positions).

use std::collections::HashMap;
use std::net::SocketAddr;

use http::HeaderName;

use crate::document::Document;
use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{RawFrontend, RawTimeouts};

mod backend;
mod compression;
mod health;
mod http3;
mod route;
mod tls;
mod zookeeper;

use backend::backend;
use zookeeper::zookeeper;

/// Checks the whole document; returns a `Config` only when no error was found.
pub fn validate(doc: &Document, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let before = errors.len();
    let admin_bind = doc.admin.bind.as_deref().unwrap_or(defaults::ADMIN_BIND);
    let admin = AdminConfig {
        bind: socket_addr("admin.bind", admin_bind, errors)
            .unwrap_or(([127, 0, 0, 1], 9900).into()),
    };
    let zookeeper = doc.zookeeper.as_ref().map(|raw| zookeeper(raw, errors));
    let zone = doc
        .zone
        .as_deref()
        .and_then(|zone| match crate::model::zone_name(zone) {
            Ok(zone) => Some(zone),
            Err(why) => {
                errors.push(ConfigError::new("zone", why));
                None
            }
        });
    let state_dir = doc.state_dir.as_deref().and_then(|dir| {
        if dir.is_empty() || !dir.starts_with('/') {
            errors.push(ConfigError::new(
                "state_dir",
                format!("`{dir}` is not an absolute path"),
            ));
            return None;
        }
        Some(std::path::PathBuf::from(dir))
    });
    let default_timeouts = timeouts(
        "defaults.timeouts",
        &doc.defaults.timeouts,
        &builtin_timeouts(),
        errors,
    );
    let default_retries = doc.defaults.retries.unwrap_or(defaults::RETRIES);

    let backends: Vec<BackendConfig> = doc
        .backends
        .iter()
        .filter_map(|(name, raw)| backend(name, raw, &default_timeouts, default_retries, errors))
        .collect();
    if zone.is_none() {
        for backend in backends.iter().filter(|b| b.locality.is_some()) {
            errors.push(ConfigError::new(
                format!("backends.{}.locality", backend.name),
                "prefer_local needs this instance's zone: set the top-level `zone:`",
            ));
        }
    }
    if zookeeper.is_none() {
        for backend in backends.iter().filter(|b| b.discovery.is_some()) {
            errors.push(ConfigError::new(
                format!("backends.{}.zookeeper", backend.name),
                "this backend follows ZooKeeper but there is no top-level `zookeeper:` section with `connect:`",
            ));
        }
    }
    let modes: HashMap<&str, Mode> = backends.iter().map(|b| (b.name.as_str(), b.mode)).collect();
    let refs = References {
        modes,
        unreadable: &doc.unreadable,
    };

    let mut bound = Bound::default();
    bound.tcp.insert(admin.bind, "admin.bind".into());
    let frontends: Vec<FrontendConfig> = doc
        .frontends
        .iter()
        .filter_map(|(name, raw)| frontend(name, raw, &default_timeouts, &refs, &mut bound, errors))
        .collect();

    if errors.len() > before {
        return None;
    }
    let access_log = doc.access_log.as_ref().map(|raw| AccessLogConfig {
        format: match raw.format.as_deref() {
            None | Some("json") => AccessLogFormat::Json,
            Some("text") => AccessLogFormat::Text,
            Some(other) => {
                errors.push(ConfigError::new(
                    "access_log.format",
                    format!("unknown format `{other}`, expected json or text"),
                ));
                AccessLogFormat::Json
            }
        },
        path: raw.path.clone().unwrap_or_else(|| "stdout".to_owned()),
    });
    if errors.len() > before {
        return None;
    }
    if errors.len() > before {
        return None;
    }
    let mut config = Config {
        admin,
        access_log,
        state_dir,
        zone,
        zookeeper,
        frontends,
        backends,
    };
    config.frontends.sort_by(|a, b| a.name.cmp(&b.name));
    config.backends.sort_by(|a, b| a.name.cmp(&b.name));
    Some(config)
}

struct References<'a> {
    modes: HashMap<&'a str, Mode>,
    unreadable: &'a [String],
}

impl References<'_> {
    /// Checks that `backend` exists and speaks the frontend's mode.
    fn check(&self, path: String, backend: &str, mode: Mode, errors: &mut Vec<ConfigError>) {
        match self.modes.get(backend) {
            Some(found) if *found == mode => {}
            Some(found) => errors.push(ConfigError::new(
                path,
                format!(
                    "backend `{backend}` has mode {}, but this frontend has mode {}: set `mode: {}` on the backend",
                    found.as_str(),
                    mode.as_str(),
                    mode.as_str()
                ),
            )),
            None if self.unreadable.iter().any(|n| n == backend) => {}
            None => {
                let mut known: Vec<&str> = self.modes.keys().copied().collect();
                known.sort_unstable();
                let hint = if known.is_empty() {
                    "no backends are defined".to_owned()
                } else {
                    format!("defined backends: {}", known.join(", "))
                };
                errors.push(ConfigError::new(path, format!("backend `{backend}` is not defined ({hint})")));
            }
        }
    }
}

fn builtin_timeouts() -> Timeouts {
    Timeouts {
        connect: defaults::CONNECT,
        client_header: defaults::CLIENT_HEADER,
        client_idle: defaults::CLIENT_IDLE,
        server: defaults::SERVER,
        tunnel: defaults::TUNNEL,
    }
}

pub(super) fn timeouts(
    path: &str,
    raw: &RawTimeouts,
    inherited: &Timeouts,
    errors: &mut Vec<ConfigError>,
) -> Timeouts {
    let mut pick = |name: &str, own: Option<crate::duration::Duration>, fallback| match own {
        Some(d) if d.0.is_zero() => {
            errors.push(ConfigError::new(
                format!("{path}.{name}"),
                "a timeout of 0 would fail every connection: give a positive duration like 5s",
            ));
            fallback
        }
        Some(d) => d.0,
        None => fallback,
    };
    Timeouts {
        connect: pick("connect", raw.connect, inherited.connect),
        client_header: pick("client_header", raw.client_header, inherited.client_header),
        client_idle: pick("client_idle", raw.client_idle, inherited.client_idle),
        server: pick("server", raw.server, inherited.server),
        tunnel: pick("tunnel", raw.tunnel, inherited.tunnel),
    }
}

/// The addresses bound so far, with the field that binds each: TCP
/// (frontends' `bind`, the admin listener) and UDP (`http3.bind`) apart.
#[derive(Default)]
pub(super) struct Bound {
    pub tcp: HashMap<SocketAddr, String>,
    pub udp: HashMap<SocketAddr, String>,
}

pub(super) fn socket_addr(
    path: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<SocketAddr> {
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.push(ConfigError::new(
                path,
                format!("`{text}` is not a listen address: write IP:PORT, like 0.0.0.0:8080 or [::]:8080"),
            ));
            None
        }
    }
}

pub(super) fn mode(path: String, raw: Option<&str>, errors: &mut Vec<ConfigError>) -> Mode {
    match raw {
        None | Some("http") => Mode::Http,
        Some("tcp") => Mode::Tcp,
        Some(other) => {
            errors.push(ConfigError::new(
                path,
                format!("unknown mode `{other}`, expected http or tcp"),
            ));
            Mode::Http
        }
    }
}

fn frontend(
    name: &str,
    raw: &RawFrontend,
    inherited: &Timeouts,
    refs: &References,
    bound: &mut Bound,
    errors: &mut Vec<ConfigError>,
) -> Option<FrontendConfig> {
    let at = |field: &str| format!("frontends.{name}.{field}");
    let mode = mode(at("mode"), raw.mode.as_deref(), errors);

    if raw.bind.is_empty() {
        errors.push(ConfigError::new(
            at("bind"),
            "no listen address: add one, like [\"0.0.0.0:8080\"]",
        ));
    }
    let mut binds = Vec::new();
    for (i, text) in raw.bind.iter().enumerate() {
        let path = format!("frontends.{name}.bind[{i}]");
        if let Some(addr) = socket_addr(&path, text, errors) {
            if let Some(first) = bound.tcp.get(&addr) {
                errors.push(ConfigError::new(
                    path,
                    format!("{addr} is already bound by {first}: each address can be bound once"),
                ));
            } else {
                bound.tcp.insert(addr, path);
                binds.push(addr);
            }
        }
    }

    let tls = raw
        .tls
        .as_ref()
        .map(|raw| tls::frontend_tls(&at("tls"), raw, mode, errors));
    let http3 = raw.http3.as_ref().map(|raw| {
        let tls = tls.is_some();
        http3::http3(&at("http3"), raw, mode, tls, bound, errors)
    });
    let access = raw
        .access
        .as_ref()
        .map(|raw| access_list(&at("access"), raw, errors));
    let rate_limit = raw.rate_limit.as_ref().and_then(|limit| {
        if limit.requests_per_second == 0 && limit.burst != 0 {
            errors.push(ConfigError::new(
                at("rate_limit"),
                "a burst needs a rate: set requests_per_second",
            ));
        }
        (limit.requests_per_second > 0).then_some(RateLimit {
            requests_per_second: limit.requests_per_second,
            burst: limit.burst,
        })
    });

    let mut routes = Vec::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let path = format!("frontends.{name}.routes[{i}]");
        if mode == Mode::Tcp {
            errors.push(ConfigError::new(
                path.clone(),
                "routes need `mode: http`; a tcp frontend sends everything to its default_backend",
            ));
        }
        let forwarded = raw.forwarded_headers.unwrap_or(mode == Mode::Http);
        if let Some(route) = route::route_config(&path, route, forwarded, errors) {
            for (field, backend) in route.backends() {
                refs.check(format!("{path}.{field}"), backend, mode, errors);
            }
            routes.push(route);
        }
    }
    if let Some(backend) = &raw.default_backend {
        refs.check(at("default_backend"), backend, mode, errors);
    } else if mode == Mode::Tcp || raw.routes.is_empty() {
        errors.push(ConfigError::new(
            format!("frontends.{name}"),
            "no default_backend: add `default_backend: NAME` so unmatched traffic has somewhere to go",
        ));
    }
    if mode == Mode::Tcp && raw.forwarded_headers == Some(true) {
        errors.push(ConfigError::new(
            at("forwarded_headers"),
            "forwarded headers are HTTP headers: remove this from a tcp frontend",
        ));
    }

    let compression = raw.compression.as_ref().and_then(|raw| {
        if mode == Mode::Tcp {
            errors.push(ConfigError::new(
                at("compression"),
                "compression applies to HTTP answers: remove it from a tcp frontend",
            ));
        }
        compression::compression(&at("compression"), raw, errors)
    });
    let request_id = raw.request_id.as_deref().and_then(|name| {
        let header = HeaderName::from_bytes(name.as_bytes()).ok();
        if mode == Mode::Tcp || header.is_none() {
            errors.push(ConfigError::new(
                at("request_id"),
                format!("`{name}` cannot carry request ids: give an HTTP header name, like x-request-id, on an http frontend"),
            ));
        }
        header
    });
    Some(FrontendConfig {
        name: name.to_owned(),
        binds,
        mode,
        max_connections: raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
        routes,
        default_backend: raw.default_backend.clone(),
        forwarded_headers: raw.forwarded_headers.unwrap_or(mode == Mode::Http),
        access,
        accept_proxy: raw.accept_proxy,
        max_connections_per_client: raw.max_connections_per_client,
        rate_limit,
        timeouts: timeouts(&at("timeouts"), &raw.timeouts, inherited, errors),
        tls,
        http3,
        request_id,
        compression,
    })
}

/// Parses CIDR lists; a bare address is a single-address network.
pub(super) fn access_list(
    path: &str,
    raw: &crate::raw::RawAccess,
    errors: &mut Vec<ConfigError>,
) -> AccessList {
    let mut networks = |field: &str, list: &[String]| -> Vec<ipnet::IpNet> {
        list.iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let parsed = text
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                match parsed {
                    Ok(net) => Some(net.trunc()),
                    Err(_) => {
                        errors.push(ConfigError::new(
                            format!("{path}.{field}[{i}]"),
                            format!("`{text}` is not a network: write a CIDR like 10.0.0.0/8 or an address"),
                        ));
                        None
                    }
                }
            })
            .collect()
    };
    AccessList {
        allow: networks("allow", &raw.allow),
        deny: networks("deny", &raw.deny),
    }
}

/// A share written `50%` (or `50`): 0 to 100.
pub(crate) fn percent(value: &serde_yaml::Value) -> Option<u8> {
    let percent = match value {
        serde_yaml::Value::String(text) => text
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<u8>().ok()),
        serde_yaml::Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    };
    percent.filter(|p| *p <= 100)
}
