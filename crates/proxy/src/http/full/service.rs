//! One HTTP request: route it, pick a server, forward it, stream the answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, uri, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use zkgate_routing::{Compressing, FrontendId, Mirror};

use super::answer::{error, redirect, too_many_requests};
use super::body::{PendingLog, ProxyBody, RequestDone};
use super::compress::compress;
use super::forward::{forward, Forwarded, Sending};
use super::mirror::{spawn as spawn_mirror, CopiedHead};
use super::upgrade;
use crate::http::copy::{BodyCopy, CopiedBody, MAX_COPIED_BODY};
use crate::http::headers::{add_forwarded, client_address_value, strip_hop_by_hop};
use crate::http::interim::InterimSink;
use crate::http::policy::compression::compressible;
use crate::http::policy::edits::Edits;
use crate::http::policy::keys::{
    host_is_ambiguous, normalized_authority, sticky_cookie, target_is_valid,
};
use crate::http::policy::upgrade::{requested, requested_h2};
use crate::http::policy::{decide, refuse_malformed, rewrite_target, Decision, Routed};
use crate::http::request_body::InboundBody;
use crate::io::ConnActivity;
use crate::Proxy;

/// The hyper service of one client connection.
#[derive(Clone)]
pub struct ProxyService {
    pub(super) conn: Arc<ClientConn>,
}

pub(super) struct ClientConn {
    pub(super) proxy: Proxy,
    pub(super) frontend: FrontendId,
    pub(super) peer: SocketAddr,
    /// The client's address as an `X-Forwarded-For` entry, formatted once
    /// per connection rather than per request.
    pub(super) forwarded_for: header::HeaderValue,
    pub(super) activity: Arc<ConnActivity>,
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
                forwarded_for: client_address_value(peer.ip()),
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
        // hyper's HTTP/1.1 server cannot send interim answers.
        self.serve(request.map(InboundBody::Hyper), None)
    }
}

impl ProxyService {
    /// The answer to a request its wire refused before it could be one
    /// (an HTTP/2 `:method` that is not a method): counted and answered
    /// as the request core answers any malformed request.
    pub fn refuse(&self, status: StatusCode) -> Response<ProxyBody> {
        let table = self.conn.proxy.table.load();
        match refuse_malformed(&table, self.conn.frontend, status) {
            Decision::Refuse { refused, .. } => error(refused.status),
            _ => error(status),
        }
    }

    /// Routes, forwards and answers one request, from whichever wire;
    /// a server's interim answers go to `interim`, if the wire carries them.
    pub fn serve(
        &self,
        request: Request<InboundBody>,
        interim: Option<InterimSink>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>> {
        let conn = Arc::clone(&self.conn);
        conn.activity.request_began();
        let done = RequestDone(Arc::clone(&conn.activity));
        Box::pin(async move {
            // Only a logged request pays for copying its method and path.
            let logged = conn.pending_log(
                request.method().as_str(),
                request.uri().path_and_query().map_or("/", |p| p.as_str()),
            );
            let mut outcome = Outcome::default();
            let http1 = request.version() < http::Version::HTTP_2;
            let head = request.method() == http::Method::HEAD;
            let response = conn.handle(request, interim, &mut outcome).await;
            let (mut parts, body) = response.into_parts();
            if outcome.retired {
                if !http1 {
                    conn.activity.frontend_retired();
                } else if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                    parts.headers.insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                }
            }
            let body = finish(body, parts.status.as_u16(), head, outcome, done, logged);
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// A request's answer body readied for the client, whichever way it was
/// served: a `HEAD` answer without a body (RFC 9110 §9.3.2, over HTTP/2 as
/// over HTTP/1.1), the request marked done when the body is, and its
/// access log line written then.
pub(super) fn finish(
    mut body: ProxyBody,
    status: u16,
    head: bool,
    outcome: Outcome,
    done: RequestDone,
    logged: Option<PendingLog>,
) -> ProxyBody {
    if head {
        body.drop_message();
    }
    let mut body = body.with_done(done);
    if let Some(mut pending) = logged {
        pending.frontend = outcome.frontend;
        pending.backend = outcome.backend;
        pending.server = outcome.server;
        pending.ids = outcome.ids;
        pending.status = status;
        pending.headers_after = pending.started.elapsed();
        body = body.with_log(pending);
    }
    body
}

/// Where a request went, for the access log.
#[derive(Default)]
pub(super) struct Outcome {
    /// Its frontend was removed by a reload: the connection closes after it.
    pub(super) retired: bool,
    pub(super) frontend: Option<Arc<str>>,
    pub(super) backend: Option<Arc<str>>,
    pub(super) server: Option<SocketAddr>,
    /// The request id and trace id, when logged.
    pub(super) ids: Option<(String, String)>,
}

impl ClientConn {
    // The functions below return an `async` block rather than being `async
    // fn`s: an `async fn` keeps its arguments twice in its future (the
    // request alone is 264 bytes), and every request's future is boxed.
    #[allow(clippy::manual_async_fn)]
    fn handle<'s>(
        &'s self,
        request: Request<InboundBody>,
        interim: Option<InterimSink>,
        outcome: &'s mut Outcome,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 's {
        async move {
            // One table for the whole request, even if a new one is published meanwhile.
            let table = self.proxy.table.load_full();
            let checked = check_framing(request.headers()).and_then(|()| {
                if host_is_ambiguous(&request) || !target_is_valid(&request) {
                    return Err(StatusCode::BAD_REQUEST);
                }
                if request.version() >= Version::HTTP_2 {
                    let protocol = request.extensions().get::<hyper::ext::Protocol>();
                    requested_h2(request.method(), protocol.map(hyper::ext::Protocol::as_str))
                } else {
                    requested(request.headers())
                }
            });
            let (decision, protocol) = match checked {
                Err(status) => (refuse_malformed(&table, self.frontend, status), None),
                // This adapter carries every backend protocol.
                Ok(protocol) => {
                    let decision = decide(
                        &self.proxy,
                        &table,
                        self.frontend,
                        self.peer.ip(),
                        &request,
                        |_| true,
                        true,
                    );
                    (decision, protocol)
                }
            };
            match decision {
                // By reference: moved, the decision would take room twice.
                Decision::Forward(ref routed) => {
                    self.send(request, routed, protocol, interim, outcome).await
                }
                own => own_answer(own, outcome),
            }
        }
    }

    /// Starts a request's access log line, if requests are logged.
    pub(super) fn pending_log(&self, method: &str, path: &str) -> Option<PendingLog> {
        let log = self.proxy.access_log.as_ref()?;
        Some(PendingLog {
            log: Arc::clone(log),
            client: self.peer,
            frontend: None,
            backend: None,
            server: None,
            method: method.to_owned(),
            path: path.to_owned(),
            status: 0,
            started: Instant::now(),
            headers_after: Duration::ZERO,
            ids: None,
        })
    }

    /// Notes where a routed request goes, for the access log.
    pub(super) fn note_route(&self, routed: &Routed<'_>, outcome: &mut Outcome) {
        outcome.retired = routed.retired;
        outcome.frontend = Some(Arc::clone(&routed.frontend.name));
        outcome.backend = Some(Arc::clone(&routed.backend.name));
        if self.proxy.access_log.is_some() {
            outcome.ids = routed.ids.as_ref().map(|ids| {
                let id = ids.request_id.to_str().unwrap_or_default().to_owned();
                (id, ids.trace_id().to_owned())
            });
        }
    }

    /// Sends a routed request to its backend (or through a protocol
    /// switch) and readies the answer for the client: the sticky cookie,
    /// the route's response rules, compression.
    #[allow(clippy::manual_async_fn)]
    fn send<'s, 't: 's>(
        &'s self,
        mut request: Request<InboundBody>,
        routed: &'s Routed<'t>,
        protocol: Option<header::HeaderValue>,
        interim: Option<InterimSink>,
        outcome: &'s mut Outcome,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + use<'s, 't> {
        async move {
            self.note_route(routed, outcome);
            let backend = Arc::clone(routed.backend);
            let frontend = Arc::clone(routed.frontend);
            let (key, sticky) = (routed.key, routed.sticky);
            let head = request.method() == http::Method::HEAD;
            let upgrade = protocol.map(|protocol| upgrade::Switch::of(&mut request, protocol));
            let rewrite = routed.rules.and_then(|rules| rules.rewrite.as_ref());
            if let Err(status) = prepare(
                &mut request,
                &Upstream {
                    scheme: routed.forwarded_scheme,
                    client: &self.forwarded_for,
                    rewrite,
                    edits: &routed.request_edits,
                },
                backend.protocol == zkgate_config::Protocol::Http2,
            ) {
                backend.metrics.count_response(status.as_u16());
                return error(status);
            }
            // The table stays loaded until the response head is back (its
            // route's response rules apply to it); the body streams without it.
            let forwarded = match upgrade {
                Some(switch) => {
                    // The clients of server connections find the sink among
                    // the request's extensions (a switch is rare: the map's
                    // allocation does not matter here).
                    if let Some(sink) = interim {
                        request.extensions_mut().insert(sink);
                    }
                    let idle = backend.timeouts.tunnel.min(frontend.timeouts.tunnel);
                    // Rare and large: boxed, so that every other request's future stays small.
                    Box::pin(upgrade::forward(
                        &backend,
                        request,
                        switch,
                        key,
                        idle,
                        &self.proxy,
                    ))
                    .await
                }
                None => {
                    let sending = Sending {
                        client_idle: frontend.timeouts.client_idle,
                        key,
                        sticky,
                        copy: routed.mirror.and_then(|mirror| copy_for(mirror, &request)),
                        interim,
                    };
                    forward(&backend, request, sending, &self.proxy).await
                }
            };
            let response = match forwarded {
                Forwarded::Answered(mut response, server) => {
                    outcome.server = Some(server);
                    // The route's rules apply to the server's fields; the
                    // sticky cookie is zkgate's, added after (as on the fast path).
                    routed.response_edits.apply(response.headers_mut());
                    if let Some(cookie) = sticky_cookie(&backend, sticky, server)
                        .and_then(|c| header::HeaderValue::from_str(&c).ok())
                    {
                        response.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                    if let (Some(algorithm), Some(compression)) =
                        (routed.compress, &frontend.compression)
                    {
                        compress_answer(&mut response, head, algorithm, compression);
                    }
                    response
                }
                Forwarded::Failed(status) => error(status),
            };
            backend.metrics.count_response(response.status().as_u16());
            response
        }
    }
}

/// zkgate's own answer to a request the request core did not route to a
/// backend: refused, redirected, or (never from an adapter that carries
/// every protocol) meant for another way.
pub(super) fn own_answer(decision: Decision<'_>, outcome: &mut Outcome) -> Response<ProxyBody> {
    match decision {
        Decision::Refuse {
            frontend,
            retired,
            refused,
        } => {
            outcome.retired = retired;
            outcome.frontend = frontend.map(|f| Arc::clone(&f.name));
            match refused.retry_after {
                Some(wait) => too_many_requests(wait),
                None => error(refused.status),
            }
        }
        Decision::Redirect {
            frontend,
            retired,
            status,
            location,
        } => {
            outcome.retired = retired;
            outcome.frontend = Some(Arc::clone(&frontend.name));
            redirect(status, location)
        }
        Decision::Forward(_) | Decision::Elsewhere => error(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Compresses a server's answer (to a `HEAD` if `head`) with `algorithm`,
/// if it is compressible.
fn compress_answer(
    response: &mut Response<ProxyBody>,
    head: bool,
    algorithm: zkgate_config::Algorithm,
    compression: &Compressing,
) {
    let config = &compression.config;
    if !compressible(config, head, response.status(), response.headers()) {
        return;
    }
    if let Some(compressor) = compress(response.headers_mut(), algorithm, config) {
        response.body_mut().compress(compressor);
        compression.metrics.count(algorithm.token());
    }
}

/// Sends a copy of `request` (as prepared for the server) to `mirror`: at
/// once if it has no body; else once its body was read, through the
/// returned copy, unless it states a length beyond the copy limit.
fn copy_for(mirror: &Mirror, request: &Request<InboundBody>) -> Option<BodyCopy> {
    use http_body::Body as _;
    let head = CopiedHead {
        method: request.method().clone(),
        uri: request.uri().clone(),
        headers: request.headers().clone(),
    };
    if request.body().is_end_stream() {
        spawn_mirror(mirror, head, CopiedBody::Ready(bytes::Bytes::new()));
        return None;
    }
    let stated = request.body().size_hint().exact();
    if stated.is_some_and(|length| length > MAX_COPIED_BODY as u64) {
        mirror.metrics.too_large.inc();
        return None;
    }
    let (copy, body) = BodyCopy::new();
    spawn_mirror(mirror, head, body);
    Some(copy)
}

/// What the server's request gets besides the client's.
struct Upstream<'a> {
    /// With forwarded headers on: the scheme told in `X-Forwarded-Proto`.
    scheme: Option<&'static str>,
    /// The client's address, for `X-Forwarded-For`.
    client: &'a header::HeaderValue,
    /// The route's `path_prefix` and its replacement.
    rewrite: Option<&'a (Box<str>, Box<str>)>,
    /// The route's header rules and zkgate's own fields.
    edits: &'a Edits<'a>,
}

/// Rewrites a client request into the request sent to the server, in the
/// same order as the fast path's `write_upstream_head`: the target (origin
/// form, rewritten by the route), hop-by-hop headers out, the route's
/// edits, then the forwarded headers.
fn prepare(
    request: &mut Request<InboundBody>,
    upstream: &Upstream<'_>,
    to_h2: bool,
) -> Result<(), StatusCode> {
    let bodiless = {
        use http_body::Body as _;
        request.body().is_end_stream()
    };
    let scheme = request.uri().scheme().cloned();
    let authority = request.uri().authority().cloned();
    if let Some((from, to)) = upstream.rewrite {
        let mut target = Vec::new();
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        rewrite_target(path.as_bytes(), from, to, &mut target);
        let path = uri::PathAndQuery::try_from(target).map_err(|_| StatusCode::BAD_REQUEST)?;
        let mut parts = uri::Parts::default();
        parts.path_and_query = Some(path);
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| StatusCode::BAD_REQUEST)?;
    } else if authority.is_some() || request.uri().scheme().is_some() {
        // Absolute form (`GET http://host/path`): servers expect origin
        // form. Rebuilt from its text: the parser keeps an empty path (of
        // `http://host#fragment`) that reads as `/` but would be written
        // as nothing.
        let path = request
            .uri()
            .path_and_query()
            .map(uri::PathAndQuery::as_str);
        let path = uri::PathAndQuery::try_from(path.unwrap_or("/"))
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        let mut parts = uri::Parts::default();
        parts.path_and_query = Some(path);
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| StatusCode::BAD_REQUEST)?;
    }
    // A tunnel to anywhere is not a reverse proxy's to open; an HTTP/2
    // extended CONNECT (a protocol switch) was taken out by `Switch::of`.
    if request.method() == http::Method::CONNECT
        && request.extensions().get::<hyper::ext::Protocol>().is_none()
    {
        return Err(StatusCode::BAD_REQUEST);
    }
    let headers = request.headers_mut();
    if let Some(authority) = authority {
        // RFC 9112 §3.2.2: the URI's authority wins over any Host header.
        let host =
            normalized_authority(scheme.as_ref().map(uri::Scheme::as_str), authority.as_str());
        let host = header::HeaderValue::from_str(host).map_err(|_| StatusCode::BAD_REQUEST)?;
        headers.insert(header::HOST, host);
    }
    // gRPC needs `te: trailers` on the way to an HTTP/2 server; every other `te` is hop-by-hop.
    let trailers = to_h2
        && headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    strip_hop_by_hop(headers);
    if !to_h2 {
        join_cookies(headers);
    }
    if trailers {
        headers.insert(header::TE, header::HeaderValue::from_static("trailers"));
    }
    if !to_h2 && !bodiless && !headers.contains_key(header::CONTENT_LENGTH) {
        // A body of unstated length (from an HTTP/2 client) goes to an
        // HTTP/1.1 server chunked, whatever the method: hyper would drop a
        // GET's body otherwise.
        headers.insert(
            header::TRANSFER_ENCODING,
            header::HeaderValue::from_static("chunked"),
        );
    }
    // zkgate answers `Expect: 100-continue` itself as soon as it reads the body.
    headers.remove(header::EXPECT);
    upstream.edits.apply(headers);
    if let Some(scheme) = upstream.scheme {
        let host = headers.get(header::HOST).cloned();
        add_forwarded(headers, upstream.client, scheme, host.as_ref());
    }
    *request.version_mut() = Version::HTTP_11;
    Ok(())
}

/// HTTP/2 and HTTP/3 clients may split `Cookie` into one field per
/// cookie (RFC 9113 §8.2.3, RFC 9114 §4.2.1); an HTTP/1.1 server expects
/// one field (RFC 6265 §5.4), so they are joined with `; `.
fn join_cookies(headers: &mut http::HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(header::HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = header::HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Refuses message framings that request smuggling relies on (RFC 9112
/// §6.1, §6.3): a `Content-Length` that is not one number, `Transfer-Encoding`
/// together with `Content-Length`, more than one `Transfer-Encoding`, or any
/// coding but a single `chunked`.
fn check_framing(headers: &http::HeaderMap) -> Result<(), StatusCode> {
    // One length, of digits only (HTTP/2 and HTTP/3 carry the header
    // unparsed: an empty or odd one must not reach an HTTP/1.1 server).
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(length) = lengths.next() {
        let digits = !length.is_empty() && length.as_bytes().iter().all(u8::is_ascii_digit);
        if !digits || length.len() > 19 || lengths.next().is_some_and(|other| other != length) {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else {
        return Ok(());
    };
    let single_chunked = coding
        .to_str()
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("chunked"));
    if !single_chunked || codings.next().is_some() || headers.contains_key(header::CONTENT_LENGTH) {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(())
}
