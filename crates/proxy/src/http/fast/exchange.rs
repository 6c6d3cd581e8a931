//! One bodiless request sent to a server of a backend and its response
//! streamed to the client, all from the client connection's own task: pick,
//! connect or reuse, retry where it is safe, record the outcome.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Buf;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};
use zkgate_routing::{ActiveRequest, Backend, Server};

use super::chunked::Chunked;
use super::framing::{self, Additions, Framing, Malformed};
use super::timer::Timer;
use crate::http::policy::edits::Edits;
use crate::http::policy::keys::sticky_cookie;
use crate::http::policy::retry::{head_arrived, Tries};
use crate::http::pool::{PoolKey, ServerConn};
use crate::Proxy;

/// How much is read at once for the rest of a large body. Large reads keep
/// bulk transfers fair between connections: with 64 KiB, 1 MiB responses on
/// 64 connections had a p99 ten times their median.
const BODY_READ: usize = 256 * 1024;

/// A request as the exchange needs it.
pub struct Outgoing<'a> {
    /// The head to send, rewritten for the server.
    pub head: &'a [u8],
    /// `HEAD`: the response has no body whatever it says.
    pub head_method: bool,
    /// May be sent again after a failure once sent (idempotent and bodiless).
    pub idempotent: bool,
    /// The server a sticky-session cookie names, if usable.
    pub sticky: Option<SocketAddr>,
    /// The balancer's key.
    pub key: Option<u64>,
    /// Tell the client the connection closes after this response.
    pub close: bool,
    /// When the request was complete, if its timing is logged.
    pub logged_since: Option<Instant>,
    /// The header fields changed on the response.
    pub edits: &'a Edits<'a>,
}

/// How an exchange ended.
pub enum Exchanged {
    /// A response was sent to the client (completely, unless `broken`).
    Answered {
        status: u16,
        server: SocketAddr,
        /// Body bytes sent.
        bytes: u64,
        /// The client connection cannot carry another request: the body was
        /// cut short (either side failed) or ends with the connection.
        broken: bool,
        /// When the response head arrived.
        head_after: Duration,
        /// When the response's last byte went to the client: the clock
        /// reading taken as its head arrived when the body came with it.
        ended: Instant,
    },
    /// Nothing was sent to the client: zkgate answers with this.
    Failed(StatusCode),
}

enum Attempt {
    Done(Exchanged),
    /// Nothing reached the server, or it may be sent again: try elsewhere.
    Retry,
}

/// Sends `request` to the `sticky` server if given, else the balancer's pick,
/// and on a failure that is safe to retry to another, up to `retries` times;
/// streams the response to `client`, using `out` as the write buffer.
pub async fn exchange<C: AsyncWrite + Unpin>(
    backend: &Backend,
    request: &Outgoing<'_>,
    client: &mut C,
    out: &mut Vec<u8>,
    timer: &mut Timer,
    proxy: &Proxy,
) -> Exchanged {
    let mut tries = Tries::new(proxy, backend, request.sticky, request.key);
    while let Some(server) = tries.next() {
        let outcome = attempt_on(backend, server, request, client, out, timer).await;
        let ok = match &outcome {
            Attempt::Done(Exchanged::Answered { status, .. }) => *status < 500,
            _ => false,
        };
        tries.record(server, ok);
        if let Attempt::Done(done) = outcome {
            return done;
        }
    }
    Exchanged::Failed(tries.exhausted())
}

/// Why no response head came from a server.
enum NoHead {
    /// The connection ended before a single byte of response.
    Closed,
    Malformed(&'static str),
    Io(std::io::Error),
}

async fn attempt_on<C: AsyncWrite + Unpin>(
    backend: &Backend,
    server: &Server,
    request: &Outgoing<'_>,
    client: &mut C,
    out: &mut Vec<u8>,
    timer: &mut Timer,
) -> Attempt {
    let address = server.address();
    let tls = backend.tls.as_deref();
    let key = PoolKey::new(address, tls);
    let cookie = sticky_cookie(backend, request.sticky, address);
    let additions = Additions {
        set_cookie: cookie.as_deref(),
        close: request.close,
        edits: request.edits,
    };
    // One clock reading for the pool's idle ages and, on a kept connection,
    // the start of the server's response time.
    let now = Instant::now();
    let mut cached = ServerConn::cached(key, now).await;
    loop {
        let reused = cached.is_some();
        let (mut conn, sent) = match cached.take() {
            Some(conn) => (conn, now),
            // Connecting (TCP, maybe TLS) is rare and its future large: boxed,
            // so that the future of every request stays small.
            None => match Box::pin(ServerConn::open(key, tls, backend.timeouts.connect)).await {
                Ok(conn) => (conn, Instant::now()),
                Err(err) => {
                    warn!(backend = %backend.name, server = %address, error = %err, "cannot connect to server");
                    backend.metrics.connect_errors.inc();
                    return Attempt::Retry;
                }
            },
        };
        let active = server.state.start_request();
        let deadline = tokio::time::Instant::from_std(sent) + backend.timeouts.server;
        let head = timer
            .within(
                deadline,
                send_and_read_head(&mut conn, request, &additions, out),
            )
            .await;
        let response = match head {
            Some(Ok(response)) => response,
            None => {
                debug!(backend = %backend.name, server = %address, "server timed out");
                out.clear();
                return Attempt::Done(Exchanged::Failed(StatusCode::GATEWAY_TIMEOUT));
            }
            // A kept connection the server had closed: a fresh one.
            Some(Err(NoHead::Closed)) if reused && request.idempotent => continue,
            Some(Err(failure)) => {
                out.clear();
                return no_head(backend, address, failure, request.idempotent);
            }
        };
        let answered = head_arrived(backend, server, sent);
        let head_after = request
            .logged_since
            .map(|since| since.elapsed())
            .unwrap_or_default();
        let streamed = stream_body(&mut conn, &response, client, out, timer, backend, active).await;
        let (bytes, broken, ended) = match streamed {
            Ok((bytes, with_head)) => {
                if response.reusable && conn.buf.is_empty() {
                    conn.checkin(key, sent);
                }
                let ended = if with_head { answered } else { Instant::now() };
                (bytes, response.framing == Framing::UntilClose, ended)
            }
            Err(StreamError {
                why,
                head_sent: false,
                ..
            }) => {
                debug!(backend = %backend.name, server = %address, why, "bad response from server");
                out.clear();
                return Attempt::Done(Exchanged::Failed(StatusCode::BAD_GATEWAY));
            }
            Err(StreamError { bytes, why, .. }) => {
                debug!(backend = %backend.name, server = %address, why, "response cut short");
                (bytes, true, answered)
            }
        };
        return Attempt::Done(Exchanged::Answered {
            status: response.status,
            server: address,
            bytes,
            broken,
            head_after,
            ended,
        });
    }
}

/// What becomes of a try whose request got no response head: sent, then
/// failed before any answer, only an idempotent, bodiless request may go
/// again.
fn no_head(backend: &Backend, address: SocketAddr, failure: NoHead, idempotent: bool) -> Attempt {
    match failure {
        NoHead::Malformed(why) => {
            debug!(backend = %backend.name, server = %address, why, "bad response from server");
        }
        NoHead::Io(err) => {
            debug!(backend = %backend.name, server = %address, error = %err, "request to server failed");
        }
        NoHead::Closed => {
            debug!(backend = %backend.name, server = %address, "server closed without answering");
        }
    }
    if idempotent && backend.retries > 0 {
        Attempt::Retry
    } else {
        Attempt::Done(Exchanged::Failed(StatusCode::BAD_GATEWAY))
    }
}

/// Writes the request and reads up to a final response head, whose
/// rewritten form is appended to `out`.
async fn send_and_read_head(
    conn: &mut ServerConn,
    request: &Outgoing<'_>,
    additions: &Additions<'_>,
    out: &mut Vec<u8>,
) -> Result<framing::Response, NoHead> {
    let written = async {
        conn.io.write_all(request.head).await?;
        conn.io.flush().await
    };
    if written.await.is_err() {
        return Err(NoHead::Closed);
    }
    let mut received = false;
    let mut interim = false;
    loop {
        if !conn.buf.is_empty() {
            match framing::scan(&conn.buf, request.head_method, additions, out) {
                Ok(framing::Scan::Final(mut response)) => {
                    conn.buf.advance(response.len);
                    // After interim answers, where this exchange ends is
                    // the server's word against ours: not reused.
                    response.reusable &= !interim;
                    return Ok(response);
                }
                Ok(framing::Scan::Interim(len)) => {
                    conn.buf.advance(len);
                    interim = true;
                    continue;
                }
                Ok(framing::Scan::Partial) if conn.buf.len() > framing::MAX_RESPONSE_HEAD => {
                    return Err(NoHead::Malformed("response head too large"))
                }
                Ok(framing::Scan::Partial) => {}
                Err(Malformed(why)) => return Err(NoHead::Malformed(why)),
            }
        }
        match conn.read_more().await {
            Ok(0) | Err(_) if !received => return Err(NoHead::Closed),
            Ok(0) => return Err(NoHead::Malformed("closed within the response head")),
            Ok(_) => received = true,
            Err(err) => return Err(NoHead::Io(err)),
        }
    }
}

/// A body that could not be sent whole.
struct StreamError {
    /// Body bytes sent before it failed.
    bytes: u64,
    why: &'static str,
    /// Whether the client got the head (else it may still get an error).
    head_sent: bool,
}

/// Sends the head in `out` and the body after it, as its framing delimits
/// it, to the client; the first write carries the head and whatever of the
/// body already arrived with it. Returns the body bytes sent and whether
/// they all came with the head.
async fn stream_body<C: AsyncWrite + Unpin>(
    conn: &mut ServerConn,
    response: &framing::Response,
    client: &mut C,
    out: &mut Vec<u8>,
    timer: &mut Timer,
    backend: &Backend,
    active: ActiveRequest,
) -> Result<(u64, bool), StreamError> {
    // The request stops counting as in flight on the server once its last
    // byte is read, before that byte is written to the client: a client
    // that sends its next request on reading the answer then finds the
    // server's count already down (least-connections picks by it).
    let mut active = Some(active);
    let mut body = BodyEnd::new(response.framing);
    let head_len = out.len();
    let mut sent = 0u64;
    let fail = |bytes, why| {
        Err(StreamError {
            bytes,
            why,
            head_sent: true,
        })
    };
    // What arrived with the head.
    let take = match body.take(&conn.buf) {
        Ok(take) => take,
        Err(Malformed(why)) => {
            return Err(StreamError {
                bytes: 0,
                why,
                head_sent: false,
            })
        }
    };
    out.extend_from_slice(&conn.buf[..take]);
    conn.buf.advance(take);
    // Counted before the client can see it, so that metrics read after a
    // response always include it.
    backend.metrics.count_response(response.status);
    if body.ended() {
        active = None;
    }
    let written = async {
        client.write_all(out).await?;
        client.flush().await
    };
    if written.await.is_err() {
        return fail(0, "client went away");
    }
    sent += (out.len() - head_len) as u64;
    if body.ended() {
        return Ok((sent, true));
    }
    let idle = backend.timeouts.server;
    let sent = stream_rest(conn, &mut body, client, timer, idle, sent, &mut active).await?;
    Ok((sent, false))
}

async fn stream_rest<C: AsyncWrite + Unpin>(
    conn: &mut ServerConn,
    body: &mut BodyEnd,
    client: &mut C,
    timer: &mut Timer,
    idle: Duration,
    mut sent: u64,
    active: &mut Option<ActiveRequest>,
) -> Result<u64, StreamError> {
    let fail = |bytes, why| {
        Err(StreamError {
            bytes,
            why,
            head_sent: true,
        })
    };
    while !body.ended() {
        conn.buf.clear();
        conn.buf.reserve(body.read_size());
        let deadline = tokio::time::Instant::now() + idle;
        match timer
            .within(deadline, conn.io.read_buf(&mut conn.buf))
            .await
        {
            None => return fail(sent, "server timed out"),
            Some(Err(_)) => return fail(sent, "server connection failed"),
            Some(Ok(0)) if body.framing == Framing::UntilClose => break,
            Some(Ok(0)) => return fail(sent, "server closed mid-body"),
            Some(Ok(_)) => {}
        }
        let take = match body.take(&conn.buf) {
            Ok(take) => take,
            Err(Malformed(why)) => return fail(sent, why),
        };
        if body.ended() {
            *active = None;
        }
        let written = async {
            client.write_all(&conn.buf[..take]).await?;
            client.flush().await
        };
        if written.await.is_err() {
            return fail(sent, "client went away");
        }
        conn.buf.advance(take);
        sent += take as u64;
    }
    Ok(sent)
}

/// Where a body ends, followed through the bytes that arrive.
pub(super) struct BodyEnd {
    framing: Framing,
    left: u64,
    chunked: Chunked,
}

impl BodyEnd {
    pub(super) fn new(framing: Framing) -> Self {
        BodyEnd {
            framing,
            left: match framing {
                Framing::Length(length) => length,
                _ => 0,
            },
            chunked: Chunked::default(),
        }
    }

    /// How many of `bytes` (which follow those taken before) are body.
    pub(super) fn take(&mut self, bytes: &[u8]) -> Result<usize, Malformed> {
        Ok(match self.framing {
            Framing::Empty => 0,
            Framing::Length(_) => {
                let take = self.left.min(bytes.len() as u64);
                self.left -= take;
                take as usize
            }
            Framing::Chunked => self.chunked.feed(bytes)?,
            Framing::UntilClose => bytes.len(),
        })
    }

    /// How much to read next: what is left if known, within [`BODY_READ`].
    fn read_size(&self) -> usize {
        match self.framing {
            Framing::Length(_) => self.left.clamp(1, BODY_READ as u64) as usize,
            _ => BODY_READ,
        }
    }

    pub(super) fn ended(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunked.done(),
            Framing::UntilClose => false,
        }
    }
}
