//! The admin listener (`admin.bind`): `/metrics`, `/healthz`, `/ready`,
//! `/api/v1/status` and the `/stats` page. It runs beside the data plane and
//! never touches its hot path.

mod report;
mod stats;
mod status;

pub use report::{DiscoveryFacts, Facts, HeldMember, Reload, Report, ZooKeeperFacts};
pub use status::Status;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use zkgate_metrics::Metrics;
use zkgate_routing::RoutingTable;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    /// Every metric zkgate exports.
    pub registry: Registry,
    /// The control plane's facts (readiness among them).
    pub report: Arc<Report>,
    /// The routing table in service.
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// Live gauges the status reads at request time (ZooKeeper connection).
    pub metrics: Metrics,
}

impl Admin {
    /// Serves the admin endpoints on `listener` until the task is dropped.
    pub async fn serve(self, listener: std::net::TcpListener) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        info!(address = %listener.local_addr()?, "admin listening");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.answer(&request)) }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %err, "admin connection ended with an error");
                }
            });
        }
    }

    /// The control plane's facts, with the ZooKeeper connection read live.
    fn facts(&self) -> Facts {
        let mut facts = self.report.facts();
        if let Some(zk) = facts.zookeeper.as_mut() {
            zk.connected = self.metrics.zookeeper_connected.get() == 1;
            zk.session_expirations = self.metrics.zookeeper_session_expirations.get();
        }
        facts
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/api/v1/status" => {
                let status = Status::of(&self.table.load(), self.facts());
                match serde_json::to_vec_pretty(&status) {
                    Ok(json) => typed(StatusCode::OK, json, "application/json"),
                    Err(err) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot encode status: {err}\n"),
                    ),
                }
            }
            "/stats" => {
                let status = Status::of(&self.table.load(), self.facts());
                typed(
                    StatusCode::OK,
                    stats::render(&status).into_bytes(),
                    "text/html; charset=utf-8",
                )
            }
            "/ready" => {
                let facts = self.report.facts();
                let reasons = facts.not_ready;
                if reasons.is_empty() && facts.ready_notes.is_empty() {
                    text(StatusCode::OK, "ready\n".into())
                } else if reasons.is_empty() {
                    text(
                        StatusCode::OK,
                        format!("ready: {}\n", facts.ready_notes.join("; ")),
                    )
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", reasons.join("; ")),
                    )
                }
            }
            "/metrics" => {
                let encoder = TextEncoder::new();
                let mut body = Vec::new();
                match encoder.encode(&self.registry.gather(), &mut body) {
                    Ok(()) => {
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        response
                    }
                    Err(err) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot encode metrics: {err}\n"),
                    ),
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /healthz, /ready, /api/v1/status or /stats\n".into(),
            ),
        }
    }
}

fn typed(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}
