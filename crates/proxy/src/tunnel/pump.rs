//! One direction of a tunnel: copy, or splice a burst of bulk data.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use prometheus::IntCounter;
use rustix::pipe::SpliceFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::pipe::{Pipe, PIPE_SIZE};
use super::{Half, BUFFER_SIZE};

/// One direction: read, write it all, again; at EOF (or a read error) shut
/// down the write side so the peer sees EOF too. A failed write ends the
/// direction at once: the peer is gone.
pub(super) struct Pump<R, W> {
    from: R,
    to: W,
    buffer: Box<[u8]>,
    /// `buffer[written..filled]` is read and not yet written.
    written: usize,
    filled: usize,
    /// The last read filled the buffer: splice once it is written.
    bulk: bool,
    /// Held while splicing a burst; back to the thread's spares after it.
    pipe: Option<Pipe>,
    /// The last splice into the pipe was short: the burst ends once it is out.
    short_splice: bool,
    state: PumpState,
    /// Bytes written to `to`.
    pub(super) copied: u64,
    counter: Option<IntCounter>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PumpState {
    Copying,
    Flushing,
    Splicing,
    ShuttingDown,
    Ended,
}

impl<R: AsyncRead + Half + Unpin, W: AsyncWrite + Half + Unpin> Pump<R, W> {
    pub(super) fn new(from: R, to: W, counter: Option<IntCounter>) -> Self {
        Pump {
            from,
            to,
            buffer: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
            written: 0,
            filled: 0,
            bulk: false,
            pipe: None,
            short_splice: false,
            state: PumpState::Copying,
            copied: 0,
            counter,
        }
    }

    pub(super) fn ended(&self) -> bool {
        self.state == PumpState::Ended
    }

    fn count(&mut self, n: usize) {
        self.copied += n as u64;
        if let Some(counter) = &self.counter {
            counter.inc_by(n as u64);
        }
    }

    /// Moves bytes until a read or write would block, or the direction ends.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.state {
                PumpState::Copying if self.written < self.filled => {
                    let pending = &self.buffer[self.written..self.filled];
                    match Pin::new(&mut self.to).poll_write(cx, pending) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            self.written += n;
                            self.count(n);
                            if self.written == self.filled {
                                self.state = PumpState::Flushing;
                            }
                        }
                        Poll::Ready(_) => self.state = PumpState::Ended,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                PumpState::Copying => {
                    let mut read = ReadBuf::new(&mut self.buffer);
                    match Pin::new(&mut self.from).poll_read(cx, &mut read) {
                        Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                            self.filled = read.filled().len();
                            self.written = 0;
                            self.bulk = self.filled == BUFFER_SIZE
                                && self.from.socket().is_some()
                                && self.to.socket().is_some();
                        }
                        Poll::Ready(_) => self.state = PumpState::ShuttingDown,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                // Free on a socket; a TLS stream may hold a record back until asked.
                PumpState::Flushing => match Pin::new(&mut self.to).poll_flush(cx) {
                    Poll::Ready(Ok(())) if self.bulk => self.state = PumpState::Splicing,
                    Poll::Ready(Ok(())) => self.state = PumpState::Copying,
                    Poll::Ready(Err(_)) => self.state = PumpState::Ended,
                    Poll::Pending => return Poll::Pending,
                },
                PumpState::Splicing => match ready!(self.poll_splice(cx)) {
                    Ok(Spliced::Moved(n)) => self.count(n),
                    Ok(Spliced::BurstOver) => self.end_burst(PumpState::Copying),
                    Ok(Spliced::Eof) | Err(Direction::In) => {
                        self.end_burst(PumpState::ShuttingDown);
                    }
                    Err(Direction::Out) => self.end_burst(PumpState::Ended),
                },
                PumpState::ShuttingDown => {
                    // The peer may already be gone; nothing more to do either way.
                    let _: io::Result<()> = ready!(Pin::new(&mut self.to).poll_shutdown(cx));
                    self.state = PumpState::Ended;
                }
                PumpState::Ended => return Poll::Ready(()),
            }
        }
    }

    /// Empties the pipe into `to`, or fills it from `from`. Ready with the
    /// bytes written out; when the burst is over (a short splice written
    /// out, nothing to read, or no pipe to be had); at the end of `from`; or
    /// on an error on either side.
    fn poll_splice(&mut self, cx: &mut Context<'_>) -> Poll<Result<Spliced, Direction>> {
        let (Some(from), Some(to)) = (self.from.socket(), self.to.socket()) else {
            return Poll::Ready(Ok(Spliced::BurstOver));
        };
        loop {
            match &mut self.pipe {
                Some(pipe) if pipe.held > 0 => {
                    ready!(to.poll_write_ready(cx)).map_err(|_| Direction::Out)?;
                    let out = to.try_io(Interest::WRITABLE, || {
                        Ok(rustix::pipe::splice(
                            &pipe.read, None, to, None, pipe.held, FLAGS,
                        )?)
                    });
                    match out {
                        Ok(n) => {
                            pipe.held -= n;
                            return Poll::Ready(Ok(Spliced::Moved(n)));
                        }
                        // Readiness is cleared: the next turn waits for it.
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Poll::Ready(Err(Direction::Out)),
                    }
                }
                _ if self.short_splice => return Poll::Ready(Ok(Spliced::BurstOver)),
                pipe => {
                    ready!(from.poll_read_ready(cx)).map_err(|_| Direction::In)?;
                    let pipe = match pipe {
                        Some(pipe) => pipe,
                        None => match Pipe::take() {
                            Ok(spare) => pipe.insert(spare),
                            // Out of file descriptors: copy instead.
                            Err(_) => return Poll::Ready(Ok(Spliced::BurstOver)),
                        },
                    };
                    let into = from.try_io(Interest::READABLE, || {
                        Ok(rustix::pipe::splice(
                            from,
                            None,
                            &pipe.write,
                            None,
                            PIPE_SIZE,
                            FLAGS,
                        )?)
                    });
                    match into {
                        Ok(0) => return Poll::Ready(Ok(Spliced::Eof)),
                        Ok(n) => {
                            pipe.held = n;
                            self.short_splice = n < BUFFER_SIZE;
                        }
                        // Nothing to read for now: the pipe is empty, and a
                        // spare until more comes.
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            if let Some(pipe) = self.pipe.take() {
                                pipe.give_back();
                            }
                        }
                        Err(_) => return Poll::Ready(Err(Direction::In)),
                    }
                }
            }
        }
    }

    /// Hands the pipe back (if empty) and goes on in `next`: a burst starts
    /// again, copied, at the next read that fills the buffer.
    fn end_burst(&mut self, next: PumpState) {
        if let Some(pipe) = self.pipe.take() {
            pipe.give_back();
        }
        self.bulk = false;
        self.short_splice = false;
        self.state = next;
    }
}

impl<R, W> Drop for Pump<R, W> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            pipe.give_back();
        }
    }
}

const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

enum Spliced {
    Moved(usize),
    BurstOver,
    Eof,
}

/// Which side of a splice failed.
enum Direction {
    In,
    Out,
}
