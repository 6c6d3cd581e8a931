//! Raw schema → typed [`Config`]: defaults resolved, references checked,
//! every error recorded with its path (the caller adds positions).

use std::collections::HashMap;
use std::net::SocketAddr;

use http::{HeaderName, HeaderValue};

use crate::document::Document;
use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{
    RawBackend, RawBackendZookeeper, RawFrontend, RawRoute, RawTimeouts, RawZookeeper,
};

/// Feature fields that parse but whose behaviour is not built yet: refusing
/// them beats silently ignoring what the operator asked for.
fn not_supported(path: String, what: &str) -> ConfigError {
    ConfigError::new(
        path,
        format!("not supported yet: {what}; remove it to run this configuration"),
    )
}

/// Checks the whole document; returns a `Config` only when no error was found.
pub fn validate(doc: &Document, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let before = errors.len();
    let admin_bind = doc.admin.bind.as_deref().unwrap_or(defaults::ADMIN_BIND);
    let admin = AdminConfig {
        bind: socket_addr("admin.bind", admin_bind, errors)
            .unwrap_or(([127, 0, 0, 1], 9900).into()),
    };
    let zookeeper = doc.zookeeper.as_ref().map(|raw| zookeeper(raw, errors));
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

    let mut bound: HashMap<SocketAddr, String> = HashMap::new();
    bound.insert(admin.bind, "admin.bind".into());
    let frontends: Vec<FrontendConfig> = doc
        .frontends
        .iter()
        .filter_map(|(name, raw)| frontend(name, raw, &default_timeouts, &refs, &mut bound, errors))
        .collect();

    if errors.len() > before {
        return None;
    }
    let mut config = Config {
        admin,
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

fn timeouts(
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

fn socket_addr(path: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
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

fn mode(path: String, raw: Option<&str>, errors: &mut Vec<ConfigError>) -> Mode {
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
    bound: &mut HashMap<SocketAddr, String>,
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
            if let Some(first) = bound.get(&addr) {
                errors.push(ConfigError::new(
                    path,
                    format!("{addr} is already bound by {first}: each address can be bound once"),
                ));
            } else {
                bound.insert(addr, path);
                binds.push(addr);
            }
        }
    }

    if raw.tls.is_some() {
        errors.push(not_supported(at("tls"), "TLS termination"));
    }
    if raw.accept_proxy {
        errors.push(not_supported(at("accept_proxy"), "the PROXY protocol"));
    }
    if raw.access.is_some() {
        errors.push(not_supported(at("access"), "access control lists"));
    }
    if raw.max_connections_per_client != 0 {
        errors.push(not_supported(
            at("max_connections_per_client"),
            "per-client connection limits",
        ));
    }
    if let Some(limit) = &raw.rate_limit {
        if limit.requests_per_second != 0 || limit.burst != 0 {
            errors.push(not_supported(at("rate_limit"), "rate limiting"));
        }
    }

    let mut routes = Vec::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let path = format!("frontends.{name}.routes[{i}]");
        if mode == Mode::Tcp {
            errors.push(ConfigError::new(
                path.clone(),
                "routes need `mode: http`; a tcp frontend sends everything to its default_backend",
            ));
        }
        if let Some(route) = route_config(&path, route, errors) {
            refs.check(format!("{path}.backend"), &route.backend, mode, errors);
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

    Some(FrontendConfig {
        name: name.to_owned(),
        binds,
        mode,
        max_connections: raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
        routes,
        default_backend: raw.default_backend.clone(),
        forwarded_headers: raw.forwarded_headers.unwrap_or(mode == Mode::Http),
        timeouts: timeouts(&at("timeouts"), &raw.timeouts, inherited, errors),
    })
}

fn route_config(path: &str, raw: &RawRoute, errors: &mut Vec<ConfigError>) -> Option<RouteConfig> {
    let before = errors.len();
    if raw.access.is_some() {
        errors.push(not_supported(
            format!("{path}.access"),
            "access control lists",
        ));
    }
    let host = raw.host.as_deref().and_then(|host| {
        let lower = host.to_ascii_lowercase();
        let (pattern, name) = match lower.strip_prefix("*.") {
            Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_owned()),
            None => (HostPattern::Exact(lower.clone()), lower.clone()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if valid {
            Some(pattern)
        } else {
            errors.push(ConfigError::new(
                format!("{path}.host"),
                format!(
                    "`{host}` is not a host name or `*.suffix` pattern (write it without a port)"
                ),
            ));
            None
        }
    });
    if let Some(prefix) = &raw.path_prefix {
        if !prefix.starts_with('/') {
            errors.push(ConfigError::new(
                format!("{path}.path_prefix"),
                format!("`{prefix}` must start with `/`, like /{prefix}"),
            ));
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let at = format!("{path}.headers.{name}");
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            (Err(_), _) => errors.push(ConfigError::new(
                at,
                format!("`{name}` is not a valid header name"),
            )),
            (_, Err(_)) => errors.push(ConfigError::new(
                at,
                format!("`{value}` is not a valid header value (visible ASCII only)"),
            )),
        }
    }
    (errors.len() == before).then(|| RouteConfig {
        host,
        path_prefix: raw.path_prefix.clone(),
        headers,
        backend: raw.backend.clone(),
    })
}

fn backend(
    name: &str,
    raw: &RawBackend,
    inherited: &Timeouts,
    default_retries: u32,
    errors: &mut Vec<ConfigError>,
) -> Option<BackendConfig> {
    let at = |field: &str| format!("backends.{name}.{field}");
    let mode = mode(at("mode"), raw.mode.as_deref(), errors);
    let balance = balance(&at("balance"), raw.balance.as_deref(), mode, errors);
    let hash_method = match raw.hash_method.as_deref() {
        None | Some("maglev") => HashMethod::Maglev,
        Some("ring") => HashMethod::Ring,
        Some(other) => {
            errors.push(ConfigError::new(
                at("hash_method"),
                format!("unknown hash method `{other}`, expected maglev or ring"),
            ));
            HashMethod::Maglev
        }
    };
    if raw.hash_method.is_some() && !balance.hashes() {
        errors.push(ConfigError::new(
            at("hash_method"),
            "hash_method applies to the hashing algorithms (source, uri, header(NAME), cookie(NAME)) only",
        ));
    }
    let unsupported: [(&str, bool, &str); 8] = [
        (
            "health_check",
            raw.health_check.is_some(),
            "active health checks",
        ),
        (
            "outlier_detection",
            raw.outlier_detection.is_some(),
            "outlier detection",
        ),
        (
            "panic_threshold",
            raw.panic_threshold != 0,
            "panic threshold",
        ),
        (
            "slow_start",
            raw.slow_start.is_some_and(|d| !d.0.is_zero()),
            "slow start",
        ),
        ("sticky", raw.sticky.is_some(), "sticky sessions"),
        ("tls", raw.tls.is_some(), "TLS to servers"),
        (
            "send_proxy",
            raw.send_proxy.as_deref().is_some_and(|p| p != "none"),
            "send_proxy",
        ),
        (
            "max_connections_per_server",
            raw.max_connections_per_server != 0,
            "per-server connection limits",
        ),
    ];
    for (field, present, what) in unsupported {
        if present {
            errors.push(not_supported(at(field), what));
        }
    }
    match raw.protocol.as_deref() {
        None | Some("http1") => {}
        Some("http2") => errors.push(not_supported(at("protocol"), "HTTP/2 towards servers")),
        Some(other) => errors.push(ConfigError::new(
            at("protocol"),
            format!("unknown protocol `{other}`, expected http1 or http2"),
        )),
    }

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
        servers.push(ServerConfig {
            address,
            weight,
            state,
        });
    }

    let discovery = raw
        .zookeeper
        .as_ref()
        .and_then(|zk| discovery(&at("zookeeper"), zk, errors));
    Some(BackendConfig {
        name: name.to_owned(),
        mode,
        balance,
        hash_method,
        servers,
        discovery,
        retries: raw.retries.unwrap_or(default_retries),
        timeouts: timeouts(&at("timeouts"), &raw.timeouts, inherited, errors),
    })
}

fn zookeeper(raw: &RawZookeeper, errors: &mut Vec<ConfigError>) -> ZookeeperConfig {
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
    if raw.config_node.is_some() {
        errors.push(not_supported(
            "zookeeper.config_node".into(),
            "configuration kept in ZooKeeper",
        ));
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

fn discovery(
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
    (errors.len() == before).then(|| DiscoveryConfig {
        path: raw.path.clone(),
        format,
        endpoint: raw.endpoint.clone(),
        on_empty,
    })
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
