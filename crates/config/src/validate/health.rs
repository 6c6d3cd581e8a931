//! A backend's `health_check:`.

use crate::defaults;
use crate::error::ConfigError;
use crate::model::*;
use crate::raw::RawHealthCheck;

pub(super) fn health_check(
    path: &str,
    raw: &RawHealthCheck,
    errors: &mut Vec<ConfigError>,
) -> Option<HealthCheckConfig> {
    let before = errors.len();
    let at = |field: &str| format!("{path}.{field}");
    let http_only = [
        ("path", raw.path.is_some()),
        ("method", raw.method.is_some()),
        ("host", raw.host.is_some()),
    ];
    let kind = match raw.kind.as_str() {
        "tcp" => {
            for (field, present) in http_only {
                if present {
                    errors.push(ConfigError::new(
                        at(field),
                        format!("`{field}` belongs to `kind: http` checks"),
                    ));
                }
            }
            HealthCheckKind::Tcp {
                send: raw.send.clone(),
                expect: raw.expect.clone(),
            }
        }
        "http" => http_check(path, raw, errors),
        other => {
            errors.push(ConfigError::new(
                at("kind"),
                format!("unknown check kind `{other}`, expected tcp or http"),
            ));
            return None;
        }
    };
    let interval = raw.interval.map_or(defaults::HEALTH_INTERVAL, |d| d.0);
    // A short interval shortens the default timeout with it.
    let timeout = raw
        .timeout
        .map_or(defaults::HEALTH_TIMEOUT.min(interval), |d| d.0);
    if interval.is_zero() || timeout.is_zero() {
        errors.push(ConfigError::new(
            path,
            "interval and timeout must be above zero",
        ));
    }
    let rise = raw.rise.unwrap_or(defaults::HEALTH_RISE);
    let fall = raw.fall.unwrap_or(defaults::HEALTH_FALL);
    if rise == 0 || fall == 0 {
        errors.push(ConfigError::new(
            path,
            "rise and fall count checks: use 1 or more",
        ));
    }
    (errors.len() == before).then_some(HealthCheckConfig {
        kind,
        interval,
        timeout,
        rise,
        fall,
    })
}

/// What a `kind: http` check sends and expects.
fn http_check(path: &str, raw: &RawHealthCheck, errors: &mut Vec<ConfigError>) -> HealthCheckKind {
    // A tcp backend may front an HTTP service that has a health URL: allowed.
    let at = |field: &str| format!("{path}.{field}");
    if raw.send.is_some() {
        errors.push(ConfigError::new(
            at("send"),
            "`send` belongs to `kind: tcp` checks",
        ));
    }
    let check_path = raw.path.clone().unwrap_or_else(|| "/".to_owned());
    if !check_path.starts_with('/') {
        errors.push(ConfigError::new(
            at("path"),
            format!("`{check_path}` must start with `/`"),
        ));
    }
    let method = match raw
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse::<http::Method>()
    {
        Ok(method) => method,
        Err(_) => {
            errors.push(ConfigError::new(
                at("method"),
                "not an HTTP method: use GET, HEAD or OPTIONS",
            ));
            http::Method::GET
        }
    };
    let expect = match raw.expect.as_deref() {
        None => vec![(200, 399)],
        Some(text) => status_ranges(text).unwrap_or_else(|why| {
            errors.push(ConfigError::new(at("expect"), why));
            Vec::new()
        }),
    };
    HealthCheckKind::Http {
        method,
        path: check_path,
        host: raw.host.clone(),
        expect,
    }
}

/// `200-399`, `200,204`, `2xx`-style lists: `200-299,301`.
fn status_ranges(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let bad = || format!("`{text}` is not a list of statuses or ranges, like 200-399 or 200,204");
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let low: u16 = low.trim().parse().map_err(|_| bad())?;
            let high: u16 = high.trim().parse().map_err(|_| bad())?;
            if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
                return Err(bad());
            }
            Ok((low, high))
        })
        .collect()
}
