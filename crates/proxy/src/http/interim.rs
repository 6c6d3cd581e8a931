//! Interim (1xx) answers of a server, on their way to a client whose wire
//! can carry them. The client's adapter puts an [`InterimSink`] in the
//! request (zkgate's HTTP/2 layer does); whichever path reads the server's
//! answer hands it each 1xx head it reads before the final one (`direct`
//! for bodiless requests, hyper's HTTP/1.1 client for the others). The
//! fast path writes them to its HTTP/1.1 clients itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{HeaderMap, Request, StatusCode};

/// Where one connection's interim answers go, by stream.
pub trait InterimTarget: Send + Sync {
    fn interim(&self, stream: u32, status: StatusCode, headers: HeaderMap);
}

/// Where one request's interim answers go.
#[derive(Clone)]
pub struct InterimSink {
    target: Arc<dyn InterimTarget>,
    stream: u32,
}

impl InterimSink {
    pub fn new(target: Arc<dyn InterimTarget>, stream: u32) -> Self {
        InterimSink { target, stream }
    }

    /// Passes on one interim answer.
    pub fn send(&self, status: StatusCode, headers: HeaderMap) {
        self.target.interim(self.stream, status, headers);
    }
}

/// A `100 Continue` owed to a client that said `Expect: 100-continue`:
/// sent when its body is first asked for (on its way to a server), unless
/// some of it came already. The server never sees the `Expect`.
#[derive(Default)]
pub struct ContinueOwed(Option<InterimSink>);

impl ContinueOwed {
    /// Owed to the client of `sink`.
    pub fn to(sink: InterimSink) -> Self {
        ContinueOwed(Some(sink))
    }

    /// The body is asked for; `arrived`: some of it is here already.
    pub fn body_asked(&mut self, arrived: bool) {
        if let Some(sink) = self.0.take() {
            if !arrived {
                sink.send(StatusCode::CONTINUE, HeaderMap::new());
            }
        }
    }
}

/// Marks a server's answer that came after interim answers: where such
/// an exchange ends is the server's word alone, so its connection is not
/// used again (as on the fast path).
#[derive(Clone, Copy, Debug)]
pub struct AfterInterim;

/// Has hyper's HTTP/1.1 client hand `request`'s interim answers to its
/// sink, if it has one; what it returns tells whether any came.
pub fn hook_hyper<B>(request: &mut Request<B>) -> Arc<AtomicBool> {
    let sink = request.extensions().get::<InterimSink>().cloned();
    let seen = Arc::new(AtomicBool::new(false));
    let mark = Arc::clone(&seen);
    hyper::ext::on_informational(request, move |interim| {
        mark.store(true, Ordering::Relaxed);
        if let Some(sink) = &sink {
            let mut headers = interim.headers().clone();
            crate::http::headers::strip_hop_by_hop(&mut headers);
            sink.send(interim.status(), headers);
        }
    });
    seen
}
