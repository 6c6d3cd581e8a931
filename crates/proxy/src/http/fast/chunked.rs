//! Where a chunked response body ends (RFC 9112 §7.1). The body passes
//! through as it came; zkgate only follows its framing.

use super::framing::Malformed;

/// Follows a chunked body (RFC 9112 §7.1) through its bytes to find its end,
/// however the bytes are split.
#[derive(Debug, Default, Clone)]
pub struct Chunked {
    state: State,
    /// Bytes of the current chunk-size line's extensions, or trailer section.
    line: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the chunk size's hex digits (`digits` so far, value `size`).
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size (RFC 9112's BWS): a `;` or the CR follows.
    SizeSpace {
        size: u64,
    },
    /// After the size: extensions, up to the CR.
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// In the trailer section; `empty` if the current line has nothing yet.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// What [`Chunked::next_data`] took in.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    pub taken: usize,
    pub data: std::ops::Range<usize>,
    pub trailer: std::ops::Range<usize>,
}

/// Longest chunk extension or trailer section followed before giving up.
const MAX_LINE: usize = 16 * 1024;

impl Chunked {
    /// Counts one more byte of an extension or trailer line; `too_long`
    /// past `MAX_LINE`.
    fn count_line_byte(&mut self, too_long: &'static str) -> Result<(), Malformed> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(Malformed(too_long));
        }
        Ok(())
    }

    /// The next state after byte `b` of a chunk-size line's size.
    fn size_byte(&mut self, b: u8) -> Result<State, Malformed> {
        let (size, digits) = match self.state {
            State::Size { size, digits } => (size, digits),
            _ => (0, 0),
        };
        Ok(match (b as char).to_digit(16) {
            Some(d) if digits < 15 => State::Size {
                size: size << 4 | u64::from(d),
                digits: digits + 1,
            },
            Some(_) => return Err(Malformed("chunk size too large")),
            None if digits == 0 => return Err(Malformed("chunk size missing")),
            None if b == b'\r' => State::SizeLf { size },
            None if b == b';' => {
                self.line = 0;
                State::Extension { size }
            }
            None if b == b' ' || b == b'\t' => {
                self.line = 0;
                State::SizeSpace { size }
            }
            None => return Err(Malformed("bad chunk size")),
        })
    }

    /// Takes in bytes that follow what was fed before; returns how many of
    /// them belong to the body. Less than `bytes.len()` only once it ended.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Malformed> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data { left } = self.state {
                i += self.take_data(left, bytes.len() - i);
                continue;
            }
            if self.state == State::Done {
                return Ok(i);
            }
            self.state = self.after(bytes[i])?;
            i += 1;
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// Takes in bytes up to the end of the next run of chunk data, or of
    /// the body, or of `bytes`: how many, where that data lies among them
    /// (empty if none), and where the trailer section's bytes do (the
    /// whole section, its last empty line included, comes through these
    /// ranges, perhaps over several calls).
    pub fn next_data(&mut self, bytes: &[u8]) -> Result<Step, Malformed> {
        let mut i = 0;
        let mut trailer = 0..0;
        while i < bytes.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let take = self.take_data(left, bytes.len() - i);
                return Ok(Step {
                    taken: i + take,
                    data: i..i + take,
                    trailer,
                });
            }
            let in_trailer = matches!(self.state, State::Trailer { .. } | State::TrailerLf { .. });
            self.state = self.after(bytes[i])?;
            i += 1;
            if in_trailer {
                trailer = if trailer.is_empty() {
                    i - 1..i
                } else {
                    trailer.start..i
                };
            }
        }
        Ok(Step {
            taken: i,
            data: i..i,
            trailer,
        })
    }

    /// Up to `available` bytes of the current chunk's `left`: how many.
    fn take_data(&mut self, left: u64, available: usize) -> usize {
        let take = left.min(available as u64);
        self.state = if take == left {
            State::DataCr
        } else {
            State::Data { left: left - take }
        };
        take as usize
    }

    /// The state after byte `b`, in any state but `Data` and `Done`.
    fn after(&mut self, b: u8) -> Result<State, Malformed> {
        Ok(match self.state {
            State::SizeStart | State::Size { .. } => self.size_byte(b)?,
            // Whatever follows the size must be an extension (`;`) or
            // the line's end: `5 2` is no size, as hyper's path decides.
            State::SizeSpace { size } => {
                self.count_line_byte("chunk extension too long")?;
                match b {
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => State::Extension { size },
                    b'\r' => State::SizeLf { size },
                    _ => return Err(Malformed("bad chunk size")),
                }
            }
            State::Extension { size } => {
                self.count_line_byte("chunk extension too long")?;
                match b {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(Malformed("bare LF in chunk extension")),
                    _ => State::Extension { size },
                }
            }
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => {
                    self.line = 0;
                    State::Trailer { empty: true }
                }
                (b'\n', left) => State::Data { left },
                _ => return Err(Malformed("chunk size line not ended by CRLF")),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::SizeStart,
            State::DataCr | State::DataLf => return Err(Malformed("chunk not ended by CRLF")),
            State::Trailer { empty } => {
                self.count_line_byte("trailer section too long")?;
                match b {
                    b'\r' => State::TrailerLf { empty },
                    b'\n' => return Err(Malformed("bare LF in trailer")),
                    _ => State::Trailer { empty: false },
                }
            }
            State::TrailerLf { empty } => match b {
                b'\n' if empty => State::Done,
                b'\n' => State::Trailer { empty: true },
                _ => return Err(Malformed("trailer line not ended by CRLF")),
            },
            State::Data { .. } | State::Done => unreachable!("handled by the callers"),
        })
    }

    /// Whether the last chunk and trailer section were seen.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's data and trailer section as `next_data` gives them, fed
    /// in pieces of `piece` bytes; and how many bytes the body took.
    fn decoded(body: &[u8], piece: usize) -> (Vec<u8>, Vec<u8>, usize) {
        let (mut data, mut trailer) = (Vec::new(), Vec::new());
        let mut chunked = Chunked::default();
        let mut at = 0;
        while !chunked.done() && at < body.len() {
            let end = (at + piece).min(body.len());
            let mut fed = at;
            while fed < end && !chunked.done() {
                let step = chunked.next_data(&body[fed..end]).unwrap();
                data.extend_from_slice(&body[fed..end][step.data]);
                trailer.extend_from_slice(&body[fed..end][step.trailer]);
                fed += step.taken;
            }
            at = fed;
        }
        (data, trailer, at)
    }

    #[test]
    fn chunked_bodies_decode_to_their_data_and_trailers_however_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1";
        for piece in 1..body.len() {
            let (data, trailer, taken) = decoded(body, piece);
            assert_eq!(data, b"hello0123456789abcdef", "piece {piece}");
            assert_eq!(trailer, b"Trailer: x\r\n\r\n", "piece {piece}");
            assert_eq!(taken, body.len() - b"HTTP/1.1".len(), "piece {piece}");
        }
        let (data, trailer, _) = decoded(b"3\r\nabc\r\n0\r\n\r\n", 4);
        assert_eq!(
            (data.as_slice(), trailer.as_slice()),
            (&b"abc"[..], &b"\r\n"[..])
        );
    }

    #[test]
    fn chunked_bodies_end_where_they_end_however_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n";
        let mut tail = body.to_vec();
        tail.extend_from_slice(b"HTTP/1.1 200 OK");
        for split in 0..body.len() {
            let mut chunked = Chunked::default();
            let first = chunked.feed(&tail[..split]).unwrap();
            assert_eq!(first, split);
            let second = chunked.feed(&tail[split..]).unwrap();
            assert_eq!(first + second, body.len(), "split at {split}");
            assert!(chunked.done());
        }
        let mut chunked = Chunked::default();
        assert_eq!(chunked.feed(b"0\r\n\r\n").unwrap(), 5);
        assert!(chunked.done());
    }

    #[test]
    fn malformed_chunking_is_refused() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"5\r\nhelloX",
            b"ffffffffffffffff\r\n",
            b"0\r\nTrailer\n",
            b"5 2\r\nhello",
            b"5 x\r\nhello",
        ] {
            assert!(Chunked::default().feed(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn whitespace_after_a_size_may_precede_an_extension_or_the_line_end() {
        for raw in [
            &b"5 \r\nhello\r\n0\r\n\r\n"[..],
            b"5\t ; a=b\r\nhello\r\n0\r\n\r\n",
        ] {
            let mut chunked = Chunked::default();
            assert_eq!(chunked.feed(raw), Ok(raw.len()), "{raw:?}");
            assert!(chunked.done());
        }
    }

    proptest::proptest! {
        #[test]
        fn chunked_encodings_are_followed_to_their_end(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300), 0..8),
            split in 0usize..4000,
        ) {
            let mut body = Vec::new();
            for chunk in &chunks {
                body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                body.extend_from_slice(chunk);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            let end = body.len();
            body.extend_from_slice(b"next");
            let split = split.min(end);
            let mut chunked = Chunked::default();
            let a = chunked.feed(&body[..split]).unwrap();
            let b = chunked.feed(&body[split..]).unwrap();
            proptest::prop_assert_eq!(a + b, end);
            proptest::prop_assert!(chunked.done());
        }

        #[test]
        fn any_bytes_are_refused_or_followed(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut chunked = Chunked::default();
            if let Ok(n) = chunked.feed(&bytes) {
                proptest::prop_assert!(n <= bytes.len());
            }
        }
    }
}
