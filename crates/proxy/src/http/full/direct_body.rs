//! A server's response body read from its HTTP/1.1 connection as the
//! client takes it, from the request's own task (see `direct`): a length,
//! chunks (decoded by the fast path's `chunked`, trailers passed on) or
//! until the server closes; at its end the connection goes back to the
//! pool if it may carry another request.

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use crate::http::fast::chunked::Chunked;
use crate::http::fast::framing::Framing;
use crate::http::headers::is_forbidden_in_trailers;
use crate::http::pool::{PoolKey, ServerConn};
use crate::http::BoxError;

/// Most fields in a trailer section passed on.
const MAX_TRAILERS: usize = 64;

/// The fields of a head as a header map, in order.
pub(super) fn header_map<'b>(
    fields: impl Iterator<Item = (&'b str, &'b [u8])>,
) -> Result<HeaderMap, &'static str> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            return Err("a header field that is not one");
        };
        headers.append(name, value);
    }
    Ok(headers)
}

/// What is left of a body to read.
enum Left {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// A server's response body, read from its connection as the client
/// takes it; at its end the connection goes back to the pool if it may
/// carry another request and nothing came beyond the body.
pub struct DirectBody {
    /// `None` once the body ended.
    conn: Option<ServerConn>,
    key: PoolKey,
    sent: Instant,
    left: Left,
    reusable: bool,
    /// The trailer section of a chunked body, as it comes.
    trailer_section: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl DirectBody {
    pub(super) fn new(
        conn: ServerConn,
        key: PoolKey,
        framing: Framing,
        reusable: bool,
        sent: Instant,
    ) -> Self {
        let left = match framing {
            Framing::Empty | Framing::Length(0) => Left::Done,
            Framing::Length(length) => Left::Length(length),
            Framing::Chunked => Left::Chunked(Chunked::default()),
            Framing::UntilClose => Left::UntilClose,
        };
        let mut body = DirectBody {
            conn: Some(conn),
            key,
            sent,
            left,
            reusable,
            trailer_section: Vec::new(),
            trailers: None,
        };
        if matches!(body.left, Left::Done) {
            body.finish();
        }
        body
    }

    /// The body was read to its end.
    fn finish(&mut self) {
        self.left = Left::Done;
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.buf.is_empty() {
                conn.checkin(self.key, self.sent);
            }
        }
    }

    /// The next data out of what was read, if any; `None` when the bytes
    /// taken were framing only.
    fn take_buffered(&mut self) -> Result<Option<Bytes>, BoxError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let (data, ended) = match &mut self.left {
            Left::Length(left) => {
                let n = (*left).min(conn.buf.len() as u64);
                *left -= n;
                (Some(conn.buf.split_to(n as usize).freeze()), *left == 0)
            }
            Left::UntilClose => (Some(conn.buf.split().freeze()), false),
            Left::Chunked(chunked) => {
                let step = chunked
                    .next_data(&conn.buf)
                    .map_err(|bad| format!("bad chunked body from the server: {}", bad.0))?;
                self.trailer_section
                    .extend_from_slice(&conn.buf[step.trailer.clone()]);
                let mut taken = conn.buf.split_to(step.taken);
                let data = (!step.data.is_empty()).then(|| {
                    taken.advance(step.data.start);
                    taken.truncate(step.data.len());
                    taken.freeze()
                });
                (data, chunked.done())
            }
            Left::Done => (None, true),
        };
        if ended {
            self.trailers = trailers(&self.trailer_section)?;
            self.finish();
        }
        Ok(data)
    }
}

/// A chunked body's trailer section as fields for the client: none if it
/// is empty; the fields that frame, route or manage a connection left out.
fn trailers(section: &[u8]) -> Result<Option<HeaderMap>, BoxError> {
    if section.len() <= 2 {
        return Ok(None);
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(section, &mut fields)
    else {
        return Err("a trailer section that does not parse".into());
    };
    let map = header_map(fields.iter().map(|f| (f.name, f.value)))?;
    let mut passed = HeaderMap::with_capacity(map.len());
    for (name, value) in &map {
        if !is_forbidden_in_trailers(name) {
            passed.append(name.clone(), value.clone());
        }
    }
    Ok((!passed.is_empty()).then_some(passed))
}

impl Body for DirectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            if conn.buf.is_empty() {
                match ready!(conn.poll_read_more(cx)) {
                    Ok(0) if matches!(this.left, Left::UntilClose) => {
                        this.reusable = false;
                        this.finish();
                    }
                    Ok(0) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err("the server closed within the body".into())));
                    }
                    Ok(_) => {}
                    Err(err) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(err.into())));
                    }
                }
                continue;
            }
            match this.take_buffered() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Left::Length(left) => SizeHint::with_exact(left),
            Left::Done if self.conn.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
