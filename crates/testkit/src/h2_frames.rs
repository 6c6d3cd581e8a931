//! HTTP/2 written and read frame by frame, for tests that send what no
//! HTTP/2 library would (malformed pseudo-headers, a body longer than its
//! `content-length`, floods). Header blocks are HPACK literals without
//! indexing or Huffman coding; answers are read as far as tests need.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
/// HEADERS.
pub const HEADERS: u8 = 0x1;
/// RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// PING.
pub const PING: u8 = 0x6;
/// GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// CONTINUATION.
pub const CONTINUATION: u8 = 0x9;
/// Flags: END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// One frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.push(kind);
    frame.push(flags);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A header block of literal fields, in the order given (pseudo-headers
/// first, as the caller lists them).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        // Literal without indexing, new name (RFC 7541 §6.2.2).
        block.push(0x00);
        string(&mut block, name.as_bytes());
        string(&mut block, value.as_bytes());
    }
    block
}

fn string(block: &mut Vec<u8>, text: &[u8]) {
    // A 7-bit prefix integer (RFC 7541 §5.1), no Huffman coding.
    let mut length = text.len();
    if length < 127 {
        block.push(length as u8);
    } else {
        block.push(127);
        length -= 127;
        while length >= 128 {
            block.push((length % 128) as u8 | 0x80);
            length /= 128;
        }
        block.push(length as u8);
    }
    block.extend_from_slice(text);
}

/// A frame read back.
#[derive(Debug)]
pub struct Frame {
    /// Its type.
    pub kind: u8,
    /// Its flags.
    pub flags: u8,
    /// Its stream.
    pub stream: u32,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What came back on one stream.
#[derive(Debug, Default)]
pub struct StreamAnswer {
    /// The `:status` of its (last) HEADERS.
    pub status: Option<u16>,
    /// Every header block it got (interim answers', the final one's,
    /// trailers), decoded.
    pub heads: Vec<Vec<(String, String)>>,
    /// Its DATA bytes.
    pub body: Vec<u8>,
    /// The error code of its RST_STREAM, if reset.
    pub reset: Option<u32>,
}

/// A client connection that speaks frames.
pub struct RawH2 {
    stream: TcpStream,
    read: Vec<u8>,
    /// HPACK state of the server's header blocks.
    decoder: loona_hpack::Decoder<'static>,
}

impl RawH2 {
    /// Connects (h2c, prior knowledge) and sends the preface and an empty SETTINGS.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(PREFACE).await?;
        stream.write_all(&frame(SETTINGS, 0, 0, &[])).await?;
        Ok(RawH2 {
            stream,
            read: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
        })
    }

    /// As [`RawH2::connect`], but the preface goes one byte per packet (a
    /// millisecond apart), as a slow or hostile client might send it.
    pub async fn connect_trickling(addr: SocketAddr) -> std::io::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        for byte in PREFACE {
            stream.write_all(&[*byte]).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stream.write_all(&frame(SETTINGS, 0, 0, &[])).await?;
        Ok(RawH2 {
            stream,
            read: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
        })
    }

    /// Sends bytes (frames) as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next frame, within `limit`; `None` if the connection closed or
    /// nothing came. SETTINGS are acknowledged on the way.
    pub async fn next_frame(&mut self, limit: Duration) -> Option<Frame> {
        loop {
            if self.read.len() >= 9 {
                let len =
                    u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + len {
                    let bytes: Vec<u8> = self.read.drain(..9 + len).collect();
                    let frame = Frame {
                        kind: bytes[3],
                        flags: bytes[4],
                        stream: u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: bytes[9..].to_vec(),
                    };
                    if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                        self.send(&self::frame(SETTINGS, ACK, 0, &[])).await.ok()?;
                    }
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(limit, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.read.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads until stream `id` ends (END_STREAM or RST_STREAM), within
    /// `limit` for each frame; frames of other streams are passed over.
    pub async fn answer_on(&mut self, id: u32, limit: Duration) -> StreamAnswer {
        let mut answer = StreamAnswer::default();
        while let Some(frame) = self.next_frame(limit).await {
            if frame.stream != id {
                continue;
            }
            match frame.kind {
                HEADERS => {
                    let head = self.decode(&frame.payload);
                    if let Some((_, status)) = head.iter().find(|(name, _)| name == ":status") {
                        answer.status = status.parse().ok();
                    }
                    answer.heads.push(head);
                }
                DATA => answer.body.extend_from_slice(&frame.payload),
                RST_STREAM => {
                    answer.reset = frame
                        .payload
                        .get(..4)
                        .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
                    return answer;
                }
                _ => {}
            }
            if frame.flags & END_STREAM != 0 {
                return answer;
            }
        }
        answer
    }
}

impl RawH2 {
    /// A header block's fields (one without CONTINUATION frames).
    pub fn decode(&mut self, block: &[u8]) -> Vec<(String, String)> {
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        self.decoder
            .decode(block)
            .expect("a header block that decodes")
            .into_iter()
            .map(|(name, value)| (text(name), text(value)))
            .collect()
    }
}
