//! A gRPC-shaped HTTP/2 (h2c) test server and client: the server answers
//! every request with a body and trailers (`grpc-status: 0`), and says in a
//! header whether the request carried `te: trailers`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;

/// A running server; stops when dropped.
pub struct GrpcServer {
    /// Where it listens (h2c, prior knowledge).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    /// Starts the server.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = spawn_accept_loop(listener, |stream| async move {
            // Clients of a test server come and go; their errors don't matter.
            http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await
                .ok();
        });
        GrpcServer { addr, task }
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<TrailerBody>, Infallible> {
    let saw_te = request.headers().get("te").is_some_and(|v| v == "trailers");
    let received = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    let body = TrailerBody {
        data: Some(Bytes::from(format!("received {received} bytes"))),
        trailers: Some(trailers),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert(
        "x-saw-te-trailers",
        HeaderValue::from_static(if saw_te { "yes" } else { "no" }),
    );
    Ok(response)
}

/// One data frame, then trailers.
pub struct TrailerBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl hyper::body::Body for TrailerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(data))));
        }
        std::task::Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// What the client got back.
#[derive(Debug)]
pub struct GrpcReply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Trailers, if any arrived.
    pub trailers: Option<HeaderMap>,
}

/// Sends a gRPC-shaped POST over h2c (prior knowledge) to `addr`.
pub async fn call(addr: SocketAddr, payload: &'static [u8]) -> Result<GrpcReply, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::post(format!("http://{addr}/echo.Echo/Say"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(payload)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok(GrpcReply {
        status,
        headers,
        body: collected.to_bytes(),
        trailers,
    })
}
