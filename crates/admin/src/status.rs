//! `/api/v1/status`: the routing table in service and the control plane's
//! facts as JSON — what each server is doing, and why.

use serde::Serialize;
use zkgate_routing::{clock, Health, RoutingTable, ServerSource};

use crate::report::Facts;

/// The whole status document.
#[derive(Serialize)]
pub struct Status {
    /// zkgate's version.
    pub version: &'static str,
    /// Generation of the routing table in service.
    pub table_generation: u64,
    #[serde(flatten)]
    pub(crate) facts: Facts,
    pub(crate) frontends: Vec<FrontendStatus>,
    pub(crate) backends: Vec<BackendStatus>,
}

#[derive(Serialize)]
pub(crate) struct FrontendStatus {
    pub(crate) name: String,
    pub(crate) mode: &'static str,
    pub(crate) binds: Vec<String>,
    pub(crate) active_connections: i64,
    pub(crate) connections_total: u64,
    pub(crate) requests_total: u64,
    pub(crate) bytes_received_total: u64,
    pub(crate) bytes_sent_total: u64,
}

#[derive(Serialize)]
pub(crate) struct BackendStatus {
    pub(crate) name: String,
    pub(crate) mode: &'static str,
    pub(crate) balance: String,
    pub(crate) panic: bool,
    /// Responses by class: `1xx` … `5xx`.
    pub(crate) responses: std::collections::BTreeMap<&'static str, u64>,
    pub(crate) connect_errors: u64,
    pub(crate) retries: u64,
    pub(crate) no_server: u64,
    /// Mean time to response headers, in milliseconds.
    pub(crate) mean_response_ms: Option<f64>,
    pub(crate) servers: Vec<ServerStatus>,
}

#[derive(Serialize)]
pub(crate) struct ServerStatus {
    pub(crate) address: String,
    pub(crate) source: &'static str,
    pub(crate) weight: u32,
    pub(crate) state: &'static str,
    /// `up`, `down`, `unknown`, or `unchecked` without active checks.
    pub(crate) health: &'static str,
    pub(crate) ejected: bool,
    /// Takes new traffic now.
    pub(crate) up: bool,
    pub(crate) active_requests: i64,
    pub(crate) requests_total: u64,
    pub(crate) health_check_failures: u64,
}

impl Status {
    /// The status of `table` with `facts`.
    pub fn of(table: &RoutingTable, facts: Facts) -> Self {
        let now = clock::now_ms();
        let mut frontends: Vec<FrontendStatus> = table
            .frontends()
            .map(|fe| FrontendStatus {
                name: fe.name.to_string(),
                mode: fe.mode.as_str(),
                binds: fe.binds.iter().map(ToString::to_string).collect(),
                active_connections: fe.metrics.active_connections.get(),
                connections_total: fe.metrics.connections.get(),
                requests_total: fe.metrics.requests.get(),
                bytes_received_total: fe.metrics.bytes_received.get(),
                bytes_sent_total: fe.metrics.bytes_sent.get(),
            })
            .collect();
        frontends.sort_by(|a, b| a.name.cmp(&b.name));
        let backends = table
            .backends()
            .iter()
            .map(|be| {
                let histogram = &be.metrics.response_seconds;
                let count = histogram.get_sample_count();
                BackendStatus {
                    name: be.name.to_string(),
                    mode: be.mode.as_str(),
                    balance: be.balance.name(),
                    panic: be.panic,
                    responses: zkgate_metrics::CODE_CLASSES
                        .iter()
                        .zip(&be.metrics.responses)
                        .map(|(class, counter)| (*class, counter.get()))
                        .collect(),
                    connect_errors: be.metrics.connect_errors.get(),
                    retries: be.metrics.retries.get(),
                    no_server: be.metrics.no_server.get(),
                    mean_response_ms: (count > 0)
                        .then(|| histogram.get_sample_sum() / count as f64 * 1e3),
                    servers: be
                        .servers
                        .iter()
                        .map(|s| ServerStatus {
                            address: s.state.label.to_string(),
                            source: match s.source {
                                ServerSource::Static => "static",
                                ServerSource::ZooKeeper => "zookeeper",
                            },
                            weight: s.weight,
                            state: s.admin.as_str(),
                            health: if !be.health_checked() {
                                "unchecked"
                            } else {
                                match s.state.health.get() {
                                    Health::Up => "up",
                                    Health::Down => "down",
                                    Health::Unknown => "unknown",
                                }
                            },
                            ejected: s.state.outlier.is_ejected(now),
                            up: s.state.up.get() == 1,
                            active_requests: s.state.active.get(),
                            requests_total: s.state.requests.get(),
                            health_check_failures: s.state.health_check_failures.get(),
                        })
                        .collect(),
                }
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            table_generation: table.generation,
            facts,
            frontends,
            backends,
        }
    }
}
