//! Answers compressed on their way to the client, streaming: each frame of
//! the server's body is compressed and flushed as it passes, so memory stays
//! the encoder's window whatever the body's size, and a slow server's bytes
//! reach the client as they come.

use std::io::Write;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use tracing::warn;
use zkgate_config::{Algorithm, Compression};

/// The windows the encoders keep (2^18 = 256 KiB for brotli and zstd, 32 KiB
/// for gzip): what one compressed answer costs in memory, beside the
/// encoders' tables, whatever its size.
const WINDOW_LOG: u32 = 18;

/// One answer's encoder, writing into a buffer drained after each frame.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(algorithm: Algorithm, config: &Compression) -> std::io::Result<Self> {
        Ok(match algorithm {
            Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(config.gzip_level),
            )),
            Algorithm::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                config.br_level,
                WINDOW_LOG,
            ))),
            Algorithm::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), config.zstd_level)?;
                encoder.window_log(WINDOW_LOG)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Compresses `data` and flushes: what is ready for the client.
    fn compress(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let written = match self {
            Encoder::Gzip(e) => e.write_all(data).and_then(|()| e.flush()),
            Encoder::Br(e) => e.write_all(data).and_then(|()| e.flush()),
            Encoder::Zstd(e) => e.write_all(data).and_then(|()| e.flush()),
        };
        written.map(|()| self.drain())
    }

    /// Ends the stream: its last bytes.
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Br(mut e) => {
                e.flush()?;
                e.into_inner()
            }
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }

    fn drain(&mut self) -> Bytes {
        let buffer = match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Br(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        };
        Bytes::from(std::mem::take(buffer))
    }
}

/// A body's compression, frame by frame.
pub struct Compressor {
    encoder: Option<Encoder>,
    /// Trailers that came after the last data, sent after the stream's end.
    trailers: Option<HeaderMap>,
}

/// What the compressor makes of a frame of the server's body.
pub enum Compressed {
    /// Send this.
    Data(Bytes),
    /// Nothing to send yet: read on.
    Nothing,
    /// The stream ended with these last bytes; then the trailers, if any.
    End(Bytes),
}

impl Compressor {
    /// Compresses a frame's data.
    pub fn data(&mut self, data: &[u8]) -> Compressed {
        let Some(encoder) = &mut self.encoder else {
            return Compressed::Nothing;
        };
        match encoder.compress(data) {
            Ok(out) if out.is_empty() => Compressed::Nothing,
            Ok(out) => Compressed::Data(out),
            Err(err) => {
                // Writing into memory does not fail; if an encoder does,
                // the stream ends here and the client's decoder sees it cut.
                warn!(error = %err, "compression failed: the answer is cut short");
                self.encoder = None;
                Compressed::End(Bytes::new())
            }
        }
    }

    /// The server's body ended (with `trailers`, if any).
    pub fn end(&mut self, trailers: Option<HeaderMap>) -> Compressed {
        self.trailers = trailers;
        let last = match self.encoder.take().map(Encoder::finish) {
            Some(Ok(last)) => last,
            Some(Err(err)) => {
                warn!(error = %err, "compression failed at the end of an answer");
                Bytes::new()
            }
            None => Bytes::new(),
        };
        Compressed::End(last)
    }

    /// Trailers left to send after the stream's end.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// Whether trailers are left to send.
    pub fn has_trailers(&self) -> bool {
        self.trailers.is_some()
    }

    /// Whether the stream has ended (its last bytes were handed out).
    pub fn ended(&self) -> bool {
        self.encoder.is_none()
    }
}

/// Readies an answer whose `headers` these are for compression with
/// `algorithm`: they say so (`Content-Encoding`, `Vary: Accept-Encoding`, a
/// weak `ETag`, no length and no ranges); the body goes through the
/// returned compressor.
pub fn compress(
    headers: &mut HeaderMap,
    algorithm: Algorithm,
    config: &Compression,
) -> Option<Compressor> {
    let encoder = match Encoder::new(algorithm, config) {
        Ok(encoder) => encoder,
        Err(err) => {
            warn!(error = %err, "cannot start compression: the answer goes uncompressed");
            return None;
        }
    };
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(algorithm.token()),
    );
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding")
        });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    // A strong validator names these exact bytes: the encoded ones differ.
    if let Some(etag) = headers.get(header::ETAG) {
        if etag.as_bytes().starts_with(b"\"") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(weak) = HeaderValue::from_bytes(&weak) {
                headers.insert(header::ETAG, weak);
            }
        }
    }
    Some(Compressor {
        encoder: Some(encoder),
        trailers: None,
    })
}
