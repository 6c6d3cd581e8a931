//! A frontend's `routes:` entries: what they match, where they send, and
//! the rules they apply, each error with its place.

use http::{HeaderName, HeaderValue, StatusCode};

use super::{access_list, percent};
use crate::error::ConfigError;
use crate::model::*;
use crate::raw::{RawHeaderRules, RawRoute, RawSplitSide};

/// Headers no rule may set, add or remove: they frame a message, route it
/// or belong to one connection (RFC 9110 §7.6.1). zkgate decides them once
/// for every wire path.
const UNTOUCHABLE: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// Headers zkgate sets itself when a frontend has `forwarded_headers`.
const FORWARDED: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// The route at `path`, or `None` (with the errors recorded) if it is wrong.
pub(super) fn route_config(
    path: &str,
    raw: &RawRoute,
    forwarded_headers: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<RouteConfig> {
    let before = errors.len();
    let access = raw
        .access
        .as_ref()
        .map(|raw| access_list(&format!("{path}.access"), raw, errors));
    let host = raw
        .host
        .as_deref()
        .and_then(|host| host_pattern(&format!("{path}.host"), host, errors));
    if let Some(prefix) = &raw.path_prefix {
        if !prefix.starts_with('/') {
            errors.push(ConfigError::new(
                format!("{path}.path_prefix"),
                format!("`{prefix}` must start with `/`, like /{prefix}"),
            ));
        }
    }
    let headers = header_pairs(&format!("{path}.headers"), &raw.headers, errors);
    let target = target(path, raw, errors);
    let rules = rules(path, raw, errors);
    if forwarded_headers {
        let touched = rules.request_headers.names();
        for name in touched.filter(|n| FORWARDED.contains(&n.as_str())) {
            errors.push(ConfigError::new(
                format!("{path}.request_headers"),
                format!("`{name}` is set by zkgate on this frontend: set `forwarded_headers: false` to manage it with rules"),
            ));
        }
    }
    if matches!(target, Some(RouteTarget::Redirect(_))) && rules != RouteRules::default() {
        errors.push(ConfigError::new(
            format!("{path}.redirect"),
            "a redirect is answered by zkgate itself: rewrite, mirror and header rules do not apply to it",
        ));
    }
    let target = target?;
    (errors.len() == before).then(|| RouteConfig {
        host,
        path_prefix: raw.path_prefix.clone(),
        headers,
        access,
        target,
        rules,
    })
}

fn host_pattern(at: &str, host: &str, errors: &mut Vec<ConfigError>) -> Option<HostPattern> {
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
        return Some(pattern);
    }
    errors.push(ConfigError::new(
        at,
        format!("`{host}` is not a host name or `*.suffix` pattern (write it without a port)"),
    ));
    None
}

/// Exactly one of `backend`, `split` and `redirect`.
fn target(path: &str, raw: &RawRoute, errors: &mut Vec<ConfigError>) -> Option<RouteTarget> {
    let given = [
        raw.backend.is_some(),
        raw.split.is_some(),
        raw.redirect.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        errors.push(ConfigError::new(
            path,
            "a route needs exactly one of `backend`, `split` and `redirect`",
        ));
        return None;
    }
    if raw.split_key.is_some() && raw.split.is_none() {
        errors.push(ConfigError::new(
            format!("{path}.split_key"),
            "split_key needs a `split:` on the same route",
        ));
    }
    if let Some(backend) = &raw.backend {
        return Some(RouteTarget::Backend(backend.clone()));
    }
    if let Some(sides) = &raw.split {
        return split(path, sides, raw.split_key.as_deref(), errors);
    }
    let redirect = raw.redirect.as_ref()?;
    let at = format!("{path}.redirect");
    let code = match redirect.code.unwrap_or(302) {
        code @ (301 | 302 | 303 | 307 | 308) => StatusCode::from_u16(code).ok()?,
        other => {
            errors.push(ConfigError::new(
                format!("{at}.code"),
                format!("{other} is not a redirect code: use 301, 302, 303, 307 or 308"),
            ));
            return None;
        }
    };
    let sample = redirect.location.replace("{host}", "example.com");
    if sample.is_empty() || HeaderValue::from_str(&sample).is_err() {
        errors.push(ConfigError::new(
            format!("{at}.location"),
            format!(
                "`{}` is not a Location: visible ASCII only, like https://{{host}}",
                redirect.location
            ),
        ));
        return None;
    }
    Some(RouteTarget::Redirect(Redirect {
        location: redirect.location.clone(),
        code,
        keep_path: redirect.keep_path,
    }))
}

fn split(
    path: &str,
    sides: &[RawSplitSide],
    key: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<RouteTarget> {
    let at = format!("{path}.split");
    if sides.is_empty() || sides.iter().all(|side| side.weight == 0) {
        errors.push(ConfigError::new(
            at,
            "a split needs at least one backend with a weight above 0",
        ));
        return None;
    }
    for (i, side) in sides.iter().enumerate() {
        if side.weight > 1_000_000 {
            errors.push(ConfigError::new(
                format!("{at}[{i}].weight"),
                format!("{} is too large: weights go up to 1000000", side.weight),
            ));
        }
        if sides[..i].iter().any(|other| other.backend == side.backend) {
            errors.push(ConfigError::new(
                format!("{at}[{i}].backend"),
                format!("`{}` is already a side of this split", side.backend),
            ));
        }
    }
    let key = match key {
        None => SplitKey::Request,
        Some(text) => split_key(&format!("{path}.split_key"), text, errors)?,
    };
    let sides = sides
        .iter()
        .map(|side| SplitSide {
            backend: side.backend.clone(),
            weight: side.weight,
        })
        .collect();
    Some(RouteTarget::Split { sides, key })
}

fn split_key(at: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<SplitKey> {
    let argument = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .filter(|name| !name.is_empty())
    };
    if text == "source" {
        return Some(SplitKey::Source);
    }
    if let Some(name) = argument("cookie(") {
        return Some(SplitKey::Cookie(name.to_owned()));
    }
    if let Some(name) = argument("header(").and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
    {
        return Some(SplitKey::Header(name));
    }
    errors.push(ConfigError::new(
        at,
        format!("`{text}` is not a split key: use cookie(NAME), header(NAME) or source"),
    ));
    None
}

fn rules(path: &str, raw: &RawRoute, errors: &mut Vec<ConfigError>) -> RouteRules {
    let rewrite_path_prefix = raw.rewrite.as_ref().and_then(|rewrite| {
        let at = format!("{path}.rewrite.path_prefix");
        let replacement = &rewrite.path_prefix;
        if raw.path_prefix.is_none() {
            errors.push(ConfigError::new(
                at,
                "rewrite replaces the route's path_prefix: add `path_prefix:` to the route",
            ));
            return None;
        }
        let visible = replacement.bytes().all(|b| b.is_ascii_graphic());
        if !replacement.starts_with('/') || !visible || replacement.contains(['?', '#']) {
            errors.push(ConfigError::new(
                at,
                format!("`{replacement}` is not a path prefix: it starts with `/` and has no spaces, `?` or `#`"),
            ));
            return None;
        }
        Some(replacement.clone())
    });
    let mirror = raw.mirror.as_ref().and_then(|mirror| {
        let Some(percent) = percent(&mirror.percent) else {
            errors.push(ConfigError::new(
                format!("{path}.mirror.percent"),
                "not a share: write a percentage from 0 to 100, like 10%",
            ));
            return None;
        };
        Some(Mirror {
            backend: mirror.backend.clone(),
            percent,
        })
    });
    let empty = RawHeaderRules::default();
    RouteRules {
        rewrite_path_prefix,
        request_headers: header_rules(
            &format!("{path}.request_headers"),
            raw.request_headers.as_ref().unwrap_or(&empty),
            errors,
        ),
        response_headers: header_rules(
            &format!("{path}.response_headers"),
            raw.response_headers.as_ref().unwrap_or(&empty),
            errors,
        ),
        mirror,
    }
}

fn header_rules(at: &str, raw: &RawHeaderRules, errors: &mut Vec<ConfigError>) -> HeaderRules {
    let rules = HeaderRules {
        set: header_pairs(&format!("{at}.set"), &raw.set, errors),
        add: header_pairs(&format!("{at}.add"), &raw.add, errors),
        remove: raw
            .remove
            .iter()
            .enumerate()
            .filter_map(|(i, name)| header_name(&format!("{at}.remove[{i}]"), name, errors))
            .collect(),
    };
    for name in rules.names() {
        if UNTOUCHABLE.contains(&name.as_str()) {
            errors.push(ConfigError::new(
                at,
                format!("`{name}` frames, routes or belongs to one connection: zkgate sets it, a rule cannot"),
            ));
        }
    }
    rules
}

/// `name: value` pairs of headers (route matches and rules).
pub(super) fn header_pairs(
    at: &str,
    raw: &std::collections::BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut pairs = Vec::new();
    for (name, value) in raw {
        let at = format!("{at}.{name}");
        let name = header_name(&at, name, errors);
        let value = match HeaderValue::from_str(value) {
            Ok(value) => Some(value),
            Err(_) => {
                errors.push(ConfigError::new(
                    &at,
                    format!("`{value}` is not a valid header value (visible ASCII only)"),
                ));
                None
            }
        };
        if let (Some(name), Some(value)) = (name, value) {
            pairs.push((name, value));
        }
    }
    pairs
}

fn header_name(at: &str, name: &str, errors: &mut Vec<ConfigError>) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(name) => Some(name),
        Err(_) => {
            errors.push(ConfigError::new(
                at,
                format!("`{name}` is not a valid header name"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::*;

    fn document(route: &str, extra: &str) -> String {
        format!(
            "frontends:\n  web:\n    bind: [\"127.0.0.1:8080\"]\n{extra}    routes:\n      - {route}\n    default_backend: a\nbackends:\n  a: {{ servers: [{{ address: \"127.0.0.1:9001\" }}] }}\n  b: {{ servers: [{{ address: \"127.0.0.1:9002\" }}] }}\n"
        )
    }

    fn errors_of(route: &str) -> String {
        match crate::parse(&document(route, ""), "zkgate.yaml") {
            Ok(_) => panic!("expected errors for {route}"),
            Err(errs) => errs.to_string(),
        }
    }

    fn route_of(route: &str, extra: &str) -> RouteConfig {
        let config = crate::parse(&document(route, extra), "zkgate.yaml").unwrap();
        config.frontends[0].routes[0].clone()
    }

    #[test]
    fn every_rule_of_the_spec_example_is_read() {
        let route = route_of(
            "{ path_prefix: /api, split: [{ backend: a, weight: 95 }, { backend: b, weight: 5 }], split_key: cookie(uid), mirror: { backend: b, percent: 10% }, rewrite: { path_prefix: /v2 }, request_headers: { set: { x-env: prod }, remove: [x-debug] }, response_headers: { set: { strict-transport-security: \"max-age=31536000\" }, remove: [server] } }",
            "",
        );
        let RouteTarget::Split { sides, key } = &route.target else {
            panic!("{route:?}")
        };
        assert_eq!((sides[0].weight, sides[1].weight), (95, 5));
        assert_eq!(*key, SplitKey::Cookie("uid".into()));
        assert_eq!(route.rules.mirror.as_ref().unwrap().percent, 10);
        assert_eq!(route.rules.rewrite_path_prefix.as_deref(), Some("/v2"));
        assert_eq!(route.rules.request_headers.set[0].0, "x-env");
        assert_eq!(route.rules.response_headers.remove[0], "server");
        let redirect = route_of(
            "{ host: old.example.com, redirect: { location: \"https://{host}\", code: 308, keep_path: true } }",
            "",
        );
        let RouteTarget::Redirect(redirect) = redirect.target else {
            panic!()
        };
        assert_eq!(redirect.code, http::StatusCode::PERMANENT_REDIRECT);
        assert!(redirect.keep_path);
    }

    #[test]
    fn wrong_rules_are_errors_at_their_place() {
        let cases = [
            ("{ path_prefix: /, backend: a, redirect: { location: /x } }", "routes[0]: a route needs exactly one of"),
            ("{ path_prefix: / }", "routes[0]: a route needs exactly one of"),
            ("{ split: [{ backend: a, weight: 0 }] }", "routes[0].split: a split needs at least one backend"),
            ("{ split: [{ backend: a, weight: 1 }, { backend: zz, weight: 1 }] }", "routes[0].split[1].backend: backend `zz` is not defined"),
            ("{ split: [{ backend: a, weight: 1 }], split_key: cookie() }", "routes[0].split_key: `cookie()` is not a split key"),
            ("{ backend: a, split_key: source }", "routes[0].split_key: split_key needs a `split:`"),
            ("{ redirect: { location: \"https://x\", code: 200 } }", "routes[0].redirect.code: 200 is not a redirect code"),
            ("{ redirect: { location: \"https://x\" }, request_headers: { remove: [a] } }", "routes[0].redirect: a redirect is answered by zkgate itself"),
            ("{ backend: a, rewrite: { path_prefix: /v2 } }", "routes[0].rewrite.path_prefix: rewrite replaces the route's path_prefix"),
            ("{ path_prefix: /a, backend: a, rewrite: { path_prefix: \"v2?x\" } }", "routes[0].rewrite.path_prefix: `v2?x` is not a path prefix"),
            ("{ backend: a, mirror: { backend: b, percent: 101 } }", "routes[0].mirror.percent: not a share"),
            ("{ backend: a, mirror: { backend: zz, percent: 1 } }", "routes[0].mirror.backend: backend `zz` is not defined"),
            ("{ backend: a, request_headers: { set: { \"bad name\": x } } }", "routes[0].request_headers.set.bad name: `bad name` is not a valid header name"),
            ("{ backend: a, response_headers: { add: { x-a: \"caf\u{e9}\\n\" } } }", "routes[0].response_headers.add.x-a: "),
            ("{ backend: a, request_headers: { set: { Transfer-Encoding: chunked } } }", "routes[0].request_headers: `transfer-encoding` frames, routes or belongs to one connection"),
            ("{ backend: a, response_headers: { remove: [content-length] } }", "routes[0].response_headers: `content-length` frames"),
            ("{ backend: a, request_headers: { remove: [host] } }", "routes[0].request_headers: `host` frames"),
            ("{ backend: a, request_headers: { set: { x-forwarded-for: 1.2.3.4 } } }", "routes[0].request_headers: `x-forwarded-for` is set by zkgate"),
        ];
        for (route, expected) in cases {
            let errors = errors_of(route);
            assert!(
                errors.contains(expected),
                "{route}:\n{errors}\nexpected: {expected}"
            );
        }
        // Without forwarded headers, they are the rules' to set.
        let route = route_of(
            "{ backend: a, request_headers: { set: { x-forwarded-for: 1.2.3.4 } } }",
            "    forwarded_headers: false\n",
        );
        assert_eq!(route.rules.request_headers.set.len(), 1);
    }

    #[test]
    fn request_id_needs_a_header_name() {
        let config = crate::parse(
            &document("{ backend: a }", "    request_id: X-Request-Id\n"),
            "z",
        )
        .unwrap();
        assert_eq!(
            config.frontends[0].request_id.as_ref().unwrap(),
            "x-request-id"
        );
        let Err(errors) = crate::parse(
            &document("{ backend: a }", "    request_id: \"x id\"\n"),
            "z",
        ) else {
            panic!()
        };
        assert!(
            errors
                .to_string()
                .contains("frontends.web.request_id: `x id` cannot carry request ids"),
            "{errors}"
        );
    }
}
