//! An HTTP/2 (h2c) test server that answers with interim (1xx) answers
//! first, as HAProxy's `http_1xx_responses` servers `s5` and `s6` do:
//! `/clen` gets two 103 Early Hints then `200` "response 1", `/no-body`
//! one 103 then a 204, and a request that says `expect: 100-continue` a
//! `100` before its body is read, then `200` "response 1". Each request's
//! `expect` header and body are recorded.

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
pub struct InterimH2Server {
    /// Where it listens (h2c, prior knowledge).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for InterimH2Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InterimH2Server {
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
        InterimH2Server { addr, seen, task }
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
        body: received,
    });
    let (status, text) = match path.as_str() {
        "/clen" => {
            respond.send_informational(hint(style)).ok();
            respond.send_informational(hint(script)).ok();
            (StatusCode::OK, Some("response 1"))
        }
        "/no-body" => {
            respond.send_informational(hint(style)).ok();
            (StatusCode::NO_CONTENT, None)
        }
        _ => (StatusCode::OK, Some("response 1")),
    };
    let mut head = Response::builder().status(status);
    if let Some(text) = text {
        head = head.header("content-length", text.len());
    }
    let Ok(mut send) = respond.send_response(head.body(()).unwrap(), text.is_none()) else {
        return;
    };
    if let Some(text) = text {
        send.send_data(Bytes::from_static(text.as_bytes()), true)
            .ok();
    }
}
