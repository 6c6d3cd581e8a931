//! A request body, read from the client by the connection's own task and
//! handed to the request core as it takes it (a bounded queue: the client
//! is read no faster than the server takes the body). Its framing is one
//! plain `Content-Length`, or `chunked` (decoded here by the decoder that
//! follows servers' chunked answers, its trailers handed on as fields).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::chunked::Chunked;
use crate::http::interim::{ContinueOwed, InterimSink};
use crate::http::BoxError;

/// Pieces of the body waiting for the request core.
const QUEUED: usize = 4;
/// What one read of the client asks for at least.
const READ: usize = 16 << 10;
/// Most fields a chunked body's trailer section may hold.
const MAX_TRAILERS: usize = 32;

/// How a request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// What the connection's task hands the request core.
pub enum Piece {
    Frame(Frame<Bytes>),
    /// The body ended (a chunked one: its last chunk and trailers came).
    End,
    Failed(BoxError),
}

/// The body as the request core sees it.
pub struct QueuedBody {
    pieces: mpsc::Receiver<Piece>,
    /// Bytes still to come, when stated.
    left: Option<u64>,
    ended: bool,
    /// For a client that said `Expect: 100-continue`.
    to_continue: ContinueOwed,
}

/// Where the connection's task puts the body's pieces.
pub type Feed = mpsc::Sender<Piece>;

/// A body framed by `framing`, and where its pieces go in.
pub fn queued(framing: Framing) -> (QueuedBody, Feed) {
    let (feed, pieces) = mpsc::channel(QUEUED);
    let left = match framing {
        Framing::Length(length) => Some(length),
        Framing::Chunked => None,
    };
    let body = QueuedBody {
        pieces,
        left,
        ended: left == Some(0),
        to_continue: ContinueOwed::default(),
    };
    (body, feed)
}

impl QueuedBody {
    /// Answers the client's `Expect: 100-continue` through `sink` when
    /// the body is first asked for (unless some of it came already).
    pub fn continue_through(mut self, sink: InterimSink) -> Self {
        self.to_continue = ContinueOwed::to(sink);
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
        if self.ended {
            return Poll::Ready(None);
        }
        let arrived = !self.pieces.is_empty();
        self.to_continue.body_asked(arrived);
        let piece = std::task::ready!(self.pieces.poll_recv(cx));
        Poll::Ready(match piece {
            Some(Piece::Frame(frame)) => {
                if let (Some(left), Some(data)) = (&mut self.left, frame.data_ref()) {
                    *left -= data.len() as u64;
                    self.ended = *left == 0;
                }
                Some(Ok(frame))
            }
            Some(Piece::End) => {
                self.ended = true;
                None
            }
            Some(Piece::Failed(err)) => Some(Err(err)),
            None => Some(Err("the request body was cut short".into())),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(left) => SizeHint::with_exact(left),
            None => SizeHint::default(),
        }
    }
}

/// Reads the body framed by `framing` from `client` (after the bytes
/// already in `read`) into `feed`. `read` keeps what came after the body:
/// the next request. Whether the body was read whole.
pub async fn pump<R: AsyncRead + Unpin>(
    client: &mut R,
    read: &mut BytesMut,
    framing: Framing,
    feed: Feed,
) -> bool {
    let pumped = match framing {
        Framing::Length(length) => pump_length(client, read, length, &feed).await,
        Framing::Chunked => pump_chunked(client, read, &feed).await,
    };
    match pumped {
        // Read whole, whether or not the core still listens for its end.
        Ok(()) => {
            let _ = feed.send(Piece::End).await;
            true
        }
        // The request core no longer wants it (it answered, or failed).
        Err(None) => false,
        Err(Some(err)) => {
            let _ = feed.send(Piece::Failed(err)).await;
            false
        }
    }
}

/// Why a body was not read whole: the client's fault, or none (the
/// request core stopped reading).
type Unread = Option<BoxError>;

/// Reads more of the client's bytes into `read`, which is empty.
async fn read_more<R: AsyncRead + Unpin>(
    client: &mut R,
    read: &mut BytesMut,
) -> Result<(), Unread> {
    read.reserve(READ);
    match client.read_buf(read).await {
        Ok(0) | Err(_) => Err(Some("the client left before its body ended".into())),
        Ok(_) => Ok(()),
    }
}

async fn send(feed: &Feed, frame: Frame<Bytes>) -> Result<(), Unread> {
    feed.send(Piece::Frame(frame)).await.map_err(|_| None)
}

async fn pump_length<R: AsyncRead + Unpin>(
    client: &mut R,
    read: &mut BytesMut,
    mut length: u64,
    feed: &Feed,
) -> Result<(), Unread> {
    while length > 0 {
        if read.is_empty() {
            read_more(client, read).await?;
        }
        let take = read
            .len()
            .min(usize::try_from(length).unwrap_or(usize::MAX));
        length -= take as u64;
        send(feed, Frame::data(read.split_to(take).freeze())).await?;
    }
    Ok(())
}

async fn pump_chunked<R: AsyncRead + Unpin>(
    client: &mut R,
    read: &mut BytesMut,
    feed: &Feed,
) -> Result<(), Unread> {
    let mut chunked = Chunked::default();
    let mut trailer = Vec::new();
    while !chunked.done() {
        if read.is_empty() {
            read_more(client, read).await?;
        }
        let step = chunked
            .next_data(read)
            .map_err(|malformed| Some(malformed.0.into()))?;
        trailer.extend_from_slice(&read[step.trailer.clone()]);
        let mut taken = read.split_to(step.taken);
        if !step.data.is_empty() {
            let data = taken.split_off(step.data.start).split_to(step.data.len());
            send(feed, Frame::data(data.freeze())).await?;
        }
    }
    let fields =
        trailer_fields(&trailer).ok_or_else(|| Some("malformed trailer section".into()))?;
    if !fields.is_empty() {
        send(feed, Frame::trailers(fields)).await?;
    }
    Ok(())
}

/// The fields of a trailer section (its bytes, last empty line included).
fn trailer_fields(section: &[u8]) -> Option<HeaderMap> {
    let mut parsed = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let httparse::Status::Complete((_, fields)) =
        httparse::parse_headers(section, &mut parsed).ok()?
    else {
        return None;
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        map.append(
            HeaderName::from_bytes(field.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(field.value).ok()?,
        );
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn read_through(
        framing: Framing,
        read: &[u8],
        client: &'static [u8],
    ) -> (
        Result<http_body_util::Collected<Bytes>, BoxError>,
        bool,
        BytesMut,
    ) {
        let (body, feed) = queued(framing);
        let mut read = BytesMut::from(read);
        let mut client = client;
        let pumping = tokio::spawn(async move {
            let whole = pump(&mut client, &mut read, framing, feed).await;
            (whole, read)
        });
        let collected = body.collect().await;
        let (whole, rest) = pumping.await.unwrap();
        (collected, whole, rest)
    }

    #[tokio::test]
    async fn a_body_is_read_to_its_length_and_what_follows_stays() {
        let (got, whole, rest) =
            read_through(Framing::Length(10), b"hello", b" worldGET / HTTP/1.1\r\n").await;
        assert_eq!(got.unwrap().to_bytes(), "hello worl");
        assert!(whole);
        assert_eq!(&rest[..], b"dGET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_with_its_trailers_and_what_follows_stays() {
        let (got, whole, rest) = read_through(
            Framing::Chunked,
            b"5;x=1\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r\nChecksum: abc\r\n\r\nGET /",
        )
        .await;
        let got = got.unwrap();
        assert_eq!(got.trailers().unwrap()["checksum"], "abc");
        assert_eq!(got.to_bytes(), "hello world");
        assert!(whole);
        assert_eq!(&rest[..], b"GET /");
    }

    #[tokio::test]
    async fn a_client_that_leaves_early_or_breaks_its_chunking_fails_the_body() {
        let (got, whole, _) = read_through(Framing::Length(10), b"", b"hello").await;
        assert!(got.is_err() && !whole);
        let (got, whole, _) = read_through(Framing::Chunked, b"", b"5\r\nhello\r\n0\r\n").await;
        assert!(got.is_err() && !whole);
        let (got, whole, _) =
            read_through(Framing::Chunked, b"", b"5 2\r\nhello\r\n0\r\n\r\n").await;
        assert!(got.is_err() && !whole);
    }
}
