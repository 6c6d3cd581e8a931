//! Every Prometheus metric zkgate exports, registered once into a registry
//! passed in. Names are part of the product contract (SPEC §7).

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

mod families;

use families::Family;

/// The results a reload is counted by.
const RELOAD_RESULTS: [&str; 2] = ["ok", "error"];
/// The `result` values of `zkgate_route_mirrored_total`: the copy was
/// answered, failed (no answer), its body was too large to copy, or it was
/// dropped because too many copies were in flight.
pub const MIRROR_RESULTS: [&str; 4] = ["answered", "failed", "too_large", "dropped"];

/// Metric names, in one place.
pub mod names {
    /// `zkgate_build_info{version}`
    pub const BUILD_INFO: &str = "zkgate_build_info";
    /// `zkgate_frontend_connections_total{frontend}`
    pub const FRONTEND_CONNECTIONS_TOTAL: &str = "zkgate_frontend_connections_total";
    /// `zkgate_frontend_active_connections{frontend}`
    pub const FRONTEND_ACTIVE_CONNECTIONS: &str = "zkgate_frontend_active_connections";
    /// `zkgate_frontend_requests_total{frontend}`
    pub const FRONTEND_REQUESTS_TOTAL: &str = "zkgate_frontend_requests_total";
    /// `zkgate_frontend_bytes_received_total{frontend}`
    pub const FRONTEND_BYTES_RECEIVED_TOTAL: &str = "zkgate_frontend_bytes_received_total";
    /// `zkgate_frontend_bytes_sent_total{frontend}`
    pub const FRONTEND_BYTES_SENT_TOTAL: &str = "zkgate_frontend_bytes_sent_total";
    /// `zkgate_backend_responses_total{backend,code}`
    pub const BACKEND_RESPONSES_TOTAL: &str = "zkgate_backend_responses_total";
    /// `zkgate_backend_response_seconds{backend}`
    pub const BACKEND_RESPONSE_SECONDS: &str = "zkgate_backend_response_seconds";
    /// `zkgate_backend_connect_errors_total{backend}`
    pub const BACKEND_CONNECT_ERRORS_TOTAL: &str = "zkgate_backend_connect_errors_total";
    /// `zkgate_backend_retries_total{backend}`
    pub const BACKEND_RETRIES_TOTAL: &str = "zkgate_backend_retries_total";
    /// `zkgate_backend_no_server_total{backend}`
    pub const BACKEND_NO_SERVER_TOTAL: &str = "zkgate_backend_no_server_total";
    /// `zkgate_backend_servers{backend,state}`
    pub const BACKEND_SERVERS: &str = "zkgate_backend_servers";
    /// `zkgate_server_up{backend,server}`
    pub const SERVER_UP: &str = "zkgate_server_up";
    /// `zkgate_server_weight{backend,server}`
    pub const SERVER_WEIGHT: &str = "zkgate_server_weight";
    /// `zkgate_server_active_requests{backend,server}`
    pub const SERVER_ACTIVE_REQUESTS: &str = "zkgate_server_active_requests";
    /// `zkgate_server_requests_total{backend,server}`
    pub const SERVER_REQUESTS_TOTAL: &str = "zkgate_server_requests_total";
    /// `zkgate_server_health_check_failures_total{backend,server}`
    pub const SERVER_HEALTH_CHECK_FAILURES_TOTAL: &str =
        "zkgate_server_health_check_failures_total";
    /// `zkgate_routing_table_generation`
    pub const ROUTING_TABLE_GENERATION: &str = "zkgate_routing_table_generation";
    /// `zkgate_routing_table_swaps_total`
    pub const ROUTING_TABLE_SWAPS_TOTAL: &str = "zkgate_routing_table_swaps_total";
    /// `zkgate_routing_table_build_seconds`
    pub const ROUTING_TABLE_BUILD_SECONDS: &str = "zkgate_routing_table_build_seconds";
    /// `zkgate_config_reloads_total{result}`
    pub const CONFIG_RELOADS_TOTAL: &str = "zkgate_config_reloads_total";
    /// `zkgate_frontend_denied_total{frontend,reason}`
    pub const FRONTEND_DENIED_TOTAL: &str = "zkgate_frontend_denied_total";
    /// `zkgate_tls_handshakes_total{frontend,result}`
    pub const TLS_HANDSHAKES_TOTAL: &str = "zkgate_tls_handshakes_total";
    /// `zkgate_zookeeper_connected`
    pub const ZOOKEEPER_CONNECTED: &str = "zkgate_zookeeper_connected";
    /// `zkgate_zookeeper_session_expirations_total`
    pub const ZOOKEEPER_SESSION_EXPIRATIONS_TOTAL: &str =
        "zkgate_zookeeper_session_expirations_total";
    /// `zkgate_zookeeper_watch_events_total`
    pub const ZOOKEEPER_WATCH_EVENTS_TOTAL: &str = "zkgate_zookeeper_watch_events_total";
    /// `zkgate_discovery_members{backend}`
    pub const DISCOVERY_MEMBERS: &str = "zkgate_discovery_members";
    /// `zkgate_discovery_invalid_members{backend}`
    pub const DISCOVERY_INVALID_MEMBERS: &str = "zkgate_discovery_invalid_members";
    /// `zkgate_discovery_keeping_last{backend}`: 1 while ZooKeeper reports no
    /// members and `on_empty: keep_last` keeps the last set in service.
    pub const DISCOVERY_KEEPING_LAST: &str = "zkgate_discovery_keeping_last";
    /// `zkgate_discovery_stale{backend}`: 1 while the backend's members are
    /// the last-known ones from `state_dir`, not yet confirmed by ZooKeeper.
    pub const DISCOVERY_STALE: &str = "zkgate_discovery_stale";
    /// `zkgate_discovery_held_members{backend}`: members ZooKeeper removed
    /// that `protect` keeps serving.
    pub const DISCOVERY_HELD_MEMBERS: &str = "zkgate_discovery_held_members";
    /// `zkgate_backend_zone_requests_total{backend,zone}`: requests of a
    /// `locality: prefer_local` backend by side (`local` or `other`).
    pub const BACKEND_ZONE_REQUESTS_TOTAL: &str = "zkgate_backend_zone_requests_total";
    /// `zkgate_discovery_applied_zxid{backend}`: the newest ZooKeeper
    /// transaction whose effect on the backend's members is in the table.
    pub const DISCOVERY_APPLIED_ZXID: &str = "zkgate_discovery_applied_zxid";
    /// `zkgate_fleet_announced`: 1 while this instance's fleet znode exists.
    pub const FLEET_ANNOUNCED: &str = "zkgate_fleet_announced";
    /// `zkgate_route_split_requests_total{frontend,backend}`: requests a
    /// route's `split` sent to each of its backends.
    pub const ROUTE_SPLIT_REQUESTS_TOTAL: &str = "zkgate_route_split_requests_total";
    /// `zkgate_route_mirrored_total{frontend,result}`: copies made by a
    /// route's `mirror`, by how they went.
    pub const ROUTE_MIRRORED_TOTAL: &str = "zkgate_route_mirrored_total";
    /// `zkgate_compressed_responses_total{frontend,algorithm}`: answers a
    /// frontend compressed, by coding.
    pub const COMPRESSED_RESPONSES_TOTAL: &str = "zkgate_compressed_responses_total";
    /// `zkgate_http3_connections_total{frontend}`: QUIC connections
    /// established with a frontend's HTTP/3 listeners.
    pub const HTTP3_CONNECTIONS_TOTAL: &str = "zkgate_http3_connections_total";
}

/// Response classes used as the `code` label: index = status / 100 - 1.
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The metric families. Cloning is cheap (handles share their storage).
#[derive(Clone)]
pub struct Metrics {
    /// `zkgate_frontend_connections_total`
    pub frontend_connections: IntCounterVec,
    /// `zkgate_frontend_active_connections`
    pub frontend_active_connections: IntGaugeVec,
    /// `zkgate_frontend_requests_total`
    pub frontend_requests: IntCounterVec,
    /// `zkgate_frontend_bytes_received_total`
    pub frontend_bytes_received: IntCounterVec,
    /// `zkgate_frontend_bytes_sent_total`
    pub frontend_bytes_sent: IntCounterVec,
    /// `zkgate_frontend_denied_total`
    pub frontend_denied: IntCounterVec,
    /// `zkgate_tls_handshakes_total`
    pub tls_handshakes: IntCounterVec,
    /// `zkgate_backend_responses_total`
    pub backend_responses: IntCounterVec,
    /// `zkgate_backend_response_seconds`
    pub backend_response_seconds: HistogramVec,
    /// `zkgate_backend_connect_errors_total`
    pub backend_connect_errors: IntCounterVec,
    /// `zkgate_backend_retries_total`
    pub backend_retries: IntCounterVec,
    /// `zkgate_backend_no_server_total`
    pub backend_no_server: IntCounterVec,
    /// `zkgate_backend_servers`
    pub backend_servers: IntGaugeVec,
    /// `zkgate_server_up`
    pub server_up: IntGaugeVec,
    /// `zkgate_server_weight`
    pub server_weight: IntGaugeVec,
    /// `zkgate_server_active_requests`
    pub server_active_requests: IntGaugeVec,
    /// `zkgate_server_requests_total`
    pub server_requests: IntCounterVec,
    /// `zkgate_server_health_check_failures_total`
    pub server_health_check_failures: IntCounterVec,
    /// Generation of the table in service.
    pub table_generation: IntGauge,
    /// Tables published.
    pub table_swaps: IntCounter,
    /// Time to build a table.
    pub table_build_seconds: Histogram,
    /// Reloads by result (`ok`, `error`).
    pub config_reloads: IntCounterVec,
    /// 1 while a ZooKeeper session is connected.
    pub zookeeper_connected: IntGauge,
    /// ZooKeeper sessions that expired.
    pub zookeeper_session_expirations: IntCounter,
    /// Watch events received from ZooKeeper.
    pub zookeeper_watch_events: IntCounter,
    /// Members of a ZooKeeper-backed backend in use.
    pub discovery_members: IntGaugeVec,
    /// Members skipped because their data does not parse.
    pub discovery_invalid_members: IntGaugeVec,
    /// 1 while the last non-empty member set is kept for an empty backend.
    pub discovery_keeping_last: IntGaugeVec,
    /// 1 while a backend serves its last-known members from `state_dir`.
    pub discovery_stale: IntGaugeVec,
    /// Members held in service by the mass-removal guard.
    pub discovery_held_members: IntGaugeVec,
    /// Requests of zone-aware backends, by side.
    pub backend_zone_requests: IntCounterVec,
    /// The newest zxid applied per ZooKeeper-backed backend.
    pub discovery_applied_zxid: IntGaugeVec,
    /// 1 while this instance is announced to its fleet.
    pub fleet_announced: IntGauge,
    /// Requests of split routes, by backend.
    pub route_split_requests: IntCounterVec,
    /// Mirrored copies, by result.
    pub route_mirrored: IntCounterVec,
    /// Compressed answers, by coding.
    pub compressed_responses: IntCounterVec,
    /// QUIC connections established, by frontend.
    pub http3_connections: IntCounterVec,
}

fn counter_vec(registry: &Registry, family: &Family) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(family.name, family.help), family.labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, family: &Family) -> prometheus::Result<IntGauge> {
    let metric = IntGauge::new(family.name, family.help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge_vec(registry: &Registry, family: &Family) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(Opts::new(family.name, family.help), family.labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers every family into `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        use names::*;
        let build_info = gauge_vec(registry, &families::BUILD_INFO)?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let response_seconds = HistogramVec::new(
            HistogramOpts::new(
                BACKEND_RESPONSE_SECONDS,
                "Time from sending a request to a server to its response headers",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["backend"],
        )?;
        registry.register(Box::new(response_seconds.clone()))?;
        let table_generation = IntGauge::new(
            ROUTING_TABLE_GENERATION,
            "Generation of the routing table in service",
        )?;
        registry.register(Box::new(table_generation.clone()))?;
        let table_swaps = IntCounter::new(ROUTING_TABLE_SWAPS_TOTAL, "Routing tables published")?;
        registry.register(Box::new(table_swaps.clone()))?;
        let table_build_seconds = Histogram::with_opts(
            HistogramOpts::new(ROUTING_TABLE_BUILD_SECONDS, "Time to build a routing table")
                .buckets(exponential_buckets(0.000_01, 4.0, 10)?),
        )?;
        registry.register(Box::new(table_build_seconds.clone()))?;
        let zookeeper_connected = IntGauge::new(
            ZOOKEEPER_CONNECTED,
            "1 while the ZooKeeper session is connected",
        )?;
        registry.register(Box::new(zookeeper_connected.clone()))?;
        let zookeeper_session_expirations = IntCounter::new(
            ZOOKEEPER_SESSION_EXPIRATIONS_TOTAL,
            "ZooKeeper sessions that expired",
        )?;
        registry.register(Box::new(zookeeper_session_expirations.clone()))?;
        let zookeeper_watch_events = IntCounter::new(
            ZOOKEEPER_WATCH_EVENTS_TOTAL,
            "Watch events received from ZooKeeper",
        )?;
        registry.register(Box::new(zookeeper_watch_events.clone()))?;
        let metrics = Metrics {
            zookeeper_connected,
            zookeeper_session_expirations,
            zookeeper_watch_events,
            discovery_keeping_last: gauge_vec(registry, &families::DISCOVERY_KEEPING_LAST)?,
            discovery_stale: gauge_vec(registry, &families::DISCOVERY_STALE)?,
            discovery_held_members: gauge_vec(registry, &families::DISCOVERY_HELD_MEMBERS)?,
            backend_zone_requests: counter_vec(registry, &families::BACKEND_ZONE_REQUESTS_TOTAL)?,
            discovery_applied_zxid: gauge_vec(registry, &families::DISCOVERY_APPLIED_ZXID)?,
            fleet_announced: gauge(registry, &families::FLEET_ANNOUNCED)?,
            route_split_requests: counter_vec(registry, &families::ROUTE_SPLIT_REQUESTS_TOTAL)?,
            route_mirrored: counter_vec(registry, &families::ROUTE_MIRRORED_TOTAL)?,
            compressed_responses: counter_vec(registry, &families::COMPRESSED_RESPONSES_TOTAL)?,
            http3_connections: counter_vec(registry, &families::HTTP3_CONNECTIONS_TOTAL)?,
            discovery_members: gauge_vec(registry, &families::DISCOVERY_MEMBERS)?,
            discovery_invalid_members: gauge_vec(registry, &families::DISCOVERY_INVALID_MEMBERS)?,
            frontend_connections: counter_vec(registry, &families::FRONTEND_CONNECTIONS)?,
            frontend_active_connections: gauge_vec(
                registry,
                &families::FRONTEND_ACTIVE_CONNECTIONS,
            )?,
            frontend_requests: counter_vec(registry, &families::FRONTEND_REQUESTS)?,
            frontend_bytes_received: counter_vec(registry, &families::FRONTEND_BYTES_RECEIVED)?,
            frontend_bytes_sent: counter_vec(registry, &families::FRONTEND_BYTES_SENT)?,
            frontend_denied: counter_vec(registry, &families::FRONTEND_DENIED)?,
            tls_handshakes: counter_vec(registry, &families::TLS_HANDSHAKES)?,
            backend_responses: counter_vec(registry, &families::BACKEND_RESPONSES)?,
            backend_response_seconds: response_seconds,
            backend_connect_errors: counter_vec(registry, &families::BACKEND_CONNECT_ERRORS)?,
            backend_retries: counter_vec(registry, &families::BACKEND_RETRIES)?,
            backend_no_server: counter_vec(registry, &families::BACKEND_NO_SERVER)?,
            backend_servers: gauge_vec(registry, &families::BACKEND_SERVERS)?,
            server_up: gauge_vec(registry, &families::SERVER_UP)?,
            server_weight: gauge_vec(registry, &families::SERVER_WEIGHT)?,
            server_active_requests: gauge_vec(registry, &families::SERVER_ACTIVE_REQUESTS)?,
            server_health_check_failures: counter_vec(
                registry,
                &families::SERVER_HEALTH_CHECK_FAILURES,
            )?,
            server_requests: counter_vec(registry, &families::SERVER_REQUESTS)?,
            table_generation,
            table_swaps,
            table_build_seconds,
            config_reloads: counter_vec(registry, &families::CONFIG_RELOADS)?,
        };
        // Exported at 0 from the start, so that the first event of each
        // shows in `increase()` (SPEC §8).
        for result in RELOAD_RESULTS {
            metrics.config_reloads.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    /// Counts a reload with `result` `ok` or `error`.
    pub fn count_reload(&self, result: &str) {
        self.config_reloads.with_label_values(&[result]).inc();
    }
}

/// Handles of one frontend's series, resolved when a table is built.
#[derive(Clone)]
pub struct FrontendMetrics {
    /// Connections accepted.
    pub connections: IntCounter,
    /// Connections open.
    pub active_connections: IntGauge,
    /// HTTP requests.
    pub requests: IntCounter,
    /// Bytes from clients.
    pub bytes_received: IntCounter,
    /// Bytes to clients.
    pub bytes_sent: IntCounter,
    /// Refused by an access list.
    pub denied_access: IntCounter,
    /// Refused by the rate limit.
    pub denied_rate_limit: IntCounter,
    /// Refused by the per-client connection limit.
    pub denied_max_connections: IntCounter,
    /// TLS handshakes, for a frontend that terminates TLS.
    pub tls: Option<TlsHandshakes>,
    /// QUIC connections established, for a frontend that serves HTTP/3.
    pub http3_connections: Option<IntCounter>,
}

/// `zkgate_tls_handshakes_total` of one frontend, by result.
#[derive(Clone)]
pub struct TlsHandshakes {
    /// Full handshakes completed.
    pub ok: IntCounter,
    /// Abbreviated handshakes: a session resumed.
    pub resumed: IntCounter,
    /// Failed: no shared protocol or cipher, bad record, client gone, …
    pub error: IntCounter,
    /// Not finished within `client_header`.
    pub timeout: IntCounter,
}

impl FrontendMetrics {
    /// Resolves the handles of `frontend`.
    pub fn resolve(metrics: &Metrics, frontend: &str, tls: bool, http3: bool) -> Self {
        let l = &[frontend];
        let handshakes = |result| {
            metrics
                .tls_handshakes
                .with_label_values(&[frontend, result])
        };
        FrontendMetrics {
            connections: metrics.frontend_connections.with_label_values(l),
            active_connections: metrics.frontend_active_connections.with_label_values(l),
            requests: metrics.frontend_requests.with_label_values(l),
            bytes_received: metrics.frontend_bytes_received.with_label_values(l),
            bytes_sent: metrics.frontend_bytes_sent.with_label_values(l),
            denied_access: metrics
                .frontend_denied
                .with_label_values(&[frontend, "access"]),
            denied_rate_limit: metrics
                .frontend_denied
                .with_label_values(&[frontend, "rate_limit"]),
            denied_max_connections: metrics
                .frontend_denied
                .with_label_values(&[frontend, "max_connections"]),
            tls: tls.then(|| TlsHandshakes {
                ok: handshakes("ok"),
                resumed: handshakes("resumed"),
                error: handshakes("error"),
                timeout: handshakes("timeout"),
            }),
            http3_connections: http3.then(|| metrics.http3_connections.with_label_values(l)),
        }
    }
}

/// `zkgate_route_mirrored_total` of one frontend, by result.
#[derive(Clone)]
pub struct MirrorMetrics {
    /// The mirror answered (whatever its status).
    pub answered: IntCounter,
    /// No answer: no server, refused, reset or timed out.
    pub failed: IntCounter,
    /// The request's body was beyond the copy limit: not mirrored.
    pub too_large: IntCounter,
    /// Too many copies in flight: not mirrored.
    pub dropped: IntCounter,
}

impl MirrorMetrics {
    /// Resolves the handles of `frontend` (every result exported at 0).
    pub fn resolve(metrics: &Metrics, frontend: &str) -> Self {
        let [answered, failed, too_large, dropped] = MIRROR_RESULTS.map(|result| {
            metrics
                .route_mirrored
                .with_label_values(&[frontend, result])
        });
        MirrorMetrics {
            answered,
            failed,
            too_large,
            dropped,
        }
    }
}

/// `zkgate_compressed_responses_total` of one frontend, by coding.
#[derive(Clone)]
pub struct CompressionMetrics {
    by_coding: [IntCounter; 3],
}

impl CompressionMetrics {
    /// The codings, in the order of the handles.
    const CODINGS: [&'static str; 3] = ["zstd", "br", "gzip"];

    /// Resolves the handles of `frontend` (every coding exported at 0).
    pub fn resolve(metrics: &Metrics, frontend: &str) -> Self {
        CompressionMetrics {
            by_coding: Self::CODINGS.map(|coding| {
                metrics
                    .compressed_responses
                    .with_label_values(&[frontend, coding])
            }),
        }
    }

    /// Counts an answer compressed with `coding` (`zstd`, `br`, `gzip`).
    pub fn count(&self, coding: &str) {
        if let Some(i) = Self::CODINGS.iter().position(|c| *c == coding) {
            self.by_coding[i].inc();
        }
    }
}

/// Handles of one backend's series, resolved when a table is built.
#[derive(Clone)]
pub struct BackendMetrics {
    /// Responses by class, indexed by `status / 100 - 1`.
    pub responses: [IntCounter; 5],
    /// Time to response headers.
    pub response_seconds: Histogram,
    /// Failed connects.
    pub connect_errors: IntCounter,
    /// Retries.
    pub retries: IntCounter,
    /// No usable server.
    pub no_server: IntCounter,
}

impl BackendMetrics {
    /// Resolves the handles of `backend`.
    pub fn resolve(metrics: &Metrics, backend: &str) -> Self {
        let l = &[backend];
        BackendMetrics {
            responses: CODE_CLASSES.map(|class| {
                metrics
                    .backend_responses
                    .with_label_values(&[backend, class])
            }),
            response_seconds: metrics.backend_response_seconds.with_label_values(l),
            connect_errors: metrics.backend_connect_errors.with_label_values(l),
            retries: metrics.backend_retries.with_label_values(l),
            no_server: metrics.backend_no_server.with_label_values(l),
        }
    }

    /// Counts a response sent to a client.
    pub fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_with_fixed_labels_are_exported_at_zero_from_the_start() {
        let registry = Registry::new();
        Metrics::register(&registry).unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for result in RELOAD_RESULTS {
            let line = format!("{}{{result=\"{result}\"}} 0", names::CONFIG_RELOADS_TOTAL);
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn every_metric_is_in_the_operations_guide() {
        let guide = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let guide = std::fs::read_to_string(guide).unwrap();
        // Every name in `names`, read from this file's own text.
        // (A long constant is wrapped after its `=`.)
        let names: Vec<&str> = include_str!("lib.rs")
            .split(": &str =")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix("\"zkgate_"))
            .filter_map(|rest| rest.split_once('"'))
            .map(|(name, _)| name)
            .collect();
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            assert!(
                guide.contains(&format!("`zkgate_{name}")),
                "zkgate_{name} is not in docs/operations.md"
            );
        }
    }
}
