//! One request on the fast path: the request core decides what becomes of
//! it; this carries the decision out in bytes (the head for the server, the
//! exchange, zkgate's own answers) and logs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use zkgate_config::Protocol;
use zkgate_routing::{Backend, Frontend};

use super::exchange::{exchange, Exchanged, Outgoing};
use super::head::{self, Head, Role};
use super::{last_if, Client, Served, SCRATCH_HELD};
use crate::access_log::HttpEntry;
use crate::http::buffers::{self, Side};
use crate::http::copy::CopiedBody;
use crate::http::full;
use crate::http::policy::edits::Edits;
use crate::http::policy::ids::Ids;
use crate::http::policy::{decide, retry, rewrite_target, Decision, Routed};
use crate::http::response::{retry_after_seconds, write_error, write_redirect};

/// A request being served.
#[derive(Clone, Copy)]
struct Current {
    parsed: head::Parsed,
    /// A `HEAD` request: answers to it have no body.
    head: bool,
    /// The connection closes after it.
    close: bool,
    /// When its head was complete, if it is logged.
    logged_since: Option<Instant>,
}

/// While the server answers, the client's read buffer holds nothing but
/// the request's head (`head_len` bytes) unless the client sent more
/// behind it: the head is then kept in an allocation of its size, for
/// the log, and the buffer goes back to the worker's pool, so that a
/// request waiting for a slow server holds no read buffer.
fn park_head(buf: &mut BytesMut, head_len: usize) {
    if buf.len() == head_len {
        let head = BytesMut::from(&buf[..]);
        buffers::give(Side::Client, std::mem::replace(buf, head));
    }
}

/// How it ended, for the access log.
struct Ending {
    status: u16,
    server: Option<SocketAddr>,
    /// Body bytes sent.
    bytes: u64,
    /// When the response head was sent.
    headers_after: Duration,
}

impl<'a> Client<'a> {
    /// Serves the request whose head `parsed` describes.
    ///
    /// Not an `async fn`, which would keep `parsed` twice in the request's
    /// future.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn request<'s>(
        &'s mut self,
        parsed: head::Parsed,
        close: bool,
    ) -> impl std::future::Future<Output = Served> + Send + use<'s, 'a> {
        async move {
            let logged_since = self.proxy.access_log.is_some().then(Instant::now);
            // One table for the whole request, even if a new one is published meanwhile.
            let table = self.proxy.table.load_full();
            // The head in a block of its own, so that the request's future
            // keeps no room for it while the server answers.
            let (decision, is_head) = {
                let head = Head {
                    buf: &self.buf,
                    fields: &self.scratch().fields,
                    parsed,
                };
                let decision = decide(
                    self.proxy,
                    &table,
                    self.frontend,
                    self.peer.ip(),
                    &head,
                    // Bodies go through the request core.
                    |backend| {
                        backend.protocol == Protocol::Http1 && parsed.body_framing().is_none()
                    },
                    false,
                );
                (decision, head.is_head())
            };
            // zkgate's own answer to a request with a body leaves the body
            // unread: the connection cannot go on past it.
            let unread_body =
                parsed.body_framing().is_some() && !matches!(decision, Decision::Elsewhere);
            let mut current = Current {
                parsed,
                head: is_head,
                close: close || unread_body,
                logged_since,
            };
            let served = match decision {
                Decision::Forward(ref routed) => {
                    let retired = routed.retired;
                    current.close |= retired;
                    // By reference: moved, the decision would take room twice
                    // in the request's future.
                    let served = self.forward(routed, &current).await;
                    last_if(served, retired)
                }
                Decision::Refuse {
                    frontend: None,
                    refused,
                    ..
                } => self.answer(refused.status, None, current).await,
                Decision::Refuse {
                    frontend: Some(frontend),
                    retired,
                    refused,
                } => {
                    current.close |= retired;
                    let retry_after = refused.retry_after.map(retry_after_seconds);
                    let served = self
                        .refuse(frontend, current, refused.status, retry_after)
                        .await;
                    last_if(served, retired)
                }
                Decision::Redirect {
                    frontend,
                    retired,
                    status,
                    location,
                } => {
                    current.close |= retired;
                    let out = &mut self.scratch_mut().out;
                    out.clear();
                    write_redirect(status, location.as_bytes(), current.close, out);
                    let served = self.send_own().await;
                    self.log(frontend, None, current, own_answer(status, current), None);
                    last_if(served, retired)
                }
                // Its backend speaks HTTP/2, its answer is compressed, or it
                // has a body.
                // Boxed: its future is twice this one's, and every request
                // in flight would hold that room.
                Decision::Elsewhere => Box::pin(self.through_core(parsed, current.close)).await,
            };
            last_if(served, unread_body)
        }
    }

    /// Sends the request to a server of the backend it was routed to and
    /// streams the answer back.
    async fn forward(&mut self, routed: &Routed<'_>, current: &Current) -> Served {
        let Routed {
            frontend, backend, ..
        } = *routed;
        let scratch = self.scratch.as_deref_mut().expect(SCRATCH_HELD);
        // In a block of its own, so that the future keeps no room for the
        // head and its rewriting while the server answers.
        let (head_method, idempotent) = {
            let head = Head {
                buf: &self.buf,
                fields: &scratch.fields,
                parsed: current.parsed,
            };
            let upstream = Upstream {
                scheme: routed.forwarded_scheme,
                client: self.client_text.as_bytes(),
                rewrite: routed.rules.and_then(|rules| rules.rewrite.as_ref()),
                edits: &routed.request_edits,
            };
            write_upstream_head(&head, &upstream, &mut scratch.upstream);
            (head.is_head(), retry::idempotent(head.method_bytes()))
        };
        park_head(&mut self.buf, current.parsed.len);
        if let Some(mirror) = routed.mirror {
            // The copy is the head the server gets (fast-path requests have no body).
            if let Some(copied) = full::mirrored_head(&scratch.upstream) {
                full::mirror(mirror, copied, CopiedBody::Ready(Bytes::new()));
            }
        }
        let outgoing = Outgoing {
            head: &scratch.upstream,
            head_method,
            idempotent,
            sticky: routed.sticky,
            key: routed.key,
            close: current.close,
            logged_since: current.logged_since,
            edits: &routed.response_edits,
        };
        scratch.out.clear();
        let exchanged = exchange(
            backend,
            &outgoing,
            &mut self.io,
            &mut scratch.out,
            &mut self.timer,
            self.proxy,
        )
        .await;
        let (ending, served) = match exchanged {
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
                let ending = Ending {
                    status,
                    server: Some(server),
                    bytes,
                    headers_after: head_after,
                };
                (ending, served)
            }
            // An answer from the server was counted as its head went out.
            Exchanged::Failed(status) => {
                backend.metrics.count_response(status.as_u16());
                let served = self.answer(status, None, *current).await;
                (own_answer(status, *current), served)
            }
        };
        self.log(
            frontend,
            Some(backend),
            *current,
            ending,
            routed.ids.as_deref(),
        );
        served
    }

    /// Answers with an error of zkgate's own, logged.
    async fn refuse(
        &mut self,
        frontend: &Frontend,
        current: Current,
        status: StatusCode,
        retry_after: Option<u64>,
    ) -> Served {
        let served = self.answer(status, retry_after, current).await;
        self.log(frontend, None, current, own_answer(status, current), None);
        served
    }

    async fn answer(
        &mut self,
        status: StatusCode,
        retry_after: Option<u64>,
        current: Current,
    ) -> Served {
        let out = &mut self.scratch_mut().out;
        out.clear();
        write_error(status, retry_after, current.close, current.head, out);
        self.send_own().await
    }

    /// Sends zkgate's own answer, written in `out`.
    async fn send_own(&mut self) -> Served {
        let out = &self.scratch.as_deref().expect(SCRATCH_HELD).out;
        let written = async {
            self.io.write_all(out).await?;
            self.io.flush().await
        };
        match written.await {
            Ok(()) => Served::Next,
            Err(_) => Served::Close,
        }
    }

    fn log(
        &self,
        frontend: &Frontend,
        backend: Option<&Arc<Backend>>,
        current: Current,
        ending: Ending,
        ids: Option<&Ids>,
    ) {
        let (Some(log), Some(since)) = (&self.proxy.access_log, current.logged_since) else {
            return;
        };
        let head = Head {
            buf: &self.buf,
            fields: &self.scratch().fields,
            parsed: current.parsed,
        };
        log.http(&HttpEntry {
            client: self.peer,
            frontend: &frontend.name,
            backend: backend.map(|b| &*b.name),
            server: ending.server,
            method: head.method(),
            path: head.target(),
            status: ending.status,
            bytes: ending.bytes,
            headers_after: ending.headers_after,
            total: since.elapsed(),
            request_id: ids.and_then(|ids| ids.request_id.to_str().ok()),
            trace_id: ids.map(Ids::trace_id),
        });
    }
}

/// How a request answered by zkgate itself with `status` ended.
fn own_answer(status: StatusCode, current: Current) -> Ending {
    Ending {
        status: status.as_u16(),
        server: None,
        bytes: 0,
        headers_after: current
            .logged_since
            .map(|t| t.elapsed())
            .unwrap_or_default(),
    }
}

/// What the server's request head gets besides the client's.
struct Upstream<'a> {
    /// With forwarded headers on: the scheme told in `X-Forwarded-Proto`.
    scheme: Option<&'a str>,
    /// The client's address, for `X-Forwarded-For`.
    client: &'a [u8],
    /// The route's `path_prefix` and its replacement.
    rewrite: Option<&'a (Box<str>, Box<str>)>,
    /// The route's header rules and zkgate's own fields.
    edits: &'a Edits<'a>,
}

/// The request head for the server: the target rewritten if the route
/// says so, hop-by-hop headers dropped, the route's header edits made and,
/// when forwarded headers are on, X-Forwarded-For extended with the client
/// and X-Forwarded-Proto/-Host set; everything else as the client sent it.
fn write_upstream_head(head: &Head<'_>, upstream: &Upstream<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(head.method_bytes());
    out.push(b' ');
    match upstream.rewrite {
        Some((from, to)) => rewrite_target(head.target_bytes(), from, to, out),
        None => out.extend_from_slice(head.target_bytes()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let forwarded = upstream.scheme.is_some();
    for field in head.fields {
        match field.role {
            Role::HopByHop => continue,
            Role::ForwardedOther if forwarded => continue,
            Role::ForwardedFor if forwarded => continue,
            _ => {}
        }
        let name = head.name(field);
        if upstream.edits.drops(name) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(head.value(field));
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in upstream.edits.appended() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(scheme) = upstream.scheme {
        out.extend_from_slice(b"x-forwarded-for: ");
        for field in head.fields.iter().filter(|f| f.role == Role::ForwardedFor) {
            let value = head.value(field);
            if !value.is_empty() {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(upstream.client);
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
        let head::Scan::Complete(parsed) = head::scan(raw.as_bytes(), &mut fields) else {
            panic!("{raw:?}")
        };
        let head = Head {
            buf: raw.as_bytes(),
            fields: &fields,
            parsed,
        };
        let mut out = Vec::new();
        let upstream = Upstream {
            scheme,
            client: b"10.0.0.9",
            rewrite: None,
            edits: &Edits::NONE,
        };
        write_upstream_head(&head, &upstream, &mut out);
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
