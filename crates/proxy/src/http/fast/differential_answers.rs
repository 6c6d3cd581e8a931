//! What `answer` writes for an HTTP/1.1 client must be read alike by the
//! fast path's response reader and by hyper's HTTP/1.1 client (as any
//! client would read it): accepted, ending where the writer ended it, with
//! the body and (when asked for) trailers the request core gave, and the
//! connection reused exactly when the writer said it may be.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answer::{write_answer, Asked};
use super::differential::{fast, hyper_path, Decided};
use crate::http::BoxError;

/// An answer of the request core, in the shapes it comes in.
#[derive(Clone, Debug)]
struct Case {
    status: u16,
    chunks: Vec<Vec<u8>>,
    /// The body says its length (a message, or a server's stated length).
    known: bool,
    /// The server stated it as `content-length`.
    stated: bool,
    trailers: bool,
    asked: (bool, bool, bool),
}

type TestBody = http_body_util::Either<
    Full<Bytes>,
    StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>,
>;

impl Case {
    fn body_bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    fn response(&self) -> Response<TestBody> {
        let mut builder = Response::builder().status(self.status);
        if self.stated {
            builder = builder.header("content-length", self.body_bytes().len());
        }
        let body = if self.known {
            TestBody::Left(Full::new(Bytes::from(self.body_bytes())))
        } else {
            let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = self
                .chunks
                .iter()
                .map(|chunk| Ok(Frame::data(Bytes::from(chunk.clone()))))
                .collect();
            if self.trailers {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", "abc".parse().unwrap());
                frames.push(Ok(Frame::trailers(trailers)));
            }
            TestBody::Right(StreamBody::new(stream::iter(frames)))
        };
        builder.body(body).unwrap()
    }

    fn asked(&self) -> Asked {
        let (head, trailers, close) = self.asked;
        Asked {
            head,
            trailers,
            close,
        }
    }

    /// Whether the answer carries a body on the wire.
    fn has_body(&self) -> bool {
        !self.asked.0 && ![204, 304].contains(&self.status)
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![200u16, 201, 204, 304, 404, 502]),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(status, chunks, known, stated, trailers, asked)| Case {
            status,
            chunks,
            known,
            stated,
            trailers,
            asked,
        })
}

/// The body and trailers hyper's client reads from `wire`.
async fn read_by_hyper(wire: Vec<u8>, head: bool) -> Option<(Vec<u8>, Option<HeaderMap>)> {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .ok()?;
    tokio::spawn(conn);
    tokio::spawn(async move {
        let mut request = [0u8; 1024];
        let _ = server.read(&mut request).await;
        let _ = server.write_all(&wire).await;
        let _ = server.shutdown().await;
    });
    let method = if head { "HEAD" } else { "GET" };
    let request = http::Request::builder()
        .method(method)
        .uri("/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let collected = response.into_body().collect().await.ok()?;
    let trailers = collected.trailers().cloned();
    Some((collected.to_bytes().to_vec(), trailers))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn every_answer_written_for_an_http1_client_is_read_alike(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let (wire, reusable) = runtime.block_on(async {
            let mut wire = Vec::new();
            let mut out = Vec::new();
            let reusable = write_answer(&mut wire, case.response(), case.asked(), &mut out)
                .await
                .unwrap();
            (wire, reusable)
        });
        let shown = String::from_utf8_lossy(&wire).into_owned();
        let head = case.asked.0;
        let fast = fast(&wire, head);
        prop_assert!(matches!(fast, Decided::Accepted { .. }), "{:?}\n{}", case, shown);
        let hyper = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), hyper_path(wire.clone(), head)).await
        });
        prop_assert_eq!(&hyper.unwrap_or(Decided::Refused), &fast, "{:?}\n{}", case, shown);
        prop_assert_eq!(reusable, !case.asked.2);
        // Where the end is stated, a reader may go on to the next answer
        // exactly when the writer said so (the readers keep no server
        // connection after a bodiless answer, whatever it says).
        if case.has_body() {
            prop_assert_eq!(fast, Decided::Accepted { reused: reusable }, "{:?}\n{}", case, shown);
        }
        let read = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), read_by_hyper(wire.clone(), head)).await
        });
        let (body, trailers) = read.ok().flatten().expect("hyper reads the answer");
        let sent = if case.has_body() { case.body_bytes() } else { Vec::new() };
        prop_assert_eq!(body, sent, "{:?}\n{}", case, shown);
        let trailed = case.has_body() && case.trailers && !case.known && !case.stated && case.asked.1;
        prop_assert_eq!(trailers.is_some(), trailed, "{:?}\n{}", case, shown);
    }
}
