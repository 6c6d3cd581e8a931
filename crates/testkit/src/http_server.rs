//! An HTTP/1.1 test server on 127.0.0.1:0 that says who answered.
//!
//! | path | answer |
//! |---|---|
//! | `/delay/<ms>` | waits, then answers like any path |
//! | `/status/<code>` | that status |
//! | `/headers` | the request headers, one `name: value` per line |
//! | `/upload` | reads the body; answers `<length> <checksum>` |
//! | `/download/<n>` | streams `n` bytes of [`pattern`] |
//! | `/healthz` | 200, or 503 after [`HttpServer::set_healthy`]`(false)` |
//! | anything else | 200, body = the server's name |
//!
//! After [`HttpServer::set_failing`]`(true)` every other path answers 500.
//!
//! Every answer carries `x-served-by: <name>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;

/// A running test server; stops when dropped.
pub struct HttpServer {
    /// What it answers with.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Byte `i` of the deterministic `/download` stream.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7) % 251) as u8
}

/// FNV-1a over a byte stream, fed in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Checksum {
    /// Bytes fed.
    pub length: u64,
    /// Hash so far.
    pub hash: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            length: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Checksum {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.length += bytes.len() as u64;
    }

    /// `<length> <hash>`, as `/upload` answers.
    pub fn summary(&self) -> String {
        format!("{} {:016x}", self.length, self.hash)
    }
}

impl HttpServer {
    /// Starts a server called `name`.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, None).await
    }

    /// Starts a server called `name` that speaks HTTPS with `tls`.
    pub async fn start_tls(name: &str, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(name, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let name_arc: Arc<str> = name.into();
        let connections = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let health = Arc::clone(&healthy);
        let failing = Arc::new(AtomicBool::new(false));
        let fail = Arc::clone(&failing);
        let counter = Arc::clone(&requests);
        let accepted = Arc::clone(&connections);
        let task = spawn_accept_loop(listener, move |stream| {
            accepted.fetch_add(1, Ordering::SeqCst);
            let name = Arc::clone(&name_arc);
            let counter = Arc::clone(&counter);
            let health = Arc::clone(&health);
            let fail = Arc::clone(&fail);
            let tls = tls.clone();
            async move {
                let service = service_fn(move |request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let state = (health.load(Ordering::SeqCst), fail.load(Ordering::SeqCst));
                    answer(Arc::clone(&name), state, request)
                });
                // Clients of a test server come and go; their errors don't matter.
                match tls {
                    None => http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                        .ok(),
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                            .ok(),
                        Err(_) => None,
                    },
                };
            }
        });
        HttpServer {
            name: name.to_owned(),
            addr,
            requests,
            connections,
            healthy,
            failing,
            task,
        }
    }

    /// Makes `/healthz` answer 200 (true) or 503 (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Makes every path but `/healthz` answer 500 (true), or work again (false).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

type AnswerBody = Either<Full<Bytes>, PatternBody>;

async fn answer(
    name: Arc<str>,
    (healthy, failing): (bool, bool),
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, Infallible> {
    let path = request.uri().path().to_owned();
    let mut status = StatusCode::OK;
    let body: AnswerBody = if failing && path != "/healthz" {
        status = StatusCode::INTERNAL_SERVER_ERROR;
        Either::Left(Full::new(Bytes::from(name.to_string())))
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        Either::Left(Full::new(Bytes::from(name.to_string())))
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = code
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::OK);
        Either::Left(Full::new(Bytes::from(name.to_string())))
    } else if path == "/healthz" {
        if !healthy {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        Either::Left(Full::new(Bytes::from(name.to_string())))
    } else if path == "/headers" {
        let mut text = String::new();
        for (k, v) in request.headers() {
            text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("<binary>")));
        }
        Either::Left(Full::new(Bytes::from(text)))
    } else if path == "/upload" {
        let mut sum = Checksum::default();
        let mut body = request.into_body();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        sum.update(data);
                    }
                }
                Err(_) => break,
            }
        }
        Either::Left(Full::new(Bytes::from(sum.summary())))
    } else if let Some(n) = path.strip_prefix("/download/") {
        Either::Right(PatternBody {
            offset: 0,
            length: n.parse().unwrap_or(0),
        })
    } else {
        Either::Left(Full::new(Bytes::from(name.to_string())))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        "x-served-by",
        name.parse().expect("server names are header-safe"),
    );
    Ok(response)
}

/// Streams `length` bytes of [`pattern`] in 64 KiB frames.
pub struct PatternBody {
    offset: u64,
    length: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.offset >= self.length {
            return Poll::Ready(None);
        }
        let n = (self.length - self.offset).min(64 * 1024);
        let start = self.offset;
        let chunk: Vec<u8> = (start..start + n).map(pattern).collect();
        self.offset += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.length
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length - self.offset)
    }
}
