//! A frontend's part of a table: its routes with their backends, splits,
//! redirects and rules resolved, built anew with every table (frontends are
//! few and cheap; backends are carried over when untouched).

use std::collections::HashMap;
use std::sync::Arc;

use zkgate_config::{FrontendConfig, RouteConfig, RouteRules, RouteTarget};
use zkgate_metrics::{CompressionMetrics, FrontendMetrics, Metrics, MirrorMetrics};
use zkgate_tls::ServerTls;

use crate::backend::Backend;
use crate::route::{Mirror, Redirect, Route, Rules, Split, Target};
use crate::routes::Routes;
use crate::table::{Compressing, Frontend, FrontendId};

pub(super) fn build_frontend(
    id: FrontendId,
    config: &FrontendConfig,
    tls: Option<Arc<ServerTls>>,
    backends: &HashMap<&str, &Arc<Backend>>,
    metrics: &Metrics,
) -> Frontend {
    // Validation guarantees every referenced backend exists.
    let lookup = |name: &str| backends.get(name).map(|b| Arc::clone(b));
    let routes = config
        .routes
        .iter()
        .filter_map(|route| build_route(&config.name, route, &lookup, metrics))
        .collect();
    let routes = Routes::new(routes);
    Frontend {
        id,
        name: config.name.as_str().into(),
        mode: config.mode,
        binds: config.binds.clone(),
        max_connections: config.max_connections,
        forwarded_headers: config.forwarded_headers,
        timeouts: config.timeouts,
        routes,
        default_route: config
            .default_backend
            .as_deref()
            .and_then(lookup)
            .map(Route::default_to),
        access: config.access.clone(),
        accept_proxy: config.accept_proxy,
        max_connections_per_client: config.max_connections_per_client,
        rate_limit: config.rate_limit,
        request_id: config.request_id.clone(),
        compression: config.compression.clone().map(|config_of| Compressing {
            config: config_of,
            metrics: CompressionMetrics::resolve(metrics, &config.name),
        }),
        metrics: FrontendMetrics::resolve(
            metrics,
            &config.name,
            tls.is_some(),
            config.http3.is_some(),
        ),
        tls,
        http3_binds: config
            .http3
            .as_ref()
            .map(|h3| h3.binds.clone())
            .unwrap_or_default(),
        alt_svc: config.http3.as_ref().and_then(|h3| alt_svc(h3.port()?)),
    }
}

/// `Alt-Svc` offering HTTP/3 on `port` of the same host for a day (as
/// HAProxy, nginx and Caddy announce it).
fn alt_svc(port: u16) -> Option<http::HeaderValue> {
    http::HeaderValue::try_from(format!("h3=\":{port}\"; ma=86400")).ok()
}

/// A route with its backends resolved; `None` if one is missing (which
/// validation rules out).
fn build_route(
    frontend: &str,
    config: &RouteConfig,
    lookup: &impl Fn(&str) -> Option<Arc<Backend>>,
    metrics: &Metrics,
) -> Option<Route> {
    let target = match &config.target {
        RouteTarget::Backend(name) => Target::Backend(lookup(name)?),
        RouteTarget::Split { sides, key } => {
            let sides = sides
                .iter()
                .map(|side| {
                    let requests = metrics
                        .route_split_requests
                        .with_label_values(&[frontend, &side.backend]);
                    Some((lookup(&side.backend)?, side.weight, requests))
                })
                .collect::<Option<Vec<_>>>()?;
            Target::Split(Split::new(key.clone(), sides))
        }
        RouteTarget::Redirect(redirect) => Target::Redirect(Redirect {
            location: redirect.location.as_str().into(),
            code: redirect.code,
            keep_path: redirect.keep_path,
        }),
    };
    let rules = &config.rules;
    let mirror = match &rules.mirror {
        Some(mirror) => Some(Mirror {
            backend: lookup(&mirror.backend)?,
            percent: mirror.percent,
            metrics: MirrorMetrics::resolve(metrics, frontend),
        }),
        None => None,
    };
    let rewrite = rules
        .rewrite_path_prefix
        .as_deref()
        .zip(config.path_prefix.as_deref())
        .map(|(to, from)| (from.into(), to.into()));
    let rules = (*rules != RouteRules::default()).then(|| {
        Arc::new(Rules {
            rewrite,
            request_headers: rules.request_headers.clone(),
            response_headers: rules.response_headers.clone(),
            mirror,
        })
    });
    Some(Route {
        host: config.host.clone(),
        path_prefix: config.path_prefix.as_deref().map(Into::into),
        headers: config.headers.clone().into_boxed_slice(),
        access: config.access.clone(),
        target,
        rules,
    })
}
