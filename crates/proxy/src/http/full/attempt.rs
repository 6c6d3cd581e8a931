//! One attempt to have a server answer a request, whichever way it is
//! sent (`forward` through hyper's clients, `direct` from the request's own
//! task): what became of it, how long the server may take, and the
//! answer's header fields as they go on.

use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response, StatusCode};

use super::body::ProxyBody;
use crate::http::headers::strip_hop_by_hop;
use crate::http::pool::UpstreamBody;
use crate::http::request_body::BodyRead;

/// What became of one attempt on one server.
#[allow(clippy::large_enum_variant)]
pub enum Attempt {
    Answered(Response<ProxyBody>),
    /// Nothing reached the server, or it may be sent again: try elsewhere.
    Retry(Request<UpstreamBody>),
    /// Failed in a way that must not be retried: answer with this.
    Failed(StatusCode),
    /// The client's own request was broken (say, its chunked body): not the
    /// server's fault, nothing to retry.
    ClientFault(StatusCode),
}

/// Waits for the server's answer to a request sent at `sent`: the server
/// has `server` from the end of the request's body (while the client
/// still sends it, its own `client_idle` bounds the wait); `None` when
/// that passed.
pub async fn answer_within<F: std::future::Future>(
    send: F,
    server: Duration,
    read: &BodyRead,
    sent: Instant,
) -> Option<F::Output> {
    let send = std::pin::pin!(send);
    let mut send = send;
    let mut deadline = sent + server;
    loop {
        tokio::select! {
            biased;
            answered = &mut send => return Some(answered),
            () = tokio::time::sleep_until(deadline.into()) => match read.at(sent) {
                Some(at) if at + server > deadline => deadline = at + server,
                Some(_) => return None,
                None => deadline = Instant::now() + server,
            },
        }
    }
}

/// An HTTP/1.1 server's response header fields as they go on to the
/// client, whose connection frames the body anew: a `Content-Length` that
/// a transfer coding overrode is not passed on (RFC 9112 §6.3), nor are
/// hop-by-hop fields.
pub fn for_client(headers: &mut HeaderMap) {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(headers);
}
