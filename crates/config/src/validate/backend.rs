//! Backends: algorithm, servers, timeouts, TLS, health checks, discovery.

use http::HeaderName;

use super::health::health_check;
use super::zookeeper::discovery;
use super::{mode, timeouts};
use crate::error::ConfigError;
use crate::model::*;
use crate::raw::RawBackend;

pub(super) fn backend(
    name: &str,
    raw: &RawBackend,
    inherited: &Timeouts,
    default_retries: u32,
    errors: &mut Vec<ConfigError>,
) -> Option<BackendConfig> {
    let at = |field: &str| format!("backends.{name}.{field}");
    let mode = mode(at("mode"), raw.mode.as_deref(), errors);
    let balance = balance(&at("balance"), raw.balance.as_deref(), mode, errors);
    let hash_method = hash_method(&at("hash_method"), raw, &balance, errors);
    let tls = raw
        .tls
        .as_ref()
        .map(|raw| super::tls::backend_tls(&at("tls"), raw, errors));
    // In the order of the fields in the documentation, so that errors
    // without a place in the file come in that order too.
    let send_proxy = send_proxy(&at("send_proxy"), raw, mode, errors);
    let outlier_detection = outlier_detection(name, raw, errors);
    if raw.panic_threshold > 100 {
        errors.push(ConfigError::new(
            at("panic_threshold"),
            "a percentage: use 0 to 100",
        ));
    }
    let sticky_cookie = sticky_cookie(name, raw, mode, errors);
    let protocol = protocol(&at("protocol"), raw, mode, errors);
    let servers = servers(name, raw, errors);
    let health_check = raw
        .health_check
        .as_ref()
        .and_then(|hc| health_check(&at("health_check"), hc, errors));
    let discovery = raw
        .zookeeper
        .as_ref()
        .and_then(|zk| discovery(&at("zookeeper"), zk, errors));
    let locality = locality(&at("locality"), raw, errors);
    Some(BackendConfig {
        name: name.to_owned(),
        mode,
        balance,
        hash_method,
        servers,
        discovery,
        health_check,
        outlier_detection,
        panic_threshold: raw.panic_threshold,
        slow_start: raw.slow_start.map_or(std::time::Duration::ZERO, |d| d.0),
        sticky_cookie,
        max_connections_per_server: raw.max_connections_per_server,
        protocol,
        send_proxy,
        retries: raw.retries.unwrap_or(default_retries),
        timeouts: timeouts(&at("timeouts"), &raw.timeouts, inherited, errors),
        tls,
        locality,
    })
}

/// `locality: { mode: prefer_local, min_local_healthy: 70% }`.
fn locality(path: &str, raw: &RawBackend, errors: &mut Vec<ConfigError>) -> Option<Locality> {
    let raw = raw.locality.as_ref()?;
    match raw.mode.as_str() {
        "off" => return None,
        "prefer_local" => {}
        other => {
            errors.push(ConfigError::new(
                format!("{path}.mode"),
                format!("unknown mode `{other}`, expected off or prefer_local"),
            ));
            return None;
        }
    }
    let percent = match &raw.min_local_healthy {
        None => Some(defaults::MIN_LOCAL_HEALTHY),
        Some(value) => super::percent(value),
    };
    let Some(min_local_healthy_percent) = percent else {
        errors.push(ConfigError::new(
            format!("{path}.min_local_healthy"),
            "expected a share of the zone's weight like 70% (0% to 100%)",
        ));
        return None;
    };
    Some(Locality {
        min_local_healthy_percent,
    })
}

fn hash_method(
    path: &str,
    raw: &RawBackend,
    balance: &Balance,
    errors: &mut Vec<ConfigError>,
) -> HashMethod {
    let method = match raw.hash_method.as_deref() {
        None | Some("maglev") => HashMethod::Maglev,
        Some("ring") => HashMethod::Ring,
        Some(other) => {
            errors.push(ConfigError::new(
                path,
                format!("unknown hash method `{other}`, expected maglev or ring"),
            ));
            HashMethod::Maglev
        }
    };
    if raw.hash_method.is_some() && !balance.hashes() {
        errors.push(ConfigError::new(
            path,
            "hash_method applies to the hashing algorithms (source, uri, header(NAME), cookie(NAME)) only",
        ));
    }
    method
}

/// The PROXY protocol version a tcp backend's servers get, if any.
fn send_proxy(
    path: &str,
    raw: &RawBackend,
    mode: Mode,
    errors: &mut Vec<ConfigError>,
) -> Option<u8> {
    match raw.send_proxy.as_deref() {
        None | Some("none") => None,
        Some(version @ ("v1" | "v2")) if mode == Mode::Tcp => {
            Some(if version == "v1" { 1 } else { 2 })
        }
        Some("v1" | "v2") => {
            errors.push(ConfigError::new(
                path,
                "send_proxy applies to tcp backends; http servers get X-Forwarded-For",
            ));
            None
        }
        Some(other) => {
            errors.push(ConfigError::new(
                path,
                format!("unknown value `{other}`, expected none, v1 or v2"),
            ));
            None
        }
    }
}

fn outlier_detection(
    name: &str,
    raw: &RawBackend,
    errors: &mut Vec<ConfigError>,
) -> Option<OutlierConfig> {
    let at = |field: &str| format!("backends.{name}.{field}");
    raw.outlier_detection.as_ref().map(|raw| {
        let outlier = OutlierConfig {
            consecutive_failures: raw.consecutive_failures.unwrap_or(5),
            ejection: raw
                .ejection
                .map_or(std::time::Duration::from_secs(30), |d| d.0),
            max_ejected_percent: raw.max_ejected_percent.unwrap_or(50),
        };
        if outlier.consecutive_failures == 0 {
            errors.push(ConfigError::new(
                at("outlier_detection.consecutive_failures"),
                "use 1 or more",
            ));
        }
        if outlier.ejection.is_zero() {
            errors.push(ConfigError::new(
                at("outlier_detection.ejection"),
                "an ejection must last: use a duration like 30s",
            ));
        }
        if outlier.max_ejected_percent > 100 {
            errors.push(ConfigError::new(
                at("outlier_detection.max_ejected_percent"),
                "a percentage: use 0 to 100",
            ));
        }
        outlier
    })
}

fn sticky_cookie(
    name: &str,
    raw: &RawBackend,
    mode: Mode,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    let at = |field: &str| format!("backends.{name}.{field}");
    let sticky_cookie = raw.sticky.as_ref().map(|sticky| sticky.cookie.clone());
    if let Some(cookie) = &sticky_cookie {
        if mode == Mode::Tcp {
            errors.push(ConfigError::new(
                at("sticky"),
                "sticky cookies need HTTP: remove `sticky` from a tcp backend",
            ));
        } else if cookie.is_empty()
            || !cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            errors.push(ConfigError::new(
                at("sticky.cookie"),
                format!("`{cookie}` is not a cookie name: use letters, digits, `_`, `-`, `.`"),
            ));
        }
    }
    sticky_cookie
}

fn protocol(path: &str, raw: &RawBackend, mode: Mode, errors: &mut Vec<ConfigError>) -> Protocol {
    match raw.protocol.as_deref() {
        None | Some("http1") => Protocol::Http1,
        Some("http2") if mode == Mode::Tcp => {
            errors.push(ConfigError::new(
                path,
                "a tcp backend forwards bytes: `protocol` applies to http backends",
            ));
            Protocol::Http1
        }
        Some("http2") => Protocol::Http2,
        Some(other) => {
            errors.push(ConfigError::new(
                path,
                format!("unknown protocol `{other}`, expected http1 or http2"),
            ));
            Protocol::Http1
        }
    }
}

/// A backend's static servers; those with errors are left out.
fn servers(name: &str, raw: &RawBackend, errors: &mut Vec<ConfigError>) -> Vec<ServerConfig> {
    let mut servers = Vec::new();
    for (i, server) in raw.servers.iter().enumerate() {
        let path = format!("backends.{name}.servers[{i}]");
        let address = match ServerAddress::parse(&server.address) {
            Ok(address) => address,
            Err(why) => {
                errors.push(ConfigError::new(format!("{path}.address"), why));
                continue;
            }
        };
        let weight = server.weight.unwrap_or(defaults::WEIGHT);
        if weight > defaults::MAX_WEIGHT {
            errors.push(ConfigError::new(
                format!("{path}.weight"),
                format!(
                    "weight {weight} is out of range: use 0 to {}",
                    defaults::MAX_WEIGHT
                ),
            ));
        }
        let state = match server.state.as_deref() {
            None => AdminState::Ready,
            Some(text) => AdminState::parse(text).unwrap_or_else(|| {
                errors.push(ConfigError::new(
                    format!("{path}.state"),
                    format!("unknown state `{text}`, expected ready, drain or maint"),
                ));
                AdminState::Ready
            }),
        };
        if servers.iter().any(|s: &ServerConfig| s.address == address) {
            errors.push(ConfigError::new(
                format!("{path}.address"),
                format!("{address} is listed twice in this backend: raise its weight instead"),
            ));
            continue;
        }
        let zone = server
            .zone
            .as_deref()
            .and_then(|zone| match zone_name(zone) {
                Ok(zone) => Some(zone),
                Err(why) => {
                    errors.push(ConfigError::new(format!("{path}.zone"), why));
                    None
                }
            });
        servers.push(ServerConfig {
            address,
            weight,
            state,
            zone,
        });
    }
    servers
}

fn balance(path: &str, raw: Option<&str>, mode: Mode, errors: &mut Vec<ConfigError>) -> Balance {
    let Some(text) = raw else {
        return Balance::RoundRobin;
    };
    let argument = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
            .filter(|name| !name.is_empty())
    };
    let balance = match text {
        "roundrobin" => Balance::RoundRobin,
        "leastconn" => Balance::LeastConn,
        "random" => Balance::Random,
        "ewma" => Balance::Ewma,
        "source" => Balance::Source,
        "uri" => Balance::Uri,
        _ if text.starts_with("header(") => {
            match argument("header(").map(|n| HeaderName::from_bytes(n.as_bytes())) {
                Some(Ok(name)) => Balance::Header(name),
                _ => {
                    errors.push(ConfigError::new(
                        path,
                        format!("`{text}`: write header(NAME) with a valid header name"),
                    ));
                    return Balance::RoundRobin;
                }
            }
        }
        _ if text.starts_with("cookie(") => match argument("cookie(") {
            Some(name)
                if name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"=;,".contains(&b)) =>
            {
                Balance::Cookie(name.to_owned())
            }
            _ => {
                errors.push(ConfigError::new(
                    path,
                    format!("`{text}`: write cookie(NAME) with a valid cookie name"),
                ));
                return Balance::RoundRobin;
            }
        },
        other => {
            errors.push(ConfigError::new(
                path,
                format!(
                    "unknown algorithm `{other}`, expected one of roundrobin, leastconn, random, ewma, source, uri, header(NAME), cookie(NAME)"
                ),
            ));
            return Balance::RoundRobin;
        }
    };
    let http_only = matches!(
        balance,
        Balance::Ewma | Balance::Uri | Balance::Header(_) | Balance::Cookie(_)
    );
    if mode == Mode::Tcp && http_only {
        errors.push(ConfigError::new(
            path,
            format!("`{text}` needs HTTP requests; a tcp backend can use roundrobin, leastconn, random or source"),
        ));
        return Balance::RoundRobin;
    }
    balance
}
