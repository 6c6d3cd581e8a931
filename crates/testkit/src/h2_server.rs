//! An HTTP/2 (h2c) test server on the `h2` crate, which (unlike hyper's)
//! can send interim answers. As HAProxy's `http_1xx_responses` servers
//! `s5` and `s6` do, `/clen` gets two 103 Early Hints then `200` "response
//! 1", `/no-body` one 103 then a 204, and a request that says `expect:
//! 100-continue` a `100` before its body is read. `/echo` gets its body
//! back, `/bytes/N` N bytes; anything else `200` "response 1". Each
//! request's path, `expect` header and body are recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request's path.
    pub path: String,
    /// Its `expect` field, if it had one.
    pub expect: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// A running server; stops when dropped.
pub struct H2Server {
    /// Where it listens (h2c, prior knowledge).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Server {
    /// Starts the server.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let task = spawn_accept_loop(listener, move |stream| {
            let seen = Arc::clone(&recorded);
            async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = connection.accept().await {
                    tokio::spawn(answer(request, respond, Arc::clone(&seen)));
                }
            }
        });
        H2Server { addr, seen, task }
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn hint(link: &'static str) -> Response<()> {
    Response::builder()
        .status(StatusCode::EARLY_HINTS)
        .header("link", link)
        .body(())
        .unwrap()
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let path = request.uri().path().to_owned();
    let expect = request
        .headers()
        .get("expect")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let style = "</style.css>; rel=preload; as=style";
    let script = "</script.js>; rel=preload; as=script";
    if expect.is_some() {
        let hundred = Response::builder().status(100).body(()).unwrap();
        respond.send_informational(hundred).ok();
    }
    let mut body = request.into_body();
    let mut received = Vec::new();
    while let Some(Ok(data)) = body.data().await {
        body.flow_control().release_capacity(data.len()).ok();
        received.extend_from_slice(&data);
    }
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        expect,
        body: received.clone(),
    });
    let style = hint(style);
    let (status, body) = match path.as_str() {
        "/clen" => {
            respond.send_informational(style).ok();
            respond.send_informational(hint(script)).ok();
            (StatusCode::OK, Some(Bytes::from_static(b"response 1")))
        }
        "/no-body" => {
            respond.send_informational(style).ok();
            (StatusCode::NO_CONTENT, None)
        }
        "/echo" => (StatusCode::OK, Some(Bytes::from(received))),
        _ => match path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()) {
            Some(n) => (StatusCode::OK, Some(Bytes::from(vec![b'x'; n]))),
            None => (StatusCode::OK, Some(Bytes::from_static(b"response 1"))),
        },
    };
    let mut head = Response::builder().status(status);
    if let Some(body) = &body {
        head = head.header("content-length", body.len());
    }
    let end = body.as_ref().is_none_or(Bytes::is_empty);
    let Ok(mut send) = respond.send_response(head.body(()).unwrap(), end) else {
        return;
    };
    if let (Some(body), false) = (body, end) {
        send_all(&mut send, body).await;
    }
}

/// Sends `body` as the client's windows allow.
async fn send_all(send: &mut h2::SendStream<Bytes>, mut body: Bytes) {
    while !body.is_empty() {
        send.reserve_capacity(body.len());
        let Some(Ok(room)) = std::future::poll_fn(|cx| send.poll_capacity(cx)).await else {
            return;
        };
        let part = body.split_to(room.min(body.len()));
        if send.send_data(part, body.is_empty()).is_err() {
            return;
        }
    }
}
