//! Bytes both ways between two peers — a TCP-mode connection, or an HTTP
//! connection after an Upgrade (WebSocket) — each direction shut down on its
//! own (half-close), everything closed after `idle` with no byte either way.
//!
//! One future per tunnel drives both directions and the idle timer. With
//! [`Wakeups::PerDirection`] each direction is polled with a waker of its
//! own, so a byte arriving one way polls that way only: no readiness checks
//! of the quiet direction, no timer, no clock read per transfer. The idle
//! timer ticks eight times per `idle` and closes the tunnel after eight
//! ticks in a row saw no byte: between `idle` and 1⅛ × `idle` after the last.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracing::debug;

const BUFFER_SIZE: usize = 16 * 1024;
/// Timer ticks per idle period; the tunnel closes after this many quiet ones.
const TICKS_PER_IDLE: u32 = 8;

/// How the two directions may be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeups {
    /// Each direction reads only from its read half and writes only to its
    /// write half (plain sockets split with `into_split`), so it can have a
    /// waker of its own.
    PerDirection,
    /// A direction may touch the other's half (TLS writes an alert while
    /// reading; `tokio::io::split` shares one stream): one waker for both,
    /// and both are polled whenever either is woken.
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
    wakeups: Wakeups,
    (received, sent): (Option<IntCounter>, Option<IntCounter>),
) -> (u64, u64)
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    let tick = (idle / TICKS_PER_IDLE).max(Duration::from_millis(1));
    let wakers = Wakers::new();
    let mut tunnel = Tunnel {
        upload: Pump::new(client_read, server_write, received),
        download: Pump::new(server_read, client_write, sent),
        idle: IdleTimer {
            timer: Box::pin(tokio::time::sleep(tick)),
            tick,
            quiet_ticks: 0,
            copied_at_last_tick: 0,
        },
        wakeups,
        wakers,
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
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
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
    state: PumpState,
    /// Bytes written to `to`.
    copied: u64,
    counter: Option<IntCounter>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PumpState {
    Copying,
    Flushing,
    ShuttingDown,
    Ended,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<R, W> {
    fn new(from: R, to: W, counter: Option<IntCounter>) -> Self {
        Pump {
            from,
            to,
            buffer: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
            written: 0,
            filled: 0,
            state: PumpState::Copying,
            copied: 0,
            counter,
        }
    }

    fn ended(&self) -> bool {
        self.state == PumpState::Ended
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
                            self.copied += n as u64;
                            if let Some(counter) = &self.counter {
                                counter.inc_by(n as u64);
                            }
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
                        }
                        Poll::Ready(_) => self.state = PumpState::ShuttingDown,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                // Free on a socket; a TLS stream may hold a record back until asked.
                PumpState::Flushing => match Pin::new(&mut self.to).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.state = PumpState::Copying,
                    Poll::Ready(Err(_)) => self.state = PumpState::Ended,
                    Poll::Pending => return Poll::Pending,
                },
                PumpState::ShuttingDown => {
                    // The peer may already be gone; nothing more to do either way.
                    let _: io::Result<()> =
                        std::task::ready!(Pin::new(&mut self.to).poll_shutdown(cx));
                    self.state = PumpState::Ended;
                }
                PumpState::Ended => return Poll::Ready(()),
            }
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

    /// A tunnel between a client and a server, as (client, server, the relay's task).
    async fn tunnel(
        idle: Duration,
        wakeups: Wakeups,
    ) -> (TcpStream, TcpStream, tokio::task::JoinHandle<(u64, u64)>) {
        let (client, proxy_client) = pair().await;
        let (proxy_server, server) = pair().await;
        let relay = tokio::spawn(async move {
            match wakeups {
                Wakeups::PerDirection => {
                    relay(
                        proxy_client.into_split(),
                        proxy_server.into_split(),
                        idle,
                        wakeups,
                        (None, None),
                    )
                    .await
                }
                // As the TLS and upgrade paths split their streams.
                Wakeups::Shared => {
                    relay(
                        tokio::io::split(proxy_client),
                        tokio::io::split(proxy_server),
                        idle,
                        wakeups,
                        (None, None),
                    )
                    .await
                }
            }
        });
        (client, server, relay)
    }

    const BOTH: [Wakeups; 2] = [Wakeups::PerDirection, Wakeups::Shared];
    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn each_direction_is_shut_down_on_its_own() {
        for wakeups in BOTH {
            // An hour: no idle tick comes to poll a direction whose wake-up was lost.
            let (mut client, mut server, relay) = tunnel(HOUR, wakeups).await;
            let exchange = async {
                client.write_all(b"ping").await.unwrap();
                client.shutdown().await.unwrap();
                let mut received = Vec::new();
                server.read_to_end(&mut received).await.unwrap();
                assert_eq!(received, b"ping", "{wakeups:?}");
                // The other direction still carries bytes after the first ended.
                server.write_all(b"pong!").await.unwrap();
                drop(server);
                let mut answered = Vec::new();
                client.read_to_end(&mut answered).await.unwrap();
                assert_eq!(answered, b"pong!", "{wakeups:?}");
                relay.await.unwrap()
            };
            let copied = tokio::time::timeout(Duration::from_secs(10), exchange)
                .await
                .expect("each direction is woken when its bytes come");
            assert_eq!(copied, (4, 5), "{wakeups:?}");
        }
    }

    #[tokio::test]
    async fn both_directions_stream_at_once_past_full_socket_buffers() {
        // Each side writes 4 MiB before reading anything: the relay's writes
        // block both ways, and each must be woken when its socket drains.
        const SIZE: usize = 4 << 20;
        for wakeups in BOTH {
            let (client, server, relay) = tunnel(HOUR, wakeups).await;
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
                "{wakeups:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_quiet_tunnel_closes_after_idle_and_a_busy_one_stays_open() {
        let idle = Duration::from_millis(200);
        for wakeups in BOTH {
            let (mut client, mut server, relay) = tunnel(idle, wakeups).await;
            // A byte every quarter of `idle`, for three times `idle`.
            let mut quiet_from = std::time::Instant::now();
            for _ in 0..12 {
                tokio::time::sleep(idle / 4).await;
                client.write_all(b"x").await.unwrap();
                let mut byte = [0u8; 1];
                server.read_exact(&mut byte).await.unwrap();
                quiet_from = std::time::Instant::now();
            }
            assert!(!relay.is_finished(), "{wakeups:?}: closed while busy");
            let copied = tokio::time::timeout(Duration::from_secs(5), relay)
                .await
                .expect("the idle tunnel closes")
                .unwrap();
            assert!(
                quiet_from.elapsed() >= idle,
                "{wakeups:?}: closed after {:?}",
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
