//! The HTTP/1.1 fast path: the common request — bodiless, origin-form, to
//! an HTTP/1.1 backend — served from the client connection's own task with
//! no per-request allocation: the head is parsed in place, the server gets
//! it with only hop-by-hop and X-Forwarded-* headers rewritten, and the
//! response's head and body are forwarded as bytes (chunked stays chunked).
//!
//! Anything else (a request body, `Upgrade`, `Expect`, HTTP/1.0, an
//! absolute URI, an HTTP/2 backend, a malformed or oversized head) hands the
//! connection, with the bytes read so far, to the hyper-based path for the
//! rest of its life; that path also gives malformed requests their answers.

mod ascii;
mod chunked;
mod exchange;
mod framing;
mod head;
mod timer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zkgate_config::Protocol;
use zkgate_routing::{Frontend, FrontendId};

use self::exchange::{exchange, Exchanged, Outgoing};
use self::head::{Field, Head, Role, Scan};
use self::timer::Timer;
use super::policy::client_wait::{closes_on_shutdown, Waiting};
use super::policy::{decide, retry, Decision, Routed};
use super::response::{retry_after_seconds, write_error, REQUEST_TIMEOUT_RAW};
use super::MAX_HEAD_BYTES;
use crate::access_log::HttpEntry;
use crate::connections::ConnectionGuard;
use crate::io::{ConnActivity, CountingIo};
use crate::stream::Stream;
use crate::Proxy;

/// The counted client socket.
pub type ClientIo = CountingIo<Stream>;

/// How a connection left the fast path.
pub enum End {
    /// It is finished (closed by either side, timed out, or shut down).
    Closed,
    /// The hyper path takes it over, starting with these unread bytes.
    Handover(ClientIo, BytesMut),
}

impl Client<'_> {
    /// Hands the connection to the hyper path, its activity brought up to date.
    fn handover(self) -> End {
        self.activity.resume(self.served, !self.buf.is_empty());
        End::Handover(self.io, self.buf)
    }
}

/// A client connection on the fast path.
struct Client<'a> {
    io: ClientIo,
    /// Read from the client and not yet served.
    buf: BytesMut,
    fields: Vec<Field>,
    /// The head for the server.
    upstream: Vec<u8>,
    /// What goes to the client next.
    out: Vec<u8>,
    peer: SocketAddr,
    /// The client's address as X-Forwarded-For text.
    client_text: &'a [u8],
    frontend: FrontendId,
    proxy: &'a Proxy,
    activity: &'a ConnActivity,
    /// Requests served on this connection.
    served: u64,
    /// When the last response from a server ended, if known without reading
    /// the clock again.
    ended: Option<Instant>,
    /// For every deadline of the connection, the client's and the servers'.
    timer: Timer,
}

/// Serves requests until the connection ends or needs the hyper path.
pub async fn serve(
    io: ClientIo,
    peer: SocketAddr,
    client_text: &[u8],
    frontend: &Frontend,
    proxy: &Proxy,
    activity: &ConnActivity,
    guard: &mut ConnectionGuard,
) -> End {
    let mut idle_since = tokio::time::Instant::now();
    let mut client = Client {
        io,
        buf: BytesMut::with_capacity(READ_SIZE),
        fields: Vec::with_capacity(16),
        upstream: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        peer,
        client_text,
        frontend: frontend.id,
        proxy,
        activity,
        served: 0,
        ended: None,
        timer: Timer::new(idle_since + Waiting::FirstRequest.limit(&frontend.timeouts)),
    };
    let mut stopping = *guard.shutdown.borrow();
    let mut watching = !stopping;
    // Waited on for the whole connection, not per request: registering a
    // waiter with the channel (and removing it) took ~3 % of a request's
    // instructions.
    let mut shutdown = guard.shutdown.clone();
    let shutdown_begins = shutdown.changed();
    tokio::pin!(shutdown_begins);
    // When the first bytes of a head that did not come whole were seen.
    let mut head_since = None;
    loop {
        // Read until the buffer starts with a complete head.
        let parsed = loop {
            if !client.buf.is_empty() {
                match head::scan(&client.buf, &mut client.fields) {
                    Scan::Complete(parsed) => break parsed,
                    Scan::Other => return client.handover(),
                    Scan::Partial if client.buf.len() >= MAX_HEAD_BYTES => {
                        return client.handover()
                    }
                    Scan::Partial => {
                        head_since.get_or_insert_with(tokio::time::Instant::now);
                    }
                }
            } else if stopping && closes_on_shutdown(client.served > 0) {
                return End::Closed;
            }
            let (waiting, since) = match head_since {
                Some(since) => (Waiting::RestOfHead, since),
                None if client.served == 0 => (Waiting::FirstRequest, idle_since),
                None => (Waiting::NextRequest, idle_since),
            };
            let deadline = since + waiting.limit(&frontend.timeouts);
            if client.buf.capacity() - client.buf.len() < MIN_READ {
                client.buf.reserve(READ_SIZE);
            }
            tokio::select! {
                biased;
                read = client.io.read_buf(&mut client.buf) => match read {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                },
                () = client.timer.until(deadline) => {
                    if waiting.answers_timeout() {
                        // Best effort: the client may already be gone.
                        if client.io.write_all(&REQUEST_TIMEOUT_RAW).await.is_ok() {
                            client.io.shutdown().await.ok();
                        }
                    }
                    return End::Closed;
                }
                changed = &mut shutdown_begins, if watching => {
                    watching = false;
                    stopping = changed.is_ok();
                }
            }
        };
        head_since = None;
        let mut closing = parsed.close || stopping || *guard.shutdown.borrow();
        match client.request(parsed, closing).await {
            Served::Next => {}
            Served::Last => closing = true,
            Served::Close => return End::Closed,
            Served::Hyper => return client.handover(),
        }
        client.buf.advance(parsed.len);
        client.served += 1;
        if closing {
            client.io.shutdown().await.ok();
            return End::Closed;
        }
        idle_since = client
            .ended
            .take()
            .map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
    }
}

/// How much is read from a client at once.
const READ_SIZE: usize = 8 * 1024;
/// Below this much free space, the read buffer grows before a read.
const MIN_READ: usize = 1024;

/// `served`, but the last on the connection if `last`.
fn last_if(served: Served, last: bool) -> Served {
    match served {
        Served::Next if last => Served::Last,
        served => served,
    }
}

/// What follows a request.
enum Served {
    /// The connection may carry another request.
    Next,
    /// It was the last: the response said so, and the connection closes.
    Last,
    /// It must close.
    Close,
    /// The hyper path must serve this request (and the rest).
    Hyper,
}

impl Client<'_> {
    async fn request(&mut self, parsed: head::Parsed, close: bool) -> Served {
        let logged_since = self.proxy.access_log.is_some().then(Instant::now);
        // One table for the whole request, even if a new one is published meanwhile.
        let table = self.proxy.table.load_full();
        let head = Head {
            buf: &self.buf,
            fields: &self.fields,
            parsed,
        };
        let decision = decide(
            self.proxy,
            &table,
            self.frontend,
            self.peer.ip(),
            &head,
            |backend| backend.protocol == Protocol::Http1,
        );
        let (routed, close) = match decision {
            Decision::Forward(routed) => {
                let close = close || routed.retired;
                (routed, close)
            }
            Decision::Refuse {
                frontend: None,
                refused,
                ..
            } => return self.answer(refused.status, None, close).await,
            Decision::Refuse {
                frontend: Some(frontend),
                retired,
                refused,
            } => {
                let retry_after = refused.retry_after.map(retry_after_seconds);
                let served = self
                    .refuse(
                        frontend,
                        parsed,
                        refused.status,
                        retry_after,
                        close || retired,
                        logged_since,
                    )
                    .await;
                return last_if(served, retired);
            }
            Decision::Elsewhere => return Served::Hyper,
        };
        let retired = routed.retired;
        let served = self.forward(routed, parsed, close, logged_since).await;
        last_if(served, retired)
    }

    async fn forward(
        &mut self,
        routed: Routed<'_>,
        parsed: head::Parsed,
        close: bool,
        logged_since: Option<Instant>,
    ) -> Served {
        let Routed {
            frontend, backend, ..
        } = routed;
        let head = Head {
            buf: &self.buf,
            fields: &self.fields,
            parsed,
        };
        write_upstream_head(
            &head,
            routed.forwarded_scheme,
            self.client_text,
            &mut self.upstream,
        );
        let outgoing = Outgoing {
            head: &self.upstream,
            head_method: head.is_head(),
            idempotent: retry::idempotent(head.method_bytes()),
            sticky: routed.sticky,
            key: routed.key,
            close,
            logged_since,
        };
        self.out.clear();
        let exchanged = exchange(
            backend,
            &outgoing,
            &mut self.io,
            &mut self.out,
            &mut self.timer,
            self.proxy,
        )
        .await;
        let (status, server, bytes, headers_after, served) = match exchanged {
            Exchanged::Answered {
                status,
                server,
                bytes,
                broken,
                head_after,
                ended,
            } => {
                self.ended = Some(ended);
                let served = if broken { Served::Close } else { Served::Next };
                (status, Some(server), bytes, head_after, served)
            }
            // An answer from the server was counted as its head went out.
            Exchanged::Failed(status) => {
                backend.metrics.count_response(status.as_u16());
                let served = self.answer(status, None, close).await;
                let elapsed = logged_since.map(|t| t.elapsed()).unwrap_or_default();
                (status.as_u16(), None, 0, elapsed, served)
            }
        };
        self.log(
            frontend,
            Some(backend),
            parsed,
            status,
            server,
            bytes,
            headers_after,
            logged_since,
        );
        served
    }

    /// Answers with an error of zkgate's own, logged.
    async fn refuse(
        &mut self,
        frontend: &Frontend,
        parsed: head::Parsed,
        status: StatusCode,
        retry_after: Option<u64>,
        close: bool,
        logged_since: Option<Instant>,
    ) -> Served {
        let served = self.answer(status, retry_after, close).await;
        let elapsed = logged_since.map(|t| t.elapsed()).unwrap_or_default();
        self.log(
            frontend,
            None,
            parsed,
            status.as_u16(),
            None,
            0,
            elapsed,
            logged_since,
        );
        served
    }

    async fn answer(
        &mut self,
        status: StatusCode,
        retry_after: Option<u64>,
        close: bool,
    ) -> Served {
        self.out.clear();
        write_error(status, retry_after, close, &mut self.out);
        let written = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        };
        match written.await {
            Ok(()) => Served::Next,
            Err(_) => Served::Close,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        frontend: &Frontend,
        backend: Option<&Arc<zkgate_routing::Backend>>,
        parsed: head::Parsed,
        status: u16,
        server: Option<SocketAddr>,
        bytes: u64,
        headers_after: std::time::Duration,
        logged_since: Option<Instant>,
    ) {
        let (Some(log), Some(since)) = (&self.proxy.access_log, logged_since) else {
            return;
        };
        let head = Head {
            buf: &self.buf,
            fields: &self.fields,
            parsed,
        };
        log.http(&HttpEntry {
            client: self.peer,
            frontend: &frontend.name,
            backend: backend.map(|b| &*b.name),
            server,
            method: head.method(),
            path: head.target(),
            status,
            bytes,
            headers_after,
            total: since.elapsed(),
        });
    }
}

/// The request head for the server: hop-by-hop headers dropped and, when
/// `scheme` is given, X-Forwarded-For extended with the client and
/// X-Forwarded-Proto/-Host set; everything else as the client sent it.
fn write_upstream_head(head: &Head<'_>, scheme: Option<&str>, client: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(head.method_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for field in head.fields {
        let forwarded = scheme.is_some();
        match field.role {
            Role::HopByHop => continue,
            Role::ForwardedOther if forwarded => continue,
            Role::ForwardedFor if forwarded => continue,
            _ => {}
        }
        out.extend_from_slice(head.name(field));
        out.extend_from_slice(b": ");
        out.extend_from_slice(head.value(field));
        out.extend_from_slice(b"\r\n");
    }
    if let Some(scheme) = scheme {
        out.extend_from_slice(b"x-forwarded-for: ");
        for field in head.fields.iter().filter(|f| f.role == Role::ForwardedFor) {
            let value = head.value(field);
            if !value.is_empty() {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(client);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(scheme.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = head.host_value() {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(raw: &str, scheme: Option<&str>) -> String {
        let mut fields = Vec::new();
        let Scan::Complete(parsed) = head::scan(raw.as_bytes(), &mut fields) else {
            panic!("{raw:?}")
        };
        let head = Head {
            buf: raw.as_bytes(),
            fields: &fields,
            parsed,
        };
        let mut out = Vec::new();
        write_upstream_head(&head, scheme, b"10.0.0.9", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_server_gets_the_head_with_hop_by_hop_dropped_and_forwarded_headers_set() {
        let raw = "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2\r\nX-Forwarded-Proto: ftp\r\nX-Forwarded-Host: evil\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            rewritten(raw, Some("https")),
            "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\nContent-Length: 0\r\nx-forwarded-for: 192.0.2.1, 192.0.2.2, 10.0.0.9\r\nx-forwarded-proto: https\r\nx-forwarded-host: a.example\r\n\r\n"
        );
        assert_eq!(
            rewritten(raw, None),
            "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2\r\nX-Forwarded-Proto: ftp\r\nX-Forwarded-Host: evil\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            rewritten("HEAD / HTTP/1.1\r\n\r\n", Some("http")),
            "HEAD / HTTP/1.1\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }
}
