//! A client socket wrapper that counts bytes into the frontend's metrics and
//! notes when a new request starts arriving on an idle HTTP connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use zkgate_routing::clock;

/// What the HTTP connection task needs to enforce `client_header` and
/// `client_idle`: whether a request is being served, since when the
/// connection has been idle, and when the next request's first byte came.
#[derive(Debug)]
pub struct ConnActivity {
    in_flight: AtomicU32,
    idle_since_ms: AtomicU64,
    request_started_ms: AtomicU64,
    served: AtomicU64,
    /// A request found the connection's frontend retired by a reload: an
    /// HTTP/2 connection then says GOAWAY (HTTP/1 answers `Connection: close`).
    retired: tokio::sync::Notify,
}

impl ConnActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnActivity {
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(clock::now_ms()),
            request_started_ms: AtomicU64::new(0),
            served: AtomicU64::new(0),
            retired: tokio::sync::Notify::new(),
        })
    }

    /// A request found the connection's frontend retired by a reload.
    pub fn frontend_retired(&self) {
        self.retired.notify_one();
    }

    /// Completes once a request has found the frontend retired.
    pub async fn retired(&self) {
        self.retired.notified().await;
    }

    /// A request's headers are complete; its response is being produced.
    pub fn request_began(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.request_started_ms.store(0, Relaxed);
        self.served.fetch_add(1, Relaxed);
    }

    /// A response was fully sent (or abandoned).
    pub fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.request_started_ms.store(0, Relaxed);
            self.idle_since_ms.store(clock::now_ms(), Relaxed);
        }
    }

    /// Takes over a connection on which `served` requests were answered
    /// elsewhere (the fast path); `reading` if part of the next request arrived.
    pub fn resume(&self, served: u64, reading: bool) {
        let now = clock::now_ms();
        self.in_flight.store(0, Relaxed);
        self.served.store(served, Relaxed);
        self.idle_since_ms.store(now, Relaxed);
        self.request_started_ms
            .store(if reading { now } else { 0 }, Relaxed);
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Relaxed) == 0 && self.request_started_ms.load(Relaxed) == 0 {
            self.request_started_ms.store(clock::now_ms(), Relaxed);
        }
    }

    /// The state the timeout watchdog acts on.
    pub fn snapshot(&self) -> Activity {
        if self.in_flight.load(Relaxed) > 0 {
            return Activity::Busy;
        }
        match self.request_started_ms.load(Relaxed) {
            0 => Activity::Idle {
                since_ms: self.idle_since_ms.load(Relaxed),
                first: self.served.load(Relaxed) == 0,
            },
            started => Activity::ReadingHeaders { since_ms: started },
        }
    }
}

/// See [`ConnActivity::snapshot`].
#[derive(Debug, Clone, Copy)]
pub enum Activity {
    /// A request is being served: no client timeout applies.
    Busy,
    /// Waiting for a request and nothing of it has arrived.
    Idle { since_ms: u64, first: bool },
    /// Part of a request head has arrived.
    ReadingHeaders { since_ms: u64 },
}

/// A socket that counts bytes both ways.
pub struct CountingIo<T> {
    inner: T,
    received: IntCounter,
    sent: IntCounter,
    activity: Option<Arc<ConnActivity>>,
}

impl<T> CountingIo<T> {
    pub fn new(
        inner: T,
        received: IntCounter,
        sent: IntCounter,
        activity: Option<Arc<ConnActivity>>,
    ) -> Self {
        CountingIo {
            inner,
            received,
            sent,
            activity,
        }
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    /// From now on, notes arriving bytes in `activity` too.
    pub fn watch(&mut self, activity: Arc<ConnActivity>) {
        self.activity = Some(activity);
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.received.inc_by(n as u64);
            if let Some(activity) = &self.activity {
                activity.bytes_arrived();
            }
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.sent.inc_by(n as u64);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.sent.inc_by(n as u64);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
