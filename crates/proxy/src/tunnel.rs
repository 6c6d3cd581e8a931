//! Bytes both ways between two peers — a TCP-mode connection, or an HTTP
//! connection after an Upgrade (WebSocket) — each direction shut down on its
//! own (half-close), everything closed after `idle` with no byte either way.
//!
//! One future per tunnel drives both directions and the idle timer. When
//! both peers are plain sockets ([`Half::socket`]) each direction is polled
//! with a waker of its own, so a byte arriving one way polls that way only:
//! no readiness checks of the quiet direction, no timer, no clock read per
//! transfer. The idle timer ticks eight times per `idle` and closes the
//! tunnel after eight ticks in a row saw no byte: between `idle` and
//! 1⅛ × `idle` after the last.
//!
//! Between plain sockets a read that fills the buffer starts a burst of
//! bulk data, which the direction then moves with `splice(2)` through a
//! pipe: socket → pipe → socket inside the kernel, never copied to user
//! space and back. The burst ends when a splice comes up short or nothing
//! is left to read, and the pipe goes back to the thread's spares. Small
//! exchanges keep `recv`/`send`, fewer system calls than splicing them.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use prometheus::IntCounter;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::debug;

const BUFFER_SIZE: usize = 16 * 1024;
/// Timer ticks per idle period; the tunnel closes after this many quiet ones.
const TICKS_PER_IDLE: u32 = 8;
/// Asked of the kernel for each splicing direction's pipe (the default is
/// 64 KiB); fewer round trips per megabyte.
const PIPE_SIZE: usize = 256 * 1024;

/// One half of a peer's connection, as the relay reads from or writes to it.
pub trait Half {
    /// The plain socket under it, when it is one: then its reads and writes
    /// touch nothing the other half uses, and it can be spliced.
    fn socket(&self) -> Option<&TcpStream>;
}

impl Half for OwnedReadHalf {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl Half for OwnedWriteHalf {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

/// A half of `tokio::io::split`: both halves share one stream (TLS writes an
/// alert while reading, for one).
impl<T> Half for tokio::io::ReadHalf<T> {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl<T> Half for tokio::io::WriteHalf<T> {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// How the two directions are woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wakeups {
    /// Each direction reads only from its read half and writes only to its
    /// write half, so it can have a waker of its own.
    PerDirection,
    /// A direction may touch the other's half: one waker for both, and both
    /// are polled whenever either is woken.
    Shared,
}

/// Copies both ways until both directions have ended, or nothing moved for
/// `idle`; `received` counts client → server bytes, `sent` the other way
/// (none when the client socket counts them itself). Returns the bytes
/// copied each way, (client → server, server → client).
pub async fn relay<CR, CW, SR, SW>(
    (client_read, client_write): (CR, CW),
    (server_read, server_write): (SR, SW),
    idle: Duration,
    (received, sent): (Option<IntCounter>, Option<IntCounter>),
) -> (u64, u64)
where
    CR: AsyncRead + Half + Unpin,
    CW: AsyncWrite + Half + Unpin,
    SR: AsyncRead + Half + Unpin,
    SW: AsyncWrite + Half + Unpin,
{
    let plain = client_read.socket().is_some()
        && client_write.socket().is_some()
        && server_read.socket().is_some()
        && server_write.socket().is_some();
    let tick = (idle / TICKS_PER_IDLE).max(Duration::from_millis(1));
    let mut tunnel = Tunnel {
        upload: Pump::new(client_read, server_write, received),
        download: Pump::new(server_read, client_write, sent),
        idle: IdleTimer {
            timer: Box::pin(tokio::time::sleep(tick)),
            tick,
            quiet_ticks: 0,
            copied_at_last_tick: 0,
        },
        wakeups: if plain {
            Wakeups::PerDirection
        } else {
            Wakeups::Shared
        },
        wakers: Wakers::new(),
    };
    std::future::poll_fn(|cx| tunnel.poll(cx)).await;
    (tunnel.upload.copied, tunnel.download.copied)
}

struct Tunnel<CR, CW, SR, SW> {
    upload: Pump<CR, SW>,
    download: Pump<SR, CW>,
    idle: IdleTimer,
    wakeups: Wakeups,
    wakers: Wakers,
}

impl<CR, CW, SR, SW> Tunnel<CR, CW, SR, SW>
where
    CR: AsyncRead + Half + Unpin,
    CW: AsyncWrite + Half + Unpin,
    SR: AsyncRead + Half + Unpin,
    SW: AsyncWrite + Half + Unpin,
{
    /// Ready when both directions have ended or the tunnel was idle too long.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let woken = match self.wakeups {
            Wakeups::PerDirection => self.wakers.take(cx.waker()),
            Wakeups::Shared => ALL,
        };
        let (upload, download, timer) = match self.wakeups {
            Wakeups::PerDirection => (
                &self.wakers.upload,
                &self.wakers.download,
                &self.wakers.timer,
            ),
            Wakeups::Shared => (cx.waker(), cx.waker(), cx.waker()),
        };
        if woken & UPLOAD != 0 {
            let _ = self.upload.poll(&mut Context::from_waker(upload));
        }
        if woken & DOWNLOAD != 0 {
            let _ = self.download.poll(&mut Context::from_waker(download));
        }
        if self.upload.ended() && self.download.ended() {
            return Poll::Ready(());
        }
        if woken & TIMER != 0 {
            let copied = self.upload.copied + self.download.copied;
            return self.idle.poll(&mut Context::from_waker(timer), copied);
        }
        Poll::Pending
    }
}

/// Ticks `TICKS_PER_IDLE` times per idle period, watching the bytes copied.
struct IdleTimer {
    timer: Pin<Box<Sleep>>,
    tick: Duration,
    quiet_ticks: u32,
    copied_at_last_tick: u64,
}

impl IdleTimer {
    /// Ready once `TICKS_PER_IDLE` ticks in a row saw `copied` unchanged.
    fn poll(&mut self, cx: &mut Context<'_>, copied: u64) -> Poll<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if copied != self.copied_at_last_tick {
                self.copied_at_last_tick = copied;
                self.quiet_ticks = 0;
            } else {
                self.quiet_ticks += 1;
                if self.quiet_ticks >= TICKS_PER_IDLE {
                    debug!("tunnel idle for too long; closing");
                    return Poll::Ready(());
                }
            }
            // From now, not from the deadline: after a stall the ticks
            // resume spaced out rather than firing all at once as "quiet".
            self.timer.as_mut().reset(Instant::now() + self.tick);
        }
        Poll::Pending
    }
}

/// One direction: read, write it all, again; at EOF (or a read error) shut
/// down the write side so the peer sees EOF too. A failed write ends the
/// direction at once: the peer is gone.
struct Pump<R, W> {
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
    copied: u64,
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
    fn new(from: R, to: W, counter: Option<IntCounter>) -> Self {
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

    fn ended(&self) -> bool {
        self.state == PumpState::Ended
    }

    fn count(&mut self, n: usize) {
        self.copied += n as u64;
        if let Some(counter) = &self.counter {
            counter.inc_by(n as u64);
        }
    }

    /// Moves bytes until a read or write would block, or the direction ends.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
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

/// A pipe between two sockets, and how many bytes sit in it. A direction
/// holds one only while it splices a burst, so an idle tunnel holds no file
/// descriptors beyond its sockets; empty pipes are kept per thread for the
/// next burst.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
}

/// Empty pipes kept per worker thread (two file descriptors each).
const SPARE_PIPES: usize = 64;

thread_local! {
    static SPARES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// A spare pipe of this thread's, or a new one.
    fn take() -> io::Result<Pipe> {
        match SPARES.with_borrow_mut(Vec::pop) {
            Some(pipe) => Ok(pipe),
            None => {
                let (read, write) =
                    rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                // Best effort: a smaller pipe only means more round trips.
                let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
                Ok(Pipe {
                    read,
                    write,
                    held: 0,
                })
            }
        }
    }

    /// Keeps an empty pipe for the next burst; one holding bytes (its
    /// direction failed mid-splice), or one too many, is closed.
    fn give_back(self) {
        if self.held == 0 {
            SPARES.with_borrow_mut(|spares| {
                if spares.len() < SPARE_PIPES {
                    spares.push(self);
                }
            });
        }
    }
}

const UPLOAD: u8 = 1;
const DOWNLOAD: u8 = 2;
const TIMER: u8 = 4;
const ALL: u8 = UPLOAD | DOWNLOAD | TIMER;

/// A waker per part of the tunnel. Each records which part was woken and
/// wakes the tunnel's task, which then polls the parts woken and no other.
struct Wakers {
    shared: Arc<Woken>,
    upload: Waker,
    download: Waker,
    timer: Waker,
}

struct Woken {
    /// The parts woken since the task last looked; all of them at first.
    parts: AtomicU8,
    task: AtomicWaker,
}

struct PartWaker {
    part: u8,
    woken: Arc<Woken>,
}

impl Wakers {
    fn new() -> Self {
        let shared = Arc::new(Woken {
            parts: AtomicU8::new(ALL),
            task: AtomicWaker::new(),
        });
        let waker = |part| {
            Waker::from(Arc::new(PartWaker {
                part,
                woken: shared.clone(),
            }))
        };
        Wakers {
            upload: waker(UPLOAD),
            download: waker(DOWNLOAD),
            timer: waker(TIMER),
            shared,
        }
    }

    /// The parts woken since the last call; the task is woken for the next.
    fn take(&self, task: &Waker) -> u8 {
        // Registered before taking, so a wake in between is not lost.
        self.shared.task.register(task);
        self.shared.parts.swap(0, Ordering::AcqRel)
    }
}

impl Wake for PartWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let before = self.woken.parts.fetch_or(self.part, Ordering::AcqRel);
        // Already marked: whoever marked it woke the task, which has not
        // looked since.
        if before & self.part == 0 {
            self.woken.task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Two connected sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    /// A tunnel between a client and a server: the client's and the
    /// server's sockets, the relay's task and its two byte counters.
    async fn tunnel(
        idle: Duration,
        split: Split,
    ) -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<(u64, u64)>,
        [IntCounter; 2],
    ) {
        let (client, proxy_client) = pair().await;
        let (proxy_server, server) = pair().await;
        let counters = [
            IntCounter::new("received", "client to server").unwrap(),
            IntCounter::new("sent", "server to client").unwrap(),
        ];
        let counted = (Some(counters[0].clone()), Some(counters[1].clone()));
        let relay = tokio::spawn(async move {
            match split {
                Split::Plain => {
                    let (client, server) = (proxy_client.into_split(), proxy_server.into_split());
                    relay(client, server, idle, counted).await
                }
                // As the TLS and upgrade paths split their streams.
                Split::Shared => {
                    let client = tokio::io::split(proxy_client);
                    let server = tokio::io::split(proxy_server);
                    relay(client, server, idle, counted).await
                }
            }
        });
        (client, server, relay, counters)
    }

    /// `len` bytes in a pattern that shows a lost or reordered chunk.
    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// How the tunnel's peers are split: as plain sockets (a waker per
    /// direction, bulk spliced), or as streams (one waker, always copied).
    #[derive(Clone, Copy, Debug)]
    enum Split {
        Plain,
        Shared,
    }

    const BOTH: [Split; 2] = [Split::Plain, Split::Shared];
    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn each_direction_is_shut_down_on_its_own() {
        // A few bytes, copied; and 1 MiB, which fills the buffer and is spliced
        // between plain sockets from then on, to an odd length.
        for (up, down) in [(4, 5), ((1 << 20) + 3, (1 << 20) + 7)] {
            for split in BOTH {
                // An hour: no idle tick comes to poll a direction whose wake-up was lost.
                let (mut client, mut server, relay, counters) = tunnel(HOUR, split).await;
                let exchange = async {
                    client.write_all(&payload(up, 1)).await.unwrap();
                    client.shutdown().await.unwrap();
                    let mut received = Vec::new();
                    server.read_to_end(&mut received).await.unwrap();
                    assert!(received == payload(up, 1), "{split:?}: {up} bytes up");
                    // The other direction still carries bytes after the first ended.
                    server.write_all(&payload(down, 2)).await.unwrap();
                    drop(server);
                    let mut answered = Vec::new();
                    client.read_to_end(&mut answered).await.unwrap();
                    assert!(answered == payload(down, 2), "{split:?}: {down} bytes down");
                    relay.await.unwrap()
                };
                let copied = tokio::time::timeout(Duration::from_secs(10), exchange)
                    .await
                    .expect("each direction is woken when its bytes come");
                assert_eq!(copied, (up as u64, down as u64), "{split:?}");
                let counted = (counters[0].get(), counters[1].get());
                assert_eq!(counted, copied, "{split:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_quiet_tunnel_holds_no_pipe_after_a_burst() {
        // The relay runs on this test's thread, so its spares are this thread's.
        let spares = || SPARES.with_borrow(Vec::len);
        assert_eq!(spares(), 0);
        let (mut client, mut server, _relay, _) = tunnel(HOUR, Split::Plain).await;
        client.write_all(&payload(1 << 20, 4)).await.unwrap();
        let mut received = vec![0u8; 1 << 20];
        server.read_exact(&mut received).await.unwrap();
        assert!(received == payload(1 << 20, 4));
        let deadline = Instant::now() + Duration::from_secs(5);
        while spares() == 0 {
            assert!(Instant::now() < deadline, "the pipe was not handed back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(spares(), 1, "one pipe, reused through the burst");
        // The next burst takes it again.
        client.write_all(&payload(1 << 20, 5)).await.unwrap();
        server.read_exact(&mut received).await.unwrap();
        assert!(received == payload(1 << 20, 5));
    }

    #[tokio::test]
    async fn a_server_that_vanishes_mid_transfer_ends_the_tunnel() {
        for split in BOTH {
            let (client, mut server, relay, _) = tunnel(HOUR, split).await;
            let (mut from_client, mut to_server) = client.into_split();
            // The client streams until the relay stops taking its bytes.
            let streaming = tokio::spawn(async move {
                let chunk = payload(64 * 1024, 3);
                while to_server.write_all(&chunk).await.is_ok() {}
            });
            let mut first = vec![0u8; 256 * 1024];
            server.read_exact(&mut first).await.unwrap();
            drop(server);
            let (up, _) = tokio::time::timeout(Duration::from_secs(10), relay)
                .await
                .expect("the relay ends when the server is gone")
                .unwrap();
            assert!(up >= first.len() as u64, "{split:?}: {up} bytes up");
            let mut rest = Vec::new();
            assert_eq!(from_client.read_to_end(&mut rest).await.unwrap_or(0), 0);
            streaming.abort();
        }
    }

    #[tokio::test]
    async fn both_directions_stream_at_once_past_full_socket_buffers() {
        // Each side writes 4 MiB before reading anything: the relay's writes
        // block both ways, and each must be woken when its socket drains.
        const SIZE: usize = 4 << 20;
        for split in BOTH {
            let (client, server, relay, _) = tunnel(HOUR, split).await;
            let exchange = |stream: TcpStream, fill: u8| async move {
                let (mut read, mut write) = stream.into_split();
                let writer = async move {
                    write.write_all(&vec![fill; SIZE]).await.unwrap();
                    write.shutdown().await.unwrap();
                };
                let reader = async move {
                    let mut received = Vec::new();
                    read.read_to_end(&mut received).await.unwrap();
                    received
                };
                tokio::join!(writer, reader).1
            };
            let (at_client, at_server) = tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(exchange(client, b'c'), exchange(server, b's'))
            })
            .await
            .expect("the relay moves 4 MiB each way");
            assert!(at_client.len() == SIZE && at_client.iter().all(|&b| b == b's'));
            assert!(at_server.len() == SIZE && at_server.iter().all(|&b| b == b'c'));
            assert_eq!(
                relay.await.unwrap(),
                (SIZE as u64, SIZE as u64),
                "{split:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_quiet_tunnel_closes_after_idle_and_a_busy_one_stays_open() {
        let idle = Duration::from_millis(200);
        for split in BOTH {
            let (mut client, mut server, relay, _) = tunnel(idle, split).await;
            // A byte every quarter of `idle`, for three times `idle`.
            let mut quiet_from = std::time::Instant::now();
            for _ in 0..12 {
                tokio::time::sleep(idle / 4).await;
                client.write_all(b"x").await.unwrap();
                let mut byte = [0u8; 1];
                server.read_exact(&mut byte).await.unwrap();
                quiet_from = std::time::Instant::now();
            }
            assert!(!relay.is_finished(), "{split:?}: closed while busy");
            let copied = tokio::time::timeout(Duration::from_secs(5), relay)
                .await
                .expect("the idle tunnel closes")
                .unwrap();
            assert!(
                quiet_from.elapsed() >= idle,
                "{split:?}: closed after {:?}",
                quiet_from.elapsed()
            );
            assert_eq!(copied, (12, 0));
            // Both peers see the close.
            let mut rest = Vec::new();
            assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
            assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        }
    }
}
