//! The frames a client sends, checked as RFC 9113 asks: connection errors
//! end the connection with a GOAWAY, stream errors reset only their
//! stream, and abuse (streams reset as soon as opened, header blocks that
//! never end, too many faulty streams) ends it with ENHANCE_YOUR_CALM.

use bytes::{Buf, Bytes};

use super::conn::{Connection, MAX_CONCURRENT_STREAMS};
use super::frame::{self, flag, kind, setting, Head, Reason};
use super::head::{Fields, MAX_HEADER_LIST_SIZE};
use super::state::{close, fatal, ConnError, Partial, Sending, Stream};

/// Encoded bytes one header block may take, CONTINUATION frames included.
const MAX_BLOCK: usize = MAX_HEADER_LIST_SIZE;
/// Streams a client may reset before their answer beyond those it let finish.
const CANCEL_ALLOWANCE: u64 = 100;
/// Streams zkgate may reset for a client's faults beyond those it served.
const FAULT_ALLOWANCE: u64 = 100;

impl Connection {
    /// Handles every whole frame in the read buffer.
    pub(super) fn on_bytes(&mut self) -> Result<(), ConnError> {
        if !self.preface {
            let have = self.read_buf.len().min(frame::PREFACE.len());
            if self.read_buf[..have] != frame::PREFACE[..have] {
                return Err(fatal(
                    Reason::PROTOCOL_ERROR,
                    "not the HTTP/2 connection preface",
                ));
            }
            if have < frame::PREFACE.len() {
                return Ok(());
            }
            self.read_buf.advance(frame::PREFACE.len());
            self.preface = true;
        }
        while let Some(head) = frame::Head::parse(&self.read_buf) {
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(fatal(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame larger than allowed",
                ));
            }
            if self.read_buf.len() < frame::HEAD_LEN + head.len {
                self.read_buf
                    .reserve(frame::HEAD_LEN + head.len - self.read_buf.len());
                return Ok(());
            }
            self.read_buf.advance(frame::HEAD_LEN);
            let payload = self.read_buf.split_to(head.len).freeze();
            self.on_frame(head, payload)?;
            if self.failed.is_some() {
                break;
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if !self.settings_seen {
            if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                return Err(fatal(
                    Reason::PROTOCOL_ERROR,
                    "the preface not followed by SETTINGS",
                ));
            }
            self.settings_seen = true;
        }
        if let Some(partial) = &self.partial {
            if head.kind != kind::CONTINUATION || head.stream != partial.stream {
                return Err(fatal(Reason::PROTOCOL_ERROR, "a header block broken off"));
            }
        }
        let on_connection = matches!(head.kind, kind::SETTINGS | kind::PING | kind::GOAWAY);
        let on_stream = matches!(
            head.kind,
            kind::DATA
                | kind::HEADERS
                | kind::PRIORITY
                | kind::RST_STREAM
                | kind::PUSH_PROMISE
                | kind::CONTINUATION
        );
        if (on_connection && head.stream != 0) || (on_stream && head.stream == 0) {
            return Err(fatal(Reason::PROTOCOL_ERROR, "a frame on the wrong stream"));
        }
        match head.kind {
            kind::DATA => self.on_data(head, payload),
            kind::HEADERS => self.on_headers(head, payload),
            kind::PRIORITY => {
                if head.len != 5 {
                    self.reset(head.stream, Reason::FRAME_SIZE_ERROR);
                }
                Ok(())
            }
            kind::RST_STREAM => self.on_rst_stream(head),
            kind::SETTINGS => self.on_settings(head, &payload),
            kind::PUSH_PROMISE => Err(fatal(Reason::PROTOCOL_ERROR, "a client's PUSH_PROMISE")),
            kind::PING => {
                if head.len != 8 {
                    return Err(fatal(Reason::FRAME_SIZE_ERROR, "a PING not 8 bytes long"));
                }
                if !head.has(flag::ACK) {
                    frame::ping_ack(&mut self.write_buf, &payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if head.len < 8 {
                    return Err(fatal(Reason::FRAME_SIZE_ERROR, "a GOAWAY too short"));
                }
                self.client_gone = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(head, &payload),
            kind::CONTINUATION => self.on_continuation(head, payload),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.has(flag::ACK) {
            return match head.len {
                0 => Ok(()),
                _ => Err(fatal(
                    Reason::FRAME_SIZE_ERROR,
                    "a SETTINGS acknowledgement with a payload",
                )),
            };
        }
        if head.len % 6 != 0 {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "a SETTINGS frame of a bad length",
            ));
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                setting::HEADER_TABLE_SIZE => {
                    self.table_size_update = Some((value as usize).min(4096));
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(fatal(Reason::PROTOCOL_ERROR, "ENABLE_PUSH neither 0 nor 1"));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(fatal(
                            Reason::FLOW_CONTROL_ERROR,
                            "an initial window too large",
                        ));
                    }
                    let delta = value - self.peer.initial_window;
                    self.peer.initial_window = value;
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > frame::MAX_WINDOW {
                            return Err(fatal(
                                Reason::FLOW_CONTROL_ERROR,
                                "a stream window too large",
                            ));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(fatal(
                            Reason::PROTOCOL_ERROR,
                            "a MAX_FRAME_SIZE out of range",
                        ));
                    }
                    // Larger frames save little; 64 KiB keeps writes small.
                    self.peer.max_frame = (value as usize).min(64 * 1024);
                }
                _ => {}
            }
        }
        frame::settings_ack(&mut self.write_buf);
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let Ok(bytes) = <[u8; 4]>::try_from(payload) else {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "a WINDOW_UPDATE not 4 bytes long",
            ));
        };
        let increment = i64::from(u32::from_be_bytes(bytes) & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(fatal(Reason::PROTOCOL_ERROR, "a WINDOW_UPDATE of 0"));
            }
            self.send_window += increment;
            if self.send_window > frame::MAX_WINDOW {
                return Err(fatal(
                    Reason::FLOW_CONTROL_ERROR,
                    "the connection window overflowed",
                ));
            }
            return Ok(());
        }
        let Some(stream) = self.streams.get_mut(&head.stream) else {
            if head.stream > self.last_stream {
                return Err(fatal(
                    Reason::PROTOCOL_ERROR,
                    "a WINDOW_UPDATE on an idle stream",
                ));
            }
            return Ok(());
        };
        stream.send_window += increment;
        if increment == 0 {
            self.reset(head.stream, Reason::PROTOCOL_ERROR);
        } else if stream.send_window > frame::MAX_WINDOW {
            self.reset(head.stream, Reason::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }

    fn on_rst_stream(&mut self, head: Head) -> Result<(), ConnError> {
        if head.len != 4 {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "a RST_STREAM not 4 bytes long",
            ));
        }
        if head.stream > self.last_stream {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "a RST_STREAM on an idle stream",
            ));
        }
        if let Some(stream) = self.streams.remove(&head.stream) {
            if matches!(stream.sending, Sending::Waiting) {
                self.cancelled += 1;
            }
            close(stream, "the client reset the stream");
            if self.cancelled > CANCEL_ALLOWANCE + self.completed {
                return Err(fatal(
                    Reason::ENHANCE_YOUR_CALM,
                    "streams reset as soon as opened",
                ));
            }
        }
        Ok(())
    }

    fn on_data(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        self.recv_window -= head.len as i64;
        if self.recv_window < 0 {
            return Err(fatal(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        let Some(range) = frame::unpadded(&head, &payload) else {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "padding longer than its frame",
            ));
        };
        let data = payload.slice(range);
        // Padding is given back at once, as is DATA nobody will read.
        self.unclaimed += (head.len - data.len()) as i64;
        let open = self
            .streams
            .get_mut(&head.stream)
            .filter(|s| s.inbound.is_some());
        let Some(stream) = open else {
            if head.stream > self.last_stream {
                return Err(fatal(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
            }
            self.unclaimed += data.len() as i64;
            self.reset(head.stream, Reason::STREAM_CLOSED);
            return Ok(());
        };
        stream.recv_window -= head.len as i64;
        stream.received += data.len() as u64;
        if stream.recv_window < 0 {
            self.unclaimed += data.len() as i64;
            self.reset(head.stream, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        let end = head.has(flag::END_STREAM);
        let length_differs = stream.declared.is_some_and(|declared| {
            stream.received > declared || (end && stream.received != declared)
        });
        if length_differs {
            self.unclaimed += data.len() as i64;
            self.reset(head.stream, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let inbound = stream.inbound.as_ref().expect("open");
        if !data.is_empty() && !inbound.push(data.clone()) {
            self.unclaimed += data.len() as i64;
        }
        if end {
            inbound.finish(None);
            stream.inbound = None;
            self.close_if_done(head.stream);
        }
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if head.stream % 2 == 0 {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "a client stream with an even number",
            ));
        }
        let Some(mut range) = frame::unpadded(&head, &payload) else {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "padding longer than its frame",
            ));
        };
        if head.has(flag::PRIORITY) {
            if range.len() < 5 {
                return Err(fatal(Reason::FRAME_SIZE_ERROR, "a HEADERS frame too short"));
            }
            range.start += 5;
        }
        let partial = Partial {
            stream: head.stream,
            end_stream: head.has(flag::END_STREAM),
            block: payload[range].to_vec(),
        };
        if head.has(flag::END_HEADERS) {
            self.on_header_block(partial)
        } else {
            self.partial = Some(partial);
            Ok(())
        }
    }

    fn on_continuation(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        let Some(mut partial) = self.partial.take() else {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "a CONTINUATION without a header block",
            ));
        };
        if partial.block.len() + payload.len() > MAX_BLOCK {
            return Err(fatal(Reason::ENHANCE_YOUR_CALM, "a header block too large"));
        }
        partial.block.extend_from_slice(&payload);
        if head.has(flag::END_HEADERS) {
            self.on_header_block(partial)
        } else {
            self.partial = Some(partial);
            Ok(())
        }
    }

    /// A whole header block: a request, or a request's trailers.
    fn on_header_block(&mut self, partial: Partial) -> Result<(), ConnError> {
        let mut fields = Fields::for_block(partial.block.len());
        // Every block is decoded, even one refused: the decoder's table
        // must see what the client's encoder did.
        self.decoder
            .decode_with_cb(&partial.block, |name, value| fields.add(&name, &value))
            .map_err(|_| {
                fatal(
                    Reason::COMPRESSION_ERROR,
                    "a header block that does not decode",
                )
            })?;
        let id = partial.stream;
        if id <= self.last_stream {
            return self.on_trailers(id, partial.end_stream, fields);
        }
        self.last_stream = id;
        if self.going_away.is_some() || self.client_gone {
            // Opened after the GOAWAY: not served (the client may retry it).
            return Ok(());
        }
        if self.streams.len() >= MAX_CONCURRENT_STREAMS {
            self.refuse(id, Reason::REFUSED_STREAM)?;
            return Ok(());
        }
        self.open(id, partial.end_stream, fields)
    }

    fn on_trailers(&mut self, id: u32, end_stream: bool, fields: Fields) -> Result<(), ConnError> {
        let open = self.streams.get_mut(&id).and_then(|s| s.inbound.clone());
        let Some(inbound) = open else {
            self.reset(id, Reason::STREAM_CLOSED);
            return Ok(());
        };
        let stream = self.streams.get_mut(&id).expect("open");
        let length_differs = stream.declared.is_some_and(|d| d != stream.received);
        match fields.into_trailers() {
            Ok(trailers) if end_stream && !length_differs => {
                inbound.finish(Some(trailers));
                stream.inbound = None;
                self.close_if_done(id);
            }
            _ => self.refuse(id, Reason::PROTOCOL_ERROR)?,
        }
        Ok(())
    }

    /// Resets stream `id` for a fault of the client's, counting it.
    pub(super) fn refuse(&mut self, id: u32, reason: Reason) -> Result<(), ConnError> {
        self.reset(id, reason);
        self.count_fault()
    }

    pub(super) fn count_fault(&mut self) -> Result<(), ConnError> {
        self.refused += 1;
        if self.refused > FAULT_ALLOWANCE + self.completed {
            return Err(fatal(Reason::ENHANCE_YOUR_CALM, "too many faulty streams"));
        }
        Ok(())
    }

    /// Resets stream `id`, ending whatever it was doing.
    pub(super) fn reset(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.write_buf, id, reason);
        if let Some(stream) = self.streams.remove(&id) {
            close(stream, "the stream was reset");
        }
    }

    /// Forgets stream `id` once both sides are done with it.
    pub(super) fn close_if_done(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(Stream::closed) {
            self.streams.remove(&id);
        }
    }
}
