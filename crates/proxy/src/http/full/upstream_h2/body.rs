//! Bodies on an HTTP/2 connection to a server: the client's request body
//! sent as the server's window allows, and the server's answer read as
//! the request core polls it, its window given back as bytes are taken.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::http::pool::UpstreamBody;
use crate::http::BoxError;

/// Where the sending of a request body tells why it failed, for the
/// answer's error to name the client's part.
pub type BodyFault = Arc<Mutex<Option<BoxError>>>;

/// Sends `body` on `stream` (its own task: the server may answer before the
/// body is all sent, and the body must go on). A body that fails resets the
/// stream and leaves its error in `fault`; a stream the server resets ends
/// the sending.
pub async fn send_body(mut body: UpstreamBody, mut stream: SendStream<Bytes>, fault: BodyFault) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // The server reset the stream (or the connection ended).
            _ = std::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        let sent = match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => send_data(&mut stream, data).await,
                // Trailers end the stream.
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                    }
                    return;
                }
            },
            Some(Err(err)) => {
                stream.send_reset(h2::Reason::CANCEL);
                *fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                return;
            }
        };
        if sent.is_err() {
            return;
        }
        if body.is_end_stream() {
            // A body that knows its end: no empty frame waits for a poll.
            let _ = stream.send_data(Bytes::new(), true);
            return;
        }
    }
}

/// Sends `data` as the stream's window grants room.
async fn send_data(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), BoxError> {
    while data.has_remaining() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx)).await;
        let room = match granted {
            Some(Ok(room)) => room,
            Some(Err(err)) => return Err(err.into()),
            None => return Err("the server's stream closed".into()),
        };
        let part = data.split_to(room.min(data.len()));
        stream.send_data(part, false)?;
    }
    Ok(())
}

const UNKNOWN: u64 = u64::MAX;

/// A server's answer body, read from its HTTP/2 stream.
pub struct H2Body {
    /// None: the answer switched its stream to a tunnel.
    stream: Option<RecvStream>,
    data_done: bool,
    /// What its `content-length` leaves to come ([`UNKNOWN`] without one:
    /// every answer body on the way holds this, so it stays one word).
    remaining: u64,
}

impl H2Body {
    pub fn new(stream: RecvStream, length: Option<u64>) -> Self {
        H2Body {
            stream: Some(stream),
            data_done: false,
            remaining: length.unwrap_or(UNKNOWN),
        }
    }

    /// The body of an answer whose stream became a tunnel.
    pub fn empty() -> Self {
        H2Body {
            stream: None,
            data_done: true,
            remaining: 0,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(stream) = &mut this.stream else {
            return Poll::Ready(None);
        };
        if !this.data_done {
            match std::task::ready!(stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The bytes are the request core's now: the server may
                    // send as many more.
                    let _ = stream.flow_control().release_capacity(data.len());
                    if this.remaining != UNKNOWN {
                        this.remaining = this.remaining.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                None => this.data_done = true,
            }
        }
        match std::task::ready!(stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.as_ref().is_none_or(RecvStream::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            UNKNOWN => SizeHint::default(),
            remaining => SizeHint::with_exact(remaining),
        }
    }
}
