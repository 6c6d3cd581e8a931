//! A request's header block made a stream: the request handed to the
//! request core with its body (or, for an extended CONNECT, its tunnel),
//! or, for a request refused before it is one, the request core's answer.

use std::sync::Arc;

use futures_util::future::{AbortHandle, Abortable};
use http::{header, Method, StatusCode};

use super::conn::Connection;
use super::frame::Reason;
use super::head::{Fields, Refusal};
use super::lane::{Hpack, Lane};
use super::state::{Answering, ConnError, Stream, Work};
use super::stream::{Inbound, Outbound, RequestBody, Tunnel};
use crate::http::full::{Answer, LaneRequest};
use crate::http::interim::{InterimSink, InterimTarget};
use crate::http::request_body::InboundBody;
use crate::http::switched::SwitchedSlot;

impl Connection {
    /// Opens stream `id` for the request `fields` make, and hands it to
    /// the request core.
    pub(super) fn open(
        &mut self,
        id: u32,
        end_stream: bool,
        fields: Fields,
    ) -> Result<(), ConnError> {
        // The common stream takes the request core's lane.
        if let Some(target) = end_stream.then(|| Lane::takes(&fields)).flatten() {
            self.open_lane(id, Lane::new(fields, target));
            return Ok(());
        }
        let request = match fields.into_request() {
            Ok(request) => request,
            Err(Refusal::Reset(_)) => return self.refuse(id, Reason::PROTOCOL_ERROR),
            Err(Refusal::Answer(status)) => return self.answer_refused(id, end_stream, status),
        };
        let declared = match declared_length(request.headers()) {
            Ok(declared) => declared,
            Err(()) => return self.refuse(id, Reason::PROTOCOL_ERROR),
        };
        if end_stream && declared.is_some_and(|n| n > 0) {
            return self.refuse(id, Reason::PROTOCOL_ERROR);
        }
        let switch = request.extensions().get::<hyper::ext::Protocol>().is_some();
        let head_only = request.method() == Method::HEAD;
        // The stream's DATA: a request body's, or a tunnel's once switched.
        let inbound = (!end_stream).then(|| Inbound::new(Arc::clone(&self.shared)));
        let (tunnel, request) = match &inbound {
            Some(inbound) if switch => {
                let outbound = Arc::new(Outbound::default());
                let tunnel = Tunnel::new(Arc::clone(inbound), Arc::clone(&outbound));
                let mut request = request.map(|()| InboundBody::empty());
                request
                    .extensions_mut()
                    .insert(SwitchedSlot::new(Box::new(tunnel)));
                (Some(outbound), request)
            }
            Some(inbound) => {
                let mut body = RequestBody::new(Arc::clone(inbound), declared);
                if expects_continue(request.headers()) {
                    body = body.continue_through(self.interim_sink(id));
                }
                (None, request.map(|()| InboundBody::Other(Box::pin(body))))
            }
            // Bodiless (its HEADERS ended the stream): nothing to share.
            None => (None, request.map(|()| InboundBody::empty())),
        };
        // A server's interim answers come back on the stream.
        let serving = self.service.serve(request, Some(self.interim_sink(id)));
        let abort = self.answer_by(id, Work::Core(serving));
        self.streams.insert(
            id,
            Stream {
                declared,
                abort: Some(abort),
                head_only,
                tunnel,
                ..Stream::opened(inbound, self.peer.initial_window)
            },
        );
        Ok(())
    }

    /// Opens stream `id`, whose HEADERS ended it, for the lane's request.
    fn open_lane(&mut self, id: u32, lane: Lane) {
        let head_only = lane.method() == Method::HEAD;
        let serving = self
            .service
            .serve_lane::<_, Hpack>(lane, Some(self.interim_sink(id)));
        let abort = self.answer_by(id, Work::Lane(serving));
        self.streams.insert(
            id,
            Stream {
                abort: Some(abort),
                head_only,
                ..Stream::opened(None, self.peer.initial_window)
            },
        );
    }

    /// Has `work` answer stream `id`; what stops it if the stream ends first.
    fn answer_by(&mut self, id: u32, work: Work) -> AbortHandle {
        let (abort, registration) = AbortHandle::new_pair();
        let answering = Answering { stream: id, work };
        self.serving.push(Abortable::new(answering, registration));
        abort
    }

    fn interim_sink(&self, id: u32) -> InterimSink {
        let target: Arc<dyn InterimTarget> = self.shared.clone();
        InterimSink::new(target, id)
    }

    /// Answers a request refused before the request core saw it.
    fn answer_refused(
        &mut self,
        id: u32,
        end_stream: bool,
        status: StatusCode,
    ) -> Result<(), ConnError> {
        self.count_fault()?;
        // Whatever body the client still sends is not read.
        let unread = (!end_stream).then(|| Inbound::unread(Arc::clone(&self.shared)));
        self.streams
            .insert(id, Stream::opened(unread, self.peer.initial_window));
        let answer = self.service.refuse(status);
        self.start_answer(id, Answer::Response(answer));
        Ok(())
    }
}

/// The request's `content-length`: none, one number, or (for an empty,
/// repeated or not numeric value) an error that resets the stream.
fn declared_length(headers: &http::HeaderMap) -> Result<Option<u64>, ()> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &http::HeaderValue| {
        let text = v.to_str().map_err(|_| ())?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        text.parse::<u64>().map_err(|_| ())
    };
    let length = parse(first)?;
    for other in values {
        if parse(other)? != length {
            return Err(());
        }
    }
    Ok(Some(length))
}

/// Whether the request asks to be told to go on before sending its body.
fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
