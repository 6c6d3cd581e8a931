//! The request core's lane for the common request of a wire that keeps a
//! request's head as fields (HTTP/2): a bodiless `GET` or `HEAD` routed to
//! an HTTP/1.1 backend, carried with no `http::Request` and no header map
//! on either side, as the fast path carries an HTTP/1.1 one.
//!
//! Nothing is decided here that is not decided for every request: the
//! route, admission and server come from the one `decide`; the head for
//! the server is written as the fast path writes it (hop-by-hop fields
//! out, the route's edits, the forwarded fields); the server's answer is
//! read by the one set of framing rules (`fast::framing`), its fields kept
//! or dropped as the fast path keeps them, and encoded for the client by
//! its wire ([`Encode`]). A request the decision sends another way (an
//! HTTP/2 backend, compression) goes through the request core as an
//! `http::Request` after all; zkgate's own answers are the core's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use zkgate_config::Protocol;

use super::answer::error;
use super::body::{ProxyBody, RequestDone};
use super::direct::{exchange, Exchanged, Sent};
use super::mirror::{head_of as mirrored_head, spawn as mirror};
use super::service::{finish, own_answer, ClientConn, Outcome, ProxyService};
use crate::http::copy::CopiedBody;
use crate::http::fast::framing::{push_header as field, FinalHead};
use crate::http::headers::{is_field_value, is_hop_by_hop};
use crate::http::interim::InterimSink;
use crate::http::policy::edits::Edits;
use crate::http::policy::keys::{normalized_authority, sticky_cookie};
use crate::http::policy::retry::Tries;
use crate::http::policy::{decide, rewrite_target, Decision, RequestView, Routed};
use crate::http::request_body::{BodyRead, InboundBody};

/// A request the lane may carry, as its wire keeps it: a bodiless `GET` or
/// `HEAD` with an authority, no `host` field, and nothing that frames a
/// body, asks to switch protocols or expects a `100`.
pub trait LaneRequest: RequestView + Send + Sync + 'static {
    fn method(&self) -> &Method;
    fn scheme(&self) -> &str;
    /// The authority, which the server gets as `host`.
    fn authority(&self) -> &str;
    /// The regular fields, in order, names in lower case (at most one
    /// `cookie`).
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])>;
    /// The request for the request core; `None` if the fields make none
    /// (the lane takes only requests that do).
    fn into_request(self) -> Option<Request<()>>;
}

/// How a wire encodes an answer's head.
pub trait Encode {
    fn status(status: u16, block: &mut Vec<u8>);
    /// One field; `name` as the server spelled it.
    fn field(name: &str, value: &[u8], block: &mut Vec<u8>);
}

/// An answer from the lane.
pub enum Answer {
    /// The request core's own, or one from the core's way.
    Response(Response<ProxyBody>),
    /// A server's answer, its head already encoded for the wire.
    Encoded {
        status: u16,
        block: Vec<u8>,
        body: ProxyBody,
    },
}

type Answering = Pin<Box<dyn Future<Output = Answer> + Send>>;

impl ProxyService {
    /// Routes, forwards and answers one request by the lane; a server's
    /// interim answers go to `interim`.
    pub fn serve_lane<R: LaneRequest, E: Encode>(
        &self,
        request: R,
        interim: Option<InterimSink>,
    ) -> Answering {
        let service = self.clone();
        Box::pin(async move {
            let conn = &service.conn;
            // One table for the whole request, even if a new one is published meanwhile.
            let table = conn.proxy.table.load_full();
            let decision = decide(
                &conn.proxy,
                &table,
                conn.frontend,
                conn.peer.ip(),
                &request,
                |backend| backend.protocol == Protocol::Http1,
                false,
            );
            if let Decision::Elsewhere = decision {
                return Answer::Response(through_core(&service, request, interim).await);
            }
            conn.activity.request_began();
            let done = RequestDone(Arc::clone(&conn.activity));
            let logged = conn.pending_log(
                request.method().as_str(),
                std::str::from_utf8(request.path_and_query()).unwrap_or("/"),
            );
            let head = request.method() == Method::HEAD;
            let mut outcome = Outcome::default();
            let answer = match decision {
                Decision::Forward(ref routed) => {
                    send::<R, E>(conn, &request, routed, interim, &mut outcome).await
                }
                own => Answer::Response(own_answer(own, &mut outcome)),
            };
            if outcome.retired {
                conn.activity.frontend_retired();
            }
            match answer {
                Answer::Response(response) => {
                    let (parts, body) = response.into_parts();
                    let status = parts.status.as_u16();
                    let body = finish(body, status, head, outcome, done, logged);
                    Answer::Response(Response::from_parts(parts, body))
                }
                Answer::Encoded {
                    status,
                    block,
                    body,
                } => Answer::Encoded {
                    status,
                    block,
                    body: finish(body, status, head, outcome, done, logged),
                },
            }
        })
    }
}

/// A request the decision sends another way, through the request core.
async fn through_core<R: LaneRequest>(
    service: &ProxyService,
    request: R,
    interim: Option<InterimSink>,
) -> Response<ProxyBody> {
    match request.into_request() {
        Some(request) => {
            let request = request.map(|()| InboundBody::empty());
            match service.serve(request, interim).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        None => service.refuse(StatusCode::BAD_REQUEST),
    }
}

/// Sends a routed request to a server of its backend, trying another
/// where it is safe, and encodes the answer's head.
async fn send<R: LaneRequest, E: Encode>(
    conn: &ClientConn,
    request: &R,
    routed: &Routed<'_>,
    interim: Option<InterimSink>,
    outcome: &mut Outcome,
) -> Answer {
    conn.note_route(routed, outcome);
    let backend = routed.backend;
    let mut head = Vec::with_capacity(256);
    write_head(request, conn, routed, &mut head);
    if let Some(to) = routed.mirror {
        if let Some(copied) = mirrored_head(&head) {
            mirror(to, copied, CopiedBody::Ready(Bytes::new()));
        }
    }
    let read = BodyRead::default();
    let sent = Sent {
        head: &head,
        head_method: request.method() == Method::HEAD,
        read: &read,
        interim: interim.as_ref(),
    };
    let mut tries = Tries::new(&conn.proxy, backend, routed.sticky, routed.key);
    let status = loop {
        let Some(server) = tries.next() else {
            break tries.exhausted();
        };
        let cookie = sticky_cookie(backend, routed.sticky, server.address());
        let encode = |head: &FinalHead<'_, '_>| {
            encode_head::<E>(head, &routed.response_edits, cookie.as_deref())
        };
        match exchange(backend, server, sent, encode).await {
            Exchanged::Answered { status, made, body } => {
                tries.record(server, status < 500);
                outcome.server = Some(server.address());
                backend.metrics.count_response(status);
                return Answer::Encoded {
                    status,
                    block: made,
                    body,
                };
            }
            Exchanged::Retry => tries.record(server, false),
            Exchanged::Failed(status) => {
                tries.record(server, false);
                break status;
            }
        }
    };
    backend.metrics.count_response(status.as_u16());
    Answer::Response(error(status))
}

/// The request head for the server, as the fast path writes one: the
/// target rewritten if the route says so, `host` from the authority,
/// hop-by-hop fields dropped, the route's header edits made and, when
/// forwarded headers are on, X-Forwarded-For extended with the client and
/// X-Forwarded-Proto/-Host set; everything else as the client sent it.
fn write_head<R: LaneRequest>(
    request: &R,
    conn: &ClientConn,
    routed: &Routed<'_>,
    out: &mut Vec<u8>,
) {
    let edits = &routed.request_edits;
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    match routed.rules.and_then(|rules| rules.rewrite.as_ref()) {
        Some((from, to)) => rewrite_target(request.path_and_query(), from, to, out),
        None => out.extend_from_slice(request.path_and_query()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = normalized_authority(Some(request.scheme()), request.authority()).as_bytes();
    if !edits.drops(b"host") {
        field(out, b"host", host);
    }
    let forwarded = routed.forwarded_scheme.is_some();
    for (name, value) in request.fields() {
        let replaced = forwarded && is_forwarded(name);
        if replaced || is_hop_by_hop(name) || edits.drops(name) {
            continue;
        }
        field(out, name, value);
    }
    for (name, value) in edits.appended() {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let Some(scheme) = routed.forwarded_scheme else {
        out.extend_from_slice(b"\r\n");
        return;
    };
    out.extend_from_slice(b"x-forwarded-for: ");
    for (name, value) in request.fields() {
        if name == b"x-forwarded-for" && !value.is_empty() {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(conn.forwarded_for.as_bytes());
    out.extend_from_slice(b"\r\n");
    field(out, b"x-forwarded-proto", scheme.as_bytes());
    // The host the server gets, after the route's edits.
    let host = match edits.drops(b"host") {
        false => Some(host),
        true => edits
            .appended()
            .find(|(name, _)| *name == http::header::HOST)
            .map(|(_, value)| value.as_bytes()),
    };
    if let Some(host) = host {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(b"\r\n");
}

/// The X-Forwarded-* fields, which zkgate sets anew when it forwards them.
fn is_forwarded(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 3] = [
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    ];
    NAMES.contains(&name)
}

/// The answer's head encoded for the client's wire: its status, the
/// server's fields the client gets ([`FinalHead::kept`]), the route's
/// added fields and the sticky cookie, if any. A field no `http` header
/// could hold is the server's fault, as on the core's way.
fn encode_head<E: Encode>(
    head: &FinalHead<'_, '_>,
    edits: &Edits<'_>,
    cookie: Option<&str>,
) -> Result<Vec<u8>, &'static str> {
    let mut block = Vec::with_capacity(128);
    E::status(head.status(), &mut block);
    for (name, value) in head.kept(edits) {
        if !is_field_value(value) {
            return Err("a header field that is not one");
        }
        E::field(name, value, &mut block);
    }
    for (name, value) in edits.appended() {
        E::field(name.as_str(), value.as_bytes(), &mut block);
    }
    if let Some(cookie) = cookie {
        E::field("set-cookie", cookie.as_bytes(), &mut block);
    }
    Ok(block)
}
