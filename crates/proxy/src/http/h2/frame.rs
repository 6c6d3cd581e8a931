//! HTTP/2 frames (RFC 9113 §4, §6): the nine-byte head every frame starts
//! with, the frame types, flags, settings and error codes zkgate uses, and
//! writers that append whole frames to a connection's write buffer.

use bytes::{BufMut, BytesMut};

/// What a cleartext or TLS client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes in a frame's head.
pub const HEAD_LEN: usize = 9;
/// The largest frame payload either side may send before it is told
/// otherwise; zkgate never asks clients for larger ones.
pub const DEFAULT_MAX_FRAME: usize = 16_384;
/// Flow-control windows start here (RFC 9113 §6.9.2) and never exceed
/// `MAX_WINDOW`.
pub const DEFAULT_WINDOW: i64 = 65_535;
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Settings identifiers (RFC 9113 §6.5.2, RFC 8441 §3).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// Error codes of RST_STREAM and GOAWAY (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => return write!(f, "error code {:#x}", self.0),
        };
        f.write_str(name)
    }
}

/// A frame's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    /// The head at the start of `bytes`, if all nine bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let head: &[u8; HEAD_LEN] = bytes.get(..HEAD_LEN)?.try_into().ok()?;
        Some(Head {
            len: u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize,
            kind: head[3],
            flags: head[4],
            // The reserved bit is ignored on receipt (RFC 9113 §4.1).
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame head.
pub fn head(buf: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    buf.reserve(HEAD_LEN + len);
    buf.put_slice(&(len as u32).to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
}

/// Appends a SETTINGS frame with `values`.
pub fn settings(buf: &mut BytesMut, values: &[(u16, u32)]) {
    head(buf, values.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        buf.put_u16(id);
        buf.put_u32(value);
    }
}

pub fn settings_ack(buf: &mut BytesMut) {
    head(buf, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn ping_ack(buf: &mut BytesMut, payload: &[u8]) {
    head(buf, payload.len(), kind::PING, flag::ACK, 0);
    buf.put_slice(payload);
}

pub fn goaway(buf: &mut BytesMut, last_stream: u32, reason: Reason) {
    head(buf, 8, kind::GOAWAY, 0, 0);
    buf.put_u32(last_stream);
    buf.put_u32(reason.0);
}

pub fn rst_stream(buf: &mut BytesMut, stream: u32, reason: Reason) {
    head(buf, 4, kind::RST_STREAM, 0, stream);
    buf.put_u32(reason.0);
}

pub fn window_update(buf: &mut BytesMut, stream: u32, increment: u32) {
    head(buf, 4, kind::WINDOW_UPDATE, 0, stream);
    buf.put_u32(increment);
}

pub fn data(buf: &mut BytesMut, stream: u32, payload: &[u8], end: bool) {
    let flags = if end { flag::END_STREAM } else { 0 };
    head(buf, payload.len(), kind::DATA, flags, stream);
    buf.put_slice(payload);
}

/// Appends a header block as HEADERS and, if it is larger than one frame
/// may be, CONTINUATION frames.
pub fn headers(buf: &mut BytesMut, stream: u32, block: &[u8], end_stream: bool, max_frame: usize) {
    let mut chunks = block.chunks(max_frame).peekable();
    let first = chunks.next().unwrap_or_default();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    head(buf, first.len(), kind::HEADERS, flags, stream);
    buf.put_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        head(buf, chunk.len(), kind::CONTINUATION, flags, stream);
        buf.put_slice(chunk);
    }
}

/// A payload without its padding (RFC 9113 §6.1): `None` if the padding
/// is longer than the frame.
pub fn unpadded(head: &Head, payload: &[u8]) -> Option<std::ops::Range<usize>> {
    if !head.has(flag::PADDED) {
        return Some(0..payload.len());
    }
    let pad = *payload.first()? as usize;
    let end = payload.len().checked_sub(pad)?;
    (end >= 1).then_some(1..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_as_written_and_the_reserved_bit_is_ignored() {
        let mut buf = BytesMut::new();
        head(&mut buf, 70_000, kind::DATA, flag::END_STREAM, 7);
        let parsed = Head::parse(&buf).unwrap();
        assert_eq!(
            parsed,
            Head {
                len: 70_000,
                kind: kind::DATA,
                flags: flag::END_STREAM,
                stream: 7
            }
        );
        buf[5] |= 0x80;
        assert_eq!(Head::parse(&buf).unwrap().stream, 7);
        assert_eq!(Head::parse(&buf[..8]), None);
    }

    #[test]
    fn a_large_header_block_is_split_into_continuations() {
        let mut buf = BytesMut::new();
        headers(&mut buf, 3, &[1u8; 40], true, 16);
        let first = Head::parse(&buf).unwrap();
        assert_eq!(
            (first.kind, first.len, first.flags),
            (kind::HEADERS, 16, flag::END_STREAM)
        );
        let second = Head::parse(&buf[HEAD_LEN + 16..]).unwrap();
        assert_eq!((second.kind, second.flags), (kind::CONTINUATION, 0));
        let third = Head::parse(&buf[2 * (HEAD_LEN + 16)..]).unwrap();
        assert_eq!(
            (third.kind, third.len, third.flags),
            (kind::CONTINUATION, 8, flag::END_HEADERS)
        );
    }

    #[test]
    fn padding_longer_than_the_frame_is_refused() {
        let padded = Head {
            len: 4,
            kind: kind::DATA,
            flags: flag::PADDED,
            stream: 1,
        };
        assert_eq!(unpadded(&padded, &[2, b'a', 0, 0]), Some(1..2));
        assert_eq!(unpadded(&padded, &[3, b'a', 0, 0]), Some(1..1));
        assert_eq!(unpadded(&padded, &[4, b'a', 0, 0]), None);
        assert_eq!(unpadded(&padded, &[]), None);
    }
}
