//! Minimal HTTP/1.1 and raw-socket clients for assertions.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A complete HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET path` on a new connection to `addr`.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    let request = Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()));
    http_request(addr, request.expect("valid request")).await
}

/// Sends `request` on a new connection to `addr` and reads the whole answer.
pub async fn http_request(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> std::io::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    http_request_on(stream, request).await
}

/// Sends `request` on an open connection (a TLS one, say) and reads the whole answer.
pub async fn http_request_on<S>(stream: S, request: Request<Full<Bytes>>) -> std::io::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io_error = |e: hyper::Error| std::io::Error::other(e);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io_error)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(io_error)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(io_error)?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Writes `bytes` on a new connection and returns everything read until the
/// peer closes or `timeout` passes.
pub async fn raw_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut answer = Vec::new();
    // A timeout just ends the read: what arrived so far is the answer.
    let _timed_out = tokio::time::timeout(timeout, stream.read_to_end(&mut answer)).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Reads from `stream` until what was read ends with `end` (one response
/// on a connection kept open); an error if the peer closes first.
pub async fn read_until_ending(stream: &mut TcpStream, end: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut read = Vec::new();
    while !read.ends_with(end) {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&read)),
            ));
        }
        read.extend_from_slice(&chunk[..n]);
    }
    Ok(read)
}
