//! An origin that records every byte it receives and answers each request
//! with the exact bytes a script gives: for tests of what a proxy lets
//! through (smuggling, desyncs, header rules), where a real server library
//! would normalise away the very thing under test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::spawn_accept_loop;

/// What the origin does with one request.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Written at once.
    pub bytes: Vec<u8>,
    /// Written this long after, unasked (a server that says too much).
    pub later: Option<(Duration, Vec<u8>)>,
    /// Close the connection after answering.
    pub close: bool,
    /// Answer as soon as the head arrived, before reading the body.
    pub before_body: bool,
}

impl Answer {
    /// `bytes`, and the connection stays open.
    pub fn bytes(bytes: &[u8]) -> Self {
        Answer {
            bytes: bytes.to_vec(),
            ..Answer::default()
        }
    }
}

/// The script: the answer to a request, given its head (as text).
pub type Script = fn(&str) -> Answer;

/// A running recording origin.
pub struct RecordingOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    _task: JoinHandle<()>,
}

impl RecordingOrigin {
    /// Starts an origin on a free loopback port.
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (Arc::clone(&received), Arc::clone(&connections));
        let task = spawn_accept_loop(listener, move |stream| {
            count.fetch_add(1, Ordering::SeqCst);
            serve(stream, script, Arc::clone(&log))
        });
        RecordingOrigin {
            addr,
            received,
            connections,
            _task: task,
        }
    }

    /// Every byte received so far, on every connection, in arrival order.
    pub fn received(&self) -> String {
        let bytes = self.received.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, script: Script, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head(&mut stream, &mut buf, &log).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let answer = script(&head);
        if !answer.before_body {
            // A chunked body is taken to end at the first last-chunk.
            let body_end = |buf: &[u8]| match content_length(&head) {
                _ if is_chunked(&head) => buf[head_end..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|at| head_end + at + 5),
                length => Some(head_end + length.unwrap_or(0)).filter(|&end| end <= buf.len()),
            };
            let end = loop {
                if let Some(end) = body_end(&buf) {
                    break end;
                }
                if !read_more(&mut stream, &mut buf, &log).await {
                    return;
                }
            };
            buf.drain(..end);
        } else {
            buf.drain(..head_end);
        }
        if stream.write_all(&answer.bytes).await.is_err() {
            return;
        }
        if let Some((after, bytes)) = &answer.later {
            tokio::time::sleep(*after).await;
            if stream.write_all(bytes).await.is_err() {
                return;
            }
        }
        if answer.close {
            return;
        }
    }
}

/// Reads until `buf` holds a whole head; its length.
async fn read_until_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    log: &Mutex<Vec<u8>>,
) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        if !read_more(stream, buf, log).await {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, log: &Mutex<Vec<u8>>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    })
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}
