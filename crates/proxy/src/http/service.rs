//! One HTTP request: route it, pick a server, forward it, stream the answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::{header, uri, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tracing::{debug, warn};
use zkgate_routing::{Backend, FrontendId, Server};

use super::body::{ProxyBody, RequestDone};
use super::headers::{add_forwarded, request_host, strip_hop_by_hop};
use super::keys;
use super::response::error;
use super::upstream::{self, Sender};
use crate::io::ConnActivity;
use crate::Proxy;

/// The hyper service of one client connection.
#[derive(Clone)]
pub struct ProxyService {
    conn: Arc<ClientConn>,
}

struct ClientConn {
    proxy: Proxy,
    frontend: FrontendId,
    peer: SocketAddr,
    activity: Arc<ConnActivity>,
}

impl ProxyService {
    pub fn new(
        proxy: Proxy,
        frontend: FrontendId,
        peer: SocketAddr,
        activity: Arc<ConnActivity>,
    ) -> Self {
        ProxyService {
            conn: Arc::new(ClientConn {
                proxy,
                frontend,
                peer,
                activity,
            }),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let conn = Arc::clone(&self.conn);
        conn.activity.request_began();
        let done = RequestDone(Arc::clone(&conn.activity));
        Box::pin(async move {
            let response = conn.handle(request).await;
            Ok(response.map(|body| body.with_done(done)))
        })
    }
}

impl ClientConn {
    async fn handle(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        // One table for the whole request, even if a new one is published meanwhile.
        let table = self.proxy.table.load_full();
        let Some(frontend) = table.frontend(self.frontend) else {
            return error(StatusCode::SERVICE_UNAVAILABLE);
        };
        frontend.metrics.requests.inc();
        let host = request_host(request.uri(), request.headers());
        let Some(backend) = frontend
            .select_backend(host, request.uri().path(), request.headers())
            .cloned()
        else {
            return error(StatusCode::SERVICE_UNAVAILABLE);
        };
        let key = keys::hash_key(&backend.balance, &request, self.peer.ip());
        if let Err(status) = prepare(&mut request, frontend.forwarded_headers, self.peer) {
            backend.metrics.count_response(status.as_u16());
            return error(status);
        }
        let response = forward(&backend, request, key).await;
        backend.metrics.count_response(response.status().as_u16());
        response
    }
}

/// Rewrites a client request into the request sent to the server.
fn prepare(
    request: &mut Request<Incoming>,
    forwarded: bool,
    peer: SocketAddr,
) -> Result<(), StatusCode> {
    let authority = request.uri().authority().cloned();
    if authority.is_some() || request.uri().scheme().is_some() {
        // Absolute form (`GET http://host/path`): servers expect origin form.
        let path = request.uri().path_and_query().cloned();
        let mut parts = uri::Parts::default();
        parts.path_and_query = Some(path.unwrap_or_else(|| uri::PathAndQuery::from_static("/")));
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| StatusCode::BAD_REQUEST)?;
    }
    if request.method() == http::Method::CONNECT {
        return Err(StatusCode::BAD_REQUEST);
    }
    let headers = request.headers_mut();
    if let Some(authority) = authority {
        // RFC 9112 §3.2.2: the URI's authority wins over any Host header.
        let host = header::HeaderValue::from_str(authority.as_str())
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        headers.insert(header::HOST, host);
    }
    strip_hop_by_hop(headers);
    // zkgate answers `Expect: 100-continue` itself as soon as it reads the body.
    headers.remove(header::EXPECT);
    if forwarded {
        let host = headers.get(header::HOST).cloned();
        add_forwarded(headers, peer.ip(), host.as_ref());
    }
    *request.version_mut() = Version::HTTP_11;
    Ok(())
}

/// What became of one attempt on one server.
enum Attempt {
    Answered(Response<ProxyBody>),
    /// Nothing reached the server: the request can go elsewhere.
    NotSent(Request<Incoming>),
    /// The request was (maybe partly) sent and then failed: answer with this.
    Failed(StatusCode),
}

async fn forward(
    backend: &Backend,
    mut request: Request<Incoming>,
    key: Option<u64>,
) -> Response<ProxyBody> {
    let mut tried: Vec<SocketAddr> = Vec::new();
    for attempt in 0..=backend.retries {
        let server = if attempt == 0 {
            backend.pick(key)
        } else {
            backend.pick_untried(&tried)
        };
        let Some(server) = server else { break };
        if attempt > 0 {
            backend.metrics.retries.inc();
        }
        tried.push(server.address());
        match attempt_on(backend, server, request).await {
            Attempt::Answered(response) => return response,
            Attempt::Failed(status) => return error(status),
            Attempt::NotSent(unsent) => request = unsent,
        }
    }
    if tried.is_empty() {
        backend.metrics.no_server.inc();
        error(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        error(StatusCode::BAD_GATEWAY)
    }
}

async fn attempt_on(backend: &Backend, server: &Server, mut request: Request<Incoming>) -> Attempt {
    let address = server.address();
    let mut pooled = upstream::checkout(address);
    loop {
        let reused = pooled.is_some();
        let mut sender = match pooled.take() {
            Some(sender) => sender,
            None => match upstream::connect(address, backend.timeouts.connect).await {
                Ok(sender) => sender,
                Err(err) => {
                    warn!(backend = %backend.name, server = %address, error = %err, "cannot connect to server");
                    backend.metrics.connect_errors.inc();
                    return Attempt::NotSent(request);
                }
            },
        };
        if sender.ready().await.is_err() {
            if reused {
                continue;
            }
            backend.metrics.connect_errors.inc();
            return Attempt::NotSent(request);
        }
        let active = server.state.start_request();
        let started = Instant::now();
        let sent =
            tokio::time::timeout(backend.timeouts.server, sender.try_send_request(request)).await;
        match sent {
            Err(_) => {
                debug!(backend = %backend.name, server = %address, "server timed out");
                return Attempt::Failed(StatusCode::GATEWAY_TIMEOUT);
            }
            Ok(Ok(response)) => {
                backend
                    .metrics
                    .response_seconds
                    .observe(started.elapsed().as_secs_f64());
                return Attempt::Answered(relay(response, address, sender, active));
            }
            Ok(Err(mut failed)) => match failed.take_message() {
                // A reused connection the server had closed: try a fresh one.
                Some(unsent) if reused => request = unsent,
                Some(unsent) => return Attempt::NotSent(unsent),
                None => {
                    debug!(backend = %backend.name, server = %address, error = %failed.error(), "request to server failed");
                    return Attempt::Failed(StatusCode::BAD_GATEWAY);
                }
            },
        }
    }
}

/// The server's response as sent to the client.
fn relay(
    response: Response<Incoming>,
    address: SocketAddr,
    sender: Sender,
    active: zkgate_routing::ActiveRequest,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ProxyBody::upstream(body, (address, sender), active))
}
