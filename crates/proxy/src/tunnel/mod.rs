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
//! space and back ([`pump`]). The burst ends when a splice comes up short;
//! while there is nothing to read the pipe waits among the thread's spares
//! ([`pipe`]). Small exchanges keep `recv`/`send`, fewer system calls than
//! splicing them would take.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::debug;

mod pipe;
mod pump;
mod wakers;

use pump::Pump;
use wakers::{Wakers, ALL, DOWNLOAD, TIMER, UPLOAD};

/// Each direction's copy buffer; a read that fills it starts a spliced burst.
const BUFFER_SIZE: usize = 16 * 1024;
/// Timer ticks per idle period; the tunnel closes after this many quiet ones.
const TICKS_PER_IDLE: u32 = 8;

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
        // Each direction of plain sockets reads only from its read half and
        // writes only to its write half, so it can have a waker of its own.
        // Otherwise a direction may touch the other's half: one waker for
        // both, and both are polled whenever either is woken.
        wakers: plain.then(Wakers::new),
    };
    std::future::poll_fn(|cx| tunnel.poll(cx)).await;
    (tunnel.upload.copied, tunnel.download.copied)
}

struct Tunnel<CR, CW, SR, SW> {
    upload: Pump<CR, SW>,
    download: Pump<SR, CW>,
    idle: IdleTimer,
    /// A waker per part, between plain sockets.
    wakers: Option<Wakers>,
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
        let (woken, upload, download, timer) = match &self.wakers {
            Some(wakers) => (
                wakers.take(cx.waker()),
                &wakers.upload,
                &wakers.download,
                &wakers.timer,
            ),
            None => (ALL, cx.waker(), cx.waker(), cx.waker()),
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

#[cfg(test)]
mod tests;
