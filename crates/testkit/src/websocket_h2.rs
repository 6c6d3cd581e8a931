//! WebSocket over HTTP/2 (RFC 8441) on loopback: an h2c echo server that
//! takes extended `CONNECT` (or, to test refusals, does not announce it),
//! and a client that opens one.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::ext::Protocol;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;
use crate::websocket::{read_frame, write_frame, WebSocketClient};

/// An h2c WebSocket echo server: answers every text frame with
/// `<name>: <text>`. Its `200` says `x-backend-protocol: 2.0` and names the
/// `:protocol` asked for in `x-protocol`. Stops when dropped.
pub struct H2WebSocketServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for H2WebSocketServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2WebSocketServer {
    /// Starts a server called `name`; `extended`: whether it announces
    /// extended `CONNECT` in its `SETTINGS` (one that does not resets the
    /// stream of any `CONNECT` with a `:protocol`).
    pub async fn start(name: &str, extended: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let name = name.to_owned();
        let task = spawn_accept_loop(listener, move |stream| {
            let name = name.clone();
            async move {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                if extended {
                    builder.enable_connect_protocol();
                }
                let service = service_fn(move |request| answer(request, name.clone()));
                // Clients of a test server come and go; their errors don't matter.
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                    .ok();
            }
        });
        H2WebSocketServer { addr, task }
    }
}

async fn answer(
    mut request: Request<Incoming>,
    name: String,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let protocol = request.extensions().get::<Protocol>().cloned();
    let Some(protocol) = protocol.filter(|_| request.method() == Method::CONNECT) else {
        let mut response = Response::new(Empty::new());
        response
            .headers_mut()
            .insert("x-backend-protocol", "2.0".parse().unwrap());
        return Ok(response);
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut io = BufReader::new(TokioIo::new(upgraded));
        while let Ok(Some(text)) = read_frame(&mut io).await {
            let answer = format!("{name}: {text}");
            if write_frame(io.get_mut(), answer.as_bytes(), None)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut response = Response::new(Empty::new());
    let headers = response.headers_mut();
    headers.insert("x-backend-protocol", "2.0".parse().unwrap());
    headers.insert("x-protocol", protocol.as_str().parse().unwrap());
    Ok(response)
}

/// Opens `path` at `addr` (h2c, prior knowledge) as an extended `CONNECT`
/// for `protocol`: the answer's status and headers, and the switched
/// stream as a WebSocket client if the answer was a `2xx`.
pub async fn connect_over_h2(
    addr: SocketAddr,
    path: &str,
    protocol: &'static str,
) -> std::io::Result<(Response<()>, Option<WebSocketClient>)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://127.0.0.1{path}"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    request
        .extensions_mut()
        .insert(Protocol::from_static(protocol));
    let mut response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    if response.status() != StatusCode::OK {
        return Ok((response.map(|_| ()), None));
    }
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(std::io::Error::other)?;
    let client = WebSocketClient::over(TokioIo::new(upgraded));
    Ok((response.map(|_| ()), Some(client)))
}
