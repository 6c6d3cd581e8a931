//! A bodiless `GET` or `HEAD` from the full path (HTTP/2 and HTTP/3
//! clients, mostly) to an HTTP/1.1 server, sent and answered from the
//! request's own task: the head goes out in one write, the answer's head
//! is parsed by the fast path's rules (`fast::framing`: one decision of
//! where a server's response ends and whether its connection may be
//! reused, whichever way the answer goes on), and its body is read as the
//! client takes it ([`DirectBody`]). hyper's client would put a task of
//! its own and two channels between the request and the socket: about a
//! fifth of an HTTP/2 request's CPU.

use std::time::Instant;

use bytes::Buf;
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};
use zkgate_routing::{Backend, Server};

use super::attempt::{answer_within, Attempt};
use super::body::ProxyBody;
use super::direct_body::{header_map, DirectBody};
use crate::http::fast::framing::{self, FinalHead, Parsed, Seen};
use crate::http::headers::strip_hop_by_hop;
use crate::http::interim::InterimSink;
use crate::http::policy::edits::Edits;
use crate::http::policy::retry::head_arrived;
use crate::http::pool::{PoolKey, ServerConn, UpstreamBody};
use crate::http::request_body::BodyRead;

/// Whether `request` goes this way: a `GET` or `HEAD` without a body and
/// without a field that would frame one or upgrade the connection.
pub(super) fn takes(request: &Request<UpstreamBody>) -> bool {
    let method = request.method();
    let headers = request.headers();
    (method == Method::GET || method == Method::HEAD)
        && request.body().size_hint().exact() == Some(0)
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && !headers.contains_key(header::EXPECT)
        && !headers.contains_key(header::UPGRADE)
}

/// Sends `request` to `server` over a pooled connection (or a new one) and
/// reads the answer's head (see [`exchange`]).
pub(super) async fn attempt(
    backend: &Backend,
    server: &Server,
    request: Request<UpstreamBody>,
    read: &BodyRead,
    interim: Option<&InterimSink>,
) -> Attempt {
    let mut head = Vec::with_capacity(256);
    encode_head(&request, &mut head);
    let head_method = request.method() == Method::HEAD;
    let sent = Sent {
        head: &head,
        head_method,
        read,
        interim,
    };
    // The fields a client gets, by the rules of every path; the route's
    // edits are the request core's to make.
    let edits = Edits::default();
    match exchange(backend, server, sent, |head| header_map(head.kept(&edits))).await {
        Exchanged::Answered {
            status,
            made: headers,
            body,
        } => {
            let mut answer = Response::new(body);
            // httparse admits three digits only: a status code.
            *answer.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            *answer.version_mut() = Version::HTTP_11;
            *answer.headers_mut() = headers;
            Attempt::Answered(answer)
        }
        Exchanged::Retry => Attempt::Retry(request),
        Exchanged::Failed(status) => Attempt::Failed(status),
    }
}

/// A request head on its way to a server, and what the exchange needs of
/// its client's side.
#[derive(Clone, Copy)]
pub struct Sent<'a> {
    /// The head, as HTTP/1.1.
    pub head: &'a [u8],
    /// `HEAD`: the answer has no body whatever it says.
    pub head_method: bool,
    /// When the client's body was all read (at once, without one).
    pub read: &'a BodyRead,
    /// Where interim answers go, if the client's wire carries them.
    pub interim: Option<&'a InterimSink>,
}

/// What became of an [`exchange`].
pub enum Exchanged<T> {
    /// The server answered: its status, what `make` made of its head, and
    /// its body, read from the connection as the client takes it.
    Answered {
        status: u16,
        made: T,
        body: ProxyBody,
    },
    /// Nothing reached the server, or the request may be sent again.
    Retry,
    /// Failed in a way that must not be retried: answer with this.
    Failed(StatusCode),
}

/// Sends a bodiless request's head to `server` over a pooled connection
/// (or a new one) and reads the answer's head, of which `make` makes what
/// the client's wire needs (an error there is the server's: a 502). As
/// hyper's path does: a reused connection that fails before any answer is
/// replaced by a fresh one, and a request sent on a fresh one that failed
/// goes to another server if retries are on.
pub async fn exchange<T>(
    backend: &Backend,
    server: &Server,
    sent: Sent<'_>,
    mut make: impl FnMut(&FinalHead<'_, '_>) -> Result<T, &'static str>,
) -> Exchanged<T> {
    let address = server.address();
    let tls = backend.tls.as_deref();
    let key = PoolKey::new(address, tls);
    let mut cached = ServerConn::cached(key, Instant::now()).await;
    loop {
        let reused = cached.is_some();
        let mut conn = match cached.take() {
            Some(conn) => conn,
            // Rare, and its future large: boxed.
            None => match Box::pin(ServerConn::open(key, tls, backend.timeouts.connect)).await {
                Ok(conn) => conn,
                Err(err) => {
                    warn!(backend = %backend.name, server = %address, error = %err, "cannot connect to server");
                    backend.metrics.connect_errors.inc();
                    return Exchanged::Retry;
                }
            },
        };
        let active = server.state.start_request();
        let at = Instant::now();
        let exchange = send(
            &mut conn,
            sent.head,
            sent.head_method,
            sent.interim,
            &mut make,
        );
        match answer_within(exchange, backend.timeouts.server, sent.read, at).await {
            None => {
                debug!(backend = %backend.name, server = %address, "server timed out");
                return Exchanged::Failed(StatusCode::GATEWAY_TIMEOUT);
            }
            Some(Ok(answer)) => {
                head_arrived(backend, server, at);
                let reusable = answer.response.reusable && !answer.interim;
                let body = DirectBody::new(conn, key, answer.response.framing, reusable, at);
                return Exchanged::Answered {
                    status: answer.response.status,
                    made: answer.made,
                    body: ProxyBody::direct(body, active),
                };
            }
            Some(Err(NoAnswer::Malformed(why))) => {
                debug!(backend = %backend.name, server = %address, why, "bad response from server");
                return Exchanged::Failed(StatusCode::BAD_GATEWAY);
            }
            // A kept connection the server had closed: a fresh one.
            Some(Err(_)) if reused => continue,
            Some(Err(err)) => {
                debug!(backend = %backend.name, server = %address, error = %err, "request to server failed");
                return if backend.retries > 0 {
                    Exchanged::Retry
                } else {
                    Exchanged::Failed(StatusCode::BAD_GATEWAY)
                };
            }
        }
    }
}

/// The request's head as HTTP/1.1: its target in origin form and its
/// fields as they are, in order (what hyper's client writes for it).
fn encode_head(request: &Request<UpstreamBody>, out: &mut Vec<u8>) {
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Why no answer came.
enum NoAnswer {
    Io(std::io::Error),
    /// Closed before any byte of an answer.
    Closed,
    /// An answer no client may be given.
    Malformed(&'static str),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Io(err) => err.fmt(f),
            NoAnswer::Closed => f.write_str("closed before answering"),
            NoAnswer::Malformed(why) => f.write_str(why),
        }
    }
}

/// A final response head, read.
struct Answer<T> {
    response: framing::Response,
    /// What was made of its head.
    made: T,
    /// Interim (1xx) answers came first: where the exchange ends is the
    /// server's word only, and the connection is not reused (as on the
    /// fast path).
    interim: bool,
}

/// Writes the head and reads until a final response head is complete;
/// interim ones go to `sink`, if the client's wire can carry them.
async fn send<T>(
    conn: &mut ServerConn,
    head: &[u8],
    head_method: bool,
    sink: Option<&InterimSink>,
    make: &mut impl FnMut(&FinalHead<'_, '_>) -> Result<T, &'static str>,
) -> Result<Answer<T>, NoAnswer> {
    conn.io.write_all(head).await.map_err(NoAnswer::Io)?;
    let mut interim = false;
    loop {
        if !conn.buf.is_empty() {
            let parsed = framing::parse(&conn.buf, head_method, |seen| match seen {
                Seen::Final(head) => Some(make(head)),
                Seen::Interim {
                    status, headers, ..
                } => {
                    if let Some(sink) = sink {
                        pass_interim(sink, status, headers);
                    }
                    None
                }
            });
            match parsed.map_err(|bad| NoAnswer::Malformed(bad.0))? {
                Parsed::Final(response, made) => {
                    let made = made
                        .expect("made for a final head")
                        .map_err(NoAnswer::Malformed)?;
                    conn.buf.advance(response.len);
                    return Ok(Answer {
                        response,
                        made,
                        interim,
                    });
                }
                Parsed::Interim(len, _) => {
                    conn.buf.advance(len);
                    interim = true;
                    continue;
                }
                Parsed::Partial if conn.buf.len() > framing::MAX_RESPONSE_HEAD => {
                    return Err(NoAnswer::Malformed("response head too large"));
                }
                Parsed::Partial => {}
            }
        }
        if conn.read_more().await.map_err(NoAnswer::Io)? == 0 {
            return Err(if conn.buf.is_empty() && !interim {
                NoAnswer::Closed
            } else {
                NoAnswer::Malformed("the server closed within its response head")
            });
        }
    }
}

/// Hands an interim head to `sink`, without its hop-by-hop fields (and
/// without any field that is not valid).
fn pass_interim(sink: &InterimSink, status: u16, fields: &[httparse::Header<'_>]) {
    let Ok(status) = StatusCode::from_u16(status) else {
        return;
    };
    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = http::header::HeaderName::from_bytes(field.name.as_bytes());
        let value = http::HeaderValue::from_bytes(field.value);
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    strip_hop_by_hop(&mut headers);
    sink.send(status, headers);
}
