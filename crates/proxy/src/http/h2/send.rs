//! Answers going out: a response's head as a header block, then its body
//! as DATA within the client's windows (or the bytes of a tunnel), then
//! its trailers.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Body;

use super::conn::{Connection, WRITE_HIGH};
use super::frame::{self, Reason};
use super::head::{encode_fields, encode_head};
use super::state::{Sending, Source};
use super::stream::TunnelOut;
use crate::http::full::Answer;

/// How a stream's sending ended in one round.
enum Ended {
    Whole,
    Trailers(HeaderMap),
    Failed,
}

impl Connection {
    /// Sends the head of stream `id`'s answer; its body follows as the
    /// windows allow.
    pub(super) fn start_answer(&mut self, id: u32, answer: Answer) {
        // Interim answers read before this one go first.
        self.send_interims();
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.abort = None;
        let mut block = Vec::with_capacity(128);
        announce_table_size(&mut self.table_size_update, &mut block);
        let (status, body) = match answer {
            Answer::Response(mut response) => {
                encode_head(response.status(), response.headers_mut(), &mut block);
                (response.status(), response.into_body())
            }
            Answer::Encoded {
                status,
                block: encoded,
                body,
            } => {
                if block.is_empty() {
                    block = encoded;
                } else {
                    block.extend_from_slice(&encoded);
                }
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    body,
                )
            }
        };
        // An extended CONNECT that the server accepted becomes a tunnel.
        let tunnel = stream.tunnel.take().filter(|_| status.is_success());
        let bodiless = tunnel.is_none()
            && (stream.head_only
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
                || body.is_end_stream());
        frame::headers(
            &mut self.write_buf,
            id,
            &block,
            bodiless,
            self.peer.max_frame,
        );
        let source = match tunnel {
            Some(outbound) => Source::Tunnel(TunnelOut(outbound)),
            None => Source::Response(body),
        };
        if bodiless {
            self.finish_answer(id);
        } else {
            stream.sending = Sending::Body {
                source,
                pending: Bytes::new(),
                last: false,
            };
        }
    }

    /// Sends the servers' interim (1xx) answers that came for streams
    /// still waiting for their final one.
    pub(super) fn send_interims(&mut self) -> bool {
        let interims = self.shared.take_interims();
        let progress = !interims.is_empty();
        for (id, status, mut headers) in interims {
            let waiting = self
                .streams
                .get(&id)
                .is_some_and(|s| matches!(s.sending, Sending::Waiting));
            if !waiting || !status.is_informational() || status == StatusCode::SWITCHING_PROTOCOLS {
                continue;
            }
            let mut block = Vec::with_capacity(64);
            announce_table_size(&mut self.table_size_update, &mut block);
            encode_head(status, &mut headers, &mut block);
            frame::headers(&mut self.write_buf, id, &block, false, self.peer.max_frame);
        }
        progress
    }

    /// Sends what the answers' bodies have ready, as far as the windows
    /// and the write buffer allow; whether anything went out.
    pub(super) fn send_bodies(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut ended = Vec::new();
        for (&id, stream) in &mut self.streams {
            let Sending::Body {
                source,
                pending,
                last,
            } = &mut stream.sending
            else {
                continue;
            };
            loop {
                if self.write_buf.len() >= WRITE_HIGH {
                    break;
                }
                if !pending.is_empty() {
                    let allowed = stream
                        .send_window
                        .min(self.send_window)
                        .min(self.peer.max_frame as i64);
                    if allowed <= 0 {
                        break;
                    }
                    let chunk = pending.split_to((allowed as usize).min(pending.len()));
                    let end = *last && pending.is_empty();
                    frame::data(&mut self.write_buf, id, &chunk, end);
                    stream.send_window -= chunk.len() as i64;
                    self.send_window -= chunk.len() as i64;
                    progress = true;
                    if end {
                        ended.push((id, Ended::Whole));
                        break;
                    }
                    continue;
                }
                match source.poll_frame(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            *last = source.is_end_stream();
                            *pending = data;
                            if pending.is_empty() && *last {
                                frame::data(&mut self.write_buf, id, &[], true);
                                ended.push((id, Ended::Whole));
                                break;
                            }
                        }
                        Err(frame) => {
                            let trailers = frame.into_trailers().unwrap_or_default();
                            ended.push((id, Ended::Trailers(trailers)));
                            break;
                        }
                    },
                    Poll::Ready(None) => {
                        frame::data(&mut self.write_buf, id, &[], true);
                        ended.push((id, Ended::Whole));
                        break;
                    }
                    Poll::Ready(Some(Err(_))) => {
                        ended.push((id, Ended::Failed));
                        break;
                    }
                }
            }
        }
        for (id, end) in ended {
            progress = true;
            match end {
                Ended::Whole => self.finish_answer(id),
                Ended::Trailers(mut trailers) => {
                    let mut block = Vec::with_capacity(64);
                    announce_table_size(&mut self.table_size_update, &mut block);
                    encode_fields(&mut trailers, &mut block);
                    frame::headers(&mut self.write_buf, id, &block, true, self.peer.max_frame);
                    self.finish_answer(id);
                }
                // The server's answer broke off: the client must not take
                // what it got for the whole answer.
                Ended::Failed => self.reset(id, Reason::INTERNAL_ERROR),
            }
        }
        progress
    }

    /// Stream `id`'s answer is out whole. A client still sending is told
    /// to stop (RFC 9113 §8.1: RST_STREAM with NO_ERROR).
    fn finish_answer(&mut self, id: u32) {
        self.completed += 1;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.sending = Sending::Done;
        if stream.inbound.is_some() {
            self.reset(id, Reason::NO_ERROR);
        } else {
            self.close_if_done(id);
        }
    }
}

/// Starts a header block with the dynamic table size the client last set,
/// if it changed (RFC 7541 §4.2).
fn announce_table_size(update: &mut Option<usize>, block: &mut Vec<u8>) {
    if let Some(size) = update.take() {
        super::hpack::table_size_update(size, block);
    }
}
