//! The admin listener (`admin.bind`): `/metrics`, `/healthz`, `/ready`.
//! It runs beside the data plane and never touches its hot path.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};

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

/// Why zkgate is not ready yet; empty when it is.
#[derive(Default)]
pub struct Readiness {
    reasons: RwLock<Vec<String>>,
}

impl Readiness {
    /// Starts not ready, for `reason`.
    pub fn not_ready(reason: &str) -> Arc<Self> {
        let readiness = Readiness::default();
        readiness.set(vec![reason.to_owned()]);
        Arc::new(readiness)
    }

    /// Replaces the reasons; an empty list means ready.
    pub fn set(&self, reasons: Vec<String>) {
        *self.reasons.write().unwrap_or_else(|e| e.into_inner()) = reasons;
    }

    /// The current reasons.
    pub fn reasons(&self) -> Vec<String> {
        self.reasons
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    /// Every metric zkgate exports.
    pub registry: Registry,
    /// What `/ready` reports.
    pub readiness: Arc<Readiness>,
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

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/ready" => {
                let reasons = self.readiness.reasons();
                if reasons.is_empty() {
                    text(StatusCode::OK, "ready\n".into())
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
                "not found: try /metrics, /healthz or /ready\n".into(),
            ),
        }
    }
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
