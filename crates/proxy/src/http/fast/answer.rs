//! The request core's answer written as HTTP/1.1 bytes, for a request the
//! fast path served through the core (`core`): interim heads, then the
//! final head with its framing decided here (the server's length, else the
//! body's known length, else chunked with its trailers), then the body.

use bytes::Bytes;
use futures_util::FutureExt;
use http::response::Parts;
use http::{header, HeaderMap, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http::headers::stated_length;

/// Past this much waiting in `out`, it is written without waiting for more.
const WRITE_AT: usize = 64 << 10;

/// Writes what waits in `out`; whether there was anything.
async fn flush_out<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Vec<u8>) -> std::io::Result<bool> {
    if out.is_empty() {
        return Ok(false);
    }
    io.write_all(out).await?;
    io.flush().await?;
    out.clear();
    Ok(true)
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// No body bytes: a `HEAD`'s answer, a 1xx, 204 or 304.
    None,
    /// So many bytes.
    Length(u64),
    /// Chunked, trailers after the last chunk.
    Chunked,
}

/// Writes an interim (1xx) head.
pub fn encode_interim(status: StatusCode, headers: &HeaderMap, out: &mut Vec<u8>) {
    status_line(status, out);
    fields(headers, out);
    out.extend_from_slice(b"\r\n");
}

/// What the request asked of its answer's shape.
#[derive(Clone, Copy)]
pub struct Asked {
    /// It was a `HEAD`: the answer has no body.
    pub head: bool,
    /// It said `TE: trailers`: the answer's trailers are sent (else they
    /// are dropped, as hyper's HTTP/1.1 server drops them).
    pub trailers: bool,
    /// The connection ends after the answer.
    pub close: bool,
}

/// Writes `response` to the client. `Ok(true)` when the connection may
/// carry another request.
pub async fn write_answer<W, B>(
    io: &mut W,
    response: Response<B>,
    asked: Asked,
    out: &mut Vec<u8>,
) -> std::io::Result<bool>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + Unpin,
{
    let Asked {
        head: head_request,
        trailers: trailers_wanted,
        close,
    } = asked;
    let (parts, mut body) = response.into_parts();
    let close = close || says_close(&parts.headers);
    let framing = framing(&parts, &body, head_request);
    out.clear();
    encode_head(&parts, framing, close, out);
    if framing == Framing::None {
        io.write_all(out).await?;
        io.flush().await?;
        return Ok(!close);
    }
    let mut sent = 0u64;
    // What is ready goes out with the head (one write); the head waits
    // for nothing that is not.
    let mut written_any = false;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                written_any |= flush_out(io, out).await?;
                body.frame().await
            }
        };
        let Some(frame) = frame else { break };
        // The server's body failed: the client can only tell by the
        // connection ending before the body did (with nothing at all, if
        // nothing went yet).
        let Ok(frame) = frame else {
            if written_any {
                io.write_all(out).await?;
            }
            return Ok(false);
        };
        match frame.into_data() {
            Ok(data) => {
                sent += data.len() as u64;
                encode_data(framing, &data, out);
                if out.len() >= WRITE_AT {
                    written_any |= flush_out(io, out).await?;
                }
            }
            Err(frame) => {
                let trailers = frame.into_trailers().ok();
                if let (Framing::Chunked, Some(trailers), true) =
                    (framing, trailers, trailers_wanted)
                {
                    out.extend_from_slice(b"0\r\n");
                    fields(&trailers, out);
                    out.extend_from_slice(b"\r\n");
                    io.write_all(out).await?;
                    io.flush().await?;
                    return Ok(!close);
                }
            }
        }
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        // A body that stopped short of (or went past) its length leaves the
        // client no way to find the next answer.
        Framing::Length(length) if sent != length => {
            io.write_all(out).await?;
            return Ok(false);
        }
        _ => {}
    }
    io.write_all(out).await?;
    io.flush().await?;
    Ok(!close)
}

fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

fn framing(parts: &Parts, body: &impl Body, head_request: bool) -> Framing {
    let status = parts.status;
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    match stated_length(&parts.headers).or_else(|| body.size_hint().exact()) {
        Some(length) => Framing::Length(length),
        None => Framing::Chunked,
    }
}

fn status_line(status: StatusCode, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The fields but those that frame or manage the connection: this writer
/// decides those.
fn fields(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn encode_head(parts: &Parts, framing: Framing, close: bool, out: &mut Vec<u8>) {
    status_line(parts.status, out);
    let headers = &parts.headers;
    fields(headers, out);
    match framing {
        Framing::Length(length) if !headers.contains_key(header::CONTENT_LENGTH) => {
            out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn encode_data(framing: Framing, data: &Bytes, out: &mut Vec<u8>) {
    match framing {
        Framing::Chunked if data.is_empty() => {}
        Framing::Chunked => {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::full::ProxyBody;

    fn head(status: u16, headers: &[(&str, &str)], framing: Framing, close: bool) -> String {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        let (parts, ()) = response.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        encode_head(&parts, framing, close, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_writer_frames_the_answer_and_the_answer_cannot() {
        let written = head(
            200,
            &[
                ("transfer-encoding", "gzip"),
                ("connection", "keep-alive"),
                ("x", "1"),
            ],
            Framing::Chunked,
            true,
        );
        assert_eq!(
            written,
            "HTTP/1.1 200 OK\r\nx: 1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        let written = head(200, &[], Framing::Length(5), false);
        assert_eq!(written, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        let written = head(200, &[("content-length", "5")], Framing::Length(5), false);
        assert_eq!(written.matches("content-length").count(), 1, "{written}");
    }

    #[test]
    fn bodiless_answers_and_chunks() {
        let (parts, ()) = Response::builder()
            .status(204)
            .body(())
            .unwrap()
            .into_parts();
        let body = ProxyBody::message(Bytes::from_static(b"x"));
        assert_eq!(framing(&parts, &body, false), Framing::None);
        let (parts, ()) = Response::builder()
            .status(200)
            .header("content-length", "9")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(framing(&parts, &body, true), Framing::None);
        assert_eq!(framing(&parts, &body, false), Framing::Length(9));
        let mut out = Vec::new();
        encode_data(
            Framing::Chunked,
            &Bytes::from_static(b"hello world!"),
            &mut out,
        );
        assert_eq!(out, b"c\r\nhello world!\r\n");
    }
}
