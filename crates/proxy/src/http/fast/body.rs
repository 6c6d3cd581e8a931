//! A request body of a stated length, read from the client by the
//! connection's own task and handed to the request core as it takes it
//! (a bounded queue: the client is read no faster than the server takes
//! the body).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::http::interim::InterimSink;
use crate::http::BoxError;

/// Chunks of the body waiting for the request core.
const QUEUED: usize = 4;
/// What one read of the client asks for at least.
const READ: usize = 16 << 10;

/// The body as the request core sees it.
pub struct QueuedBody {
    chunks: mpsc::Receiver<Result<Bytes, BoxError>>,
    /// Bytes still to come.
    left: u64,
    /// Where a `100 Continue` goes when the body is first asked for, for a
    /// client that said `Expect: 100-continue`.
    to_continue: Option<InterimSink>,
}

/// Where the connection's task puts the body's chunks.
pub type Feed = mpsc::Sender<Result<Bytes, BoxError>>;

/// A body of `length` bytes, and where its chunks go in.
pub fn queued(length: u64) -> (QueuedBody, Feed) {
    let (feed, chunks) = mpsc::channel(QUEUED);
    let body = QueuedBody {
        chunks,
        left: length,
        to_continue: None,
    };
    (body, feed)
}

impl QueuedBody {
    /// Answers the client's `Expect: 100-continue` through `sink` when
    /// the body is first asked for (unless some of it came already).
    pub fn continue_through(mut self, sink: InterimSink) -> Self {
        self.to_continue = Some(sink);
        self
    }
}

impl Body for QueuedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if let Some(sink) = self.to_continue.take() {
            if self.chunks.is_empty() {
                sink.send(StatusCode::CONTINUE, HeaderMap::new());
            }
        }
        match std::task::ready!(self.chunks.poll_recv(cx)) {
            Some(Ok(chunk)) => {
                self.left -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err))),
            None => Poll::Ready(Some(Err("the request body was cut short".into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Reads `length` bytes of body from `client` (after those already in
/// `read`) into `feed`. `read` keeps what came after the body: the next
/// request. Whether the body was read whole.
pub async fn pump<R: AsyncRead + Unpin>(
    client: &mut R,
    read: &mut BytesMut,
    mut length: u64,
    feed: Feed,
) -> bool {
    while length > 0 {
        if read.is_empty() {
            read.reserve(READ);
            match client.read_buf(read).await {
                Ok(0) | Err(_) => {
                    let _ = feed
                        .send(Err("the client left before its body ended".into()))
                        .await;
                    return false;
                }
                Ok(_) => {}
            }
        }
        let take = read
            .len()
            .min(usize::try_from(length).unwrap_or(usize::MAX));
        let chunk = read.split_to(take).freeze();
        length -= take as u64;
        // The request core no longer wants it (it answered, or failed).
        if feed.send(Ok(chunk)).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_is_read_to_its_length_and_what_follows_stays() {
        let (body, feed) = queued(10);
        let mut read = BytesMut::from(&b"hello"[..]);
        let mut client: &[u8] = b" worldGET / HTTP/1.1\r\n";
        let pumping = tokio::spawn(async move {
            let whole = pump(&mut client, &mut read, 10, feed).await;
            (whole, read)
        });
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got, "hello worl");
        let (whole, rest) = pumping.await.unwrap();
        assert!(whole);
        assert_eq!(&rest[..], b"dGET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_client_that_leaves_early_fails_the_body() {
        let (body, feed) = queued(10);
        let mut read = BytesMut::new();
        let mut client: &[u8] = b"hello";
        let whole = tokio::spawn(async move { pump(&mut client, &mut read, 10, feed).await });
        assert!(body.collect().await.is_err());
        assert!(!whole.await.unwrap());
    }
}
