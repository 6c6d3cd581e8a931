//! One HTTP/3 request stream: its head and body become a request for the
//! request core (the same one HTTP/1.1 and HTTP/2 go through), and the
//! answer goes back as HEADERS, DATA and trailers. A server's answer that
//! breaks off mid-body resets the stream, so the client sees an error, not
//! a short answer or a hang.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tracing::debug;

use crate::http::full::ProxyService;
use crate::http::headers::{stated_length, strip_hop_by_hop};
use crate::http::request_body::{BoxError, InboundBody};

/// The stream's two halves: the answer goes out on one while the request's
/// body comes in on the other.
type SendHalf = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvHalf = RequestStream<h3_quinn::RecvStream, Bytes>;

/// Reads the request of one stream (its head within `client_header`),
/// serves it, and sends the answer.
pub async fn serve(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    service: ProxyService,
    client_header: Duration,
) {
    let (request, stream) =
        match tokio::time::timeout(client_header, resolver.resolve_request()).await {
            Ok(Ok(resolved)) => resolved,
            // h3 has answered a malformed head with a stream or connection error.
            Ok(Err(err)) => return debug!(error = %err, "HTTP/3 request refused"),
            Err(_) => return debug!("HTTP/3 request head not complete within client_header"),
        };
    let (mut send, recv) = stream.split();
    let declared = stated_length(request.headers());
    let mut body = ClientStream::new(recv, declared);
    if declared.is_none() && seldom_has_body(request.method()) {
        // The end of a GET may come a packet after its head: wait for it
        // (or for data), so that a bodiless request is not sent to an
        // HTTP/1.1 server with an empty chunked body, whatever the timing.
        // A body that does not begin within `client_header` streams on.
        tokio::time::timeout(client_header, body.look_ahead())
            .await
            .ok();
    }
    let request = request.map(|()| InboundBody::Other(Box::pin(body)));
    // This HTTP/3 layer sends no interim answers.
    let Ok(response) = service.serve(request, None).await;
    if let Err(err) = answer(&mut send, response).await {
        debug!(error = %err, "HTTP/3 answer not sent whole");
        send.stop_stream(Code::H3_INTERNAL_ERROR);
    }
}

/// Sends `response` on `send`: its head, its body as DATA frames, its
/// trailers if any.
async fn answer<B>(send: &mut SendHalf, response: Response<B>) -> Result<(), BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    // HTTP/3 has no connection-specific fields (RFC 9114 §4.2).
    strip_hop_by_hop(&mut parts.headers);
    send.send_response(Response::from_parts(parts, ())).await?;
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => send.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                }
            }
        }
    }
    send.finish().await?;
    Ok(())
}

/// Methods whose requests almost never carry a body (RFC 9110 §9.3).
fn seldom_has_body(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// The body's content is not what its `content-length` said (RFC 9114
/// §4.1.2: a malformed request).
#[derive(Debug)]
struct LengthMismatch;

impl std::fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the HTTP/3 request body differs from its content-length")
    }
}

impl std::error::Error for LengthMismatch {}

enum Reading {
    Data,
    Trailers,
    Done,
}

/// A request stream's body, with what was already known when the head
/// arrived: a GET whose stream ended with its head is bodiless (and goes
/// to HTTP/1.1 servers without a chunked empty body).
struct ClientStream {
    recv: RecvHalf,
    reading: Reading,
    /// What was read while looking whether the body had ended.
    first: Option<Result<Frame<Bytes>, BoxError>>,
    declared: Option<u64>,
    received: u64,
}

impl ClientStream {
    fn new(recv: RecvHalf, declared: Option<u64>) -> Self {
        let mut stream = ClientStream {
            recv,
            reading: Reading::Data,
            first: None,
            declared,
            received: 0,
        };
        // Whatever arrived with the head; nothing waits here (the waker is
        // the request's to register when it reads).
        let mut cx = Context::from_waker(Waker::noop());
        stream.peek(&mut cx);
        stream
    }

    /// Reads ahead what has arrived, if nothing was read ahead yet;
    /// whether the body's first frame, or its end, is known.
    fn peek(&mut self, cx: &mut Context<'_>) -> bool {
        if self.first.is_some() || matches!(self.reading, Reading::Done) {
            return true;
        }
        match self.poll_stream(cx) {
            Poll::Ready(read) => {
                self.first = read;
                true
            }
            Poll::Pending => false,
        }
    }

    /// Waits until the body's first frame, or its end, has arrived.
    async fn look_ahead(&mut self) {
        std::future::poll_fn(|cx| match self.peek(cx) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
    }

    fn poll_stream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.reading {
                Reading::Data => match self.recv.poll_recv_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                    Poll::Ready(Ok(Some(mut data))) => {
                        let data = data.copy_to_bytes(data.remaining());
                        self.received += data.len() as u64;
                        if self.declared.is_some_and(|length| self.received > length) {
                            return Poll::Ready(Some(Err(Box::new(LengthMismatch))));
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Poll::Ready(Ok(None)) => {
                        if self.declared.is_some_and(|length| self.received != length) {
                            return Poll::Ready(Some(Err(Box::new(LengthMismatch))));
                        }
                        self.reading = Reading::Trailers;
                    }
                },
                Reading::Trailers => {
                    let trailers = std::task::ready!(self.recv.poll_recv_trailers(cx));
                    self.reading = Reading::Done;
                    return Poll::Ready(match trailers {
                        Err(err) => Some(Err(err.into())),
                        Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                        Ok(None) => None,
                    });
                }
                Reading::Done => return Poll::Ready(None),
            }
        }
    }
}

impl Body for ClientStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(read) = self.first.take() {
            return Poll::Ready(Some(read));
        }
        self.poll_stream(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && matches!(self.reading, Reading::Done)
    }

    fn size_hint(&self) -> SizeHint {
        // Bytes read while looking ahead are still to come for the reader.
        let ahead = self
            .first
            .as_ref()
            .and_then(|read| read.as_ref().ok())
            .and_then(Frame::data_ref)
            .map_or(0, Bytes::len);
        match (self.declared, &self.reading) {
            (_, Reading::Done) if self.first.is_none() => SizeHint::with_exact(0),
            (Some(length), _) => {
                SizeHint::with_exact(length.saturating_sub(self.received) + ahead as u64)
            }
            _ => SizeHint::default(),
        }
    }
}
