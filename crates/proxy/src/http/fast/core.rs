//! A request the fast path cannot carry as bytes (its backend speaks
//! HTTP/2, its answer is compressed, or it has a body), served through the
//! full path's request core without leaving the connection: its head
//! becomes an `http::Request`, its body (of a stated length) is read as
//! the core takes it (`body`), the server's interim answers are written as
//! they come, and the core's answer is written as HTTP/1.1 (`answer`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::answer::{encode_interim, write_answer, Asked};
use super::body::{pump, queued};
use super::head::{Head, Parsed};
use super::{Client, Served, SCRATCH_HELD};
use crate::http::full::{ProxyBody, ProxyService};
use crate::http::interim::{InterimSink, InterimTarget};
use crate::http::policy::RequestView;
use crate::http::request_body::InboundBody;
use crate::io::ConnActivity;

/// Interim answers a request may have waiting to be written; more are
/// dropped (they are hints: the final answer alone completes the exchange).
const MAX_WAITING_INTERIMS: usize = 16;

/// A request's interim answers, from whichever task reads them to the
/// client's.
#[derive(Default)]
struct Interims {
    waiting: Mutex<Vec<(StatusCode, HeaderMap)>>,
    came: Notify,
}

impl InterimTarget for Interims {
    fn interim(&self, _stream: u32, status: StatusCode, headers: HeaderMap) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.len() < MAX_WAITING_INTERIMS {
            waiting.push((status, headers));
        }
        self.came.notify_one();
    }
}

impl Interims {
    fn take(&self) -> Vec<(StatusCode, HeaderMap)> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Client<'_> {
    /// Serves the request whose head `parsed` describes through the
    /// request core; `close` says the connection ends after it.
    pub(super) async fn through_core(&mut self, parsed: Parsed, close: bool) -> Served {
        let head = Head {
            buf: &self.buf,
            fields: &self.scratch().fields,
            parsed,
        };
        let asked = Asked {
            head: head.is_head(),
            trailers: head.values(&http::header::TE).any(names_trailers),
            close,
        };
        let Some(request) = request_of(&head) else {
            // Not an `http` request (a field `http` refuses): hyper's path
            // gives it its answer.
            return Served::Hyper;
        };
        let interims = Arc::new(Interims::default());
        let target: Arc<dyn InterimTarget> = interims.clone();
        // The body, if any: read by this task as the core takes it, from
        // the bytes after the head (the head stays in `buf` until the
        // request is done; what follows the body goes back behind it).
        let sink = InterimSink::new(target, 0);
        let framing = parsed.body_framing();
        let (body, feed) = match framing {
            None => (InboundBody::empty(), None),
            Some(framing) => {
                let (mut body, feed) = queued(framing);
                if parsed.expects_continue {
                    body = body.continue_through(sink.clone());
                }
                (InboundBody::Other(Box::pin(body)), Some(feed))
            }
        };
        let request = request.map(|()| body);
        let service = ProxyService::new(
            self.proxy.clone(),
            self.frontend,
            self.peer,
            ConnActivity::new(),
        );
        let serving = service.serve(request, Some(sink));
        let mut after_head = self.buf.split_off(parsed.len);
        let out = &mut self.scratch.as_deref_mut().expect(SCRATCH_HELD).out;
        // Whether the body was read whole (a bodiless one was).
        let mut whole = framing.is_none().then_some(true);
        let written = {
            let (mut reading, mut writing) = tokio::io::split(&mut self.io);
            let answering = answer(serving, &interims, &mut writing, asked, out);
            let pumping = async {
                match (framing, feed) {
                    (Some(framing), Some(feed)) => {
                        pump(&mut reading, &mut after_head, framing, feed).await
                    }
                    _ => true,
                }
            };
            tokio::pin!(answering, pumping);
            let written = loop {
                tokio::select! {
                    biased;
                    pumped = &mut pumping, if whole.is_none() => whole = Some(pumped),
                    written = &mut answering => break written,
                }
            };
            // A body that came whole as the answer did is not left behind.
            if whole.is_none() {
                whole = pumping.as_mut().now_or_never();
            }
            written
        };
        self.buf.unsplit(after_head);
        self.ended = Some(std::time::Instant::now());
        match written {
            // A body not read whole leaves no way to the next request.
            Ok(true) if whole.unwrap_or(false) => Served::Next,
            Ok(_) => Served::Last,
            Err(_) => Served::Close,
        }
    }
}

/// Waits for the core's answer, writing interim answers as they come,
/// then writes the answer. Whether the connection may go on.
async fn answer<W: AsyncWrite + Unpin>(
    mut serving: Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>,
    interims: &Interims,
    client: &mut W,
    asked: Asked,
    out: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let answered = loop {
        tokio::select! {
            answered = &mut serving => break answered,
            () = interims.came.notified() => write_interims(client, interims, out).await?,
        }
    };
    let Ok(response) = answered;
    // Those that came with the answer go before it.
    write_interims(client, interims, out).await?;
    write_answer(client, response, asked, out).await
}

async fn write_interims<W: AsyncWrite + Unpin>(
    io: &mut W,
    interims: &Interims,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    out.clear();
    for (status, headers) in interims.take() {
        encode_interim(status, &headers, out);
    }
    if !out.is_empty() {
        io.write_all(out).await?;
        io.flush().await?;
    }
    Ok(())
}

/// The fast path's head as the request core takes it.
fn request_of(head: &Head<'_>) -> Option<Request<()>> {
    let mut headers = HeaderMap::with_capacity(head.fields.len());
    for field in head.fields {
        headers.append(
            HeaderName::from_bytes(head.name(field)).ok()?,
            HeaderValue::from_bytes(head.value(field)).ok()?,
        );
    }
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(head.method_bytes()).ok()?;
    *request.uri_mut() = Uri::try_from(head.target_bytes()).ok()?;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// Whether a `TE` value lists `trailers`.
fn names_trailers(te: &[u8]) -> bool {
    te.split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"trailers"))
}
