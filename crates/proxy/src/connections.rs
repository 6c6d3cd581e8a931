//! Process-wide tracking of client connections, so shutdown can stop
//! accepting, ask every connection to finish, and wait for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// Counts open client connections and broadcasts "shutting down".
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    open: AtomicUsize,
    closed: Notify,
    shutdown: watch::Sender<bool>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                closed: Notify::new(),
                shutdown: watch::Sender::new(false),
            }),
        }
    }
}

/// Held by each connection task; counts it open until dropped.
pub struct ConnectionGuard {
    inner: Arc<Inner>,
    /// Fires when the process starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.closed.notify_waiters();
        }
    }
}

impl Connections {
    /// Registers a new connection.
    pub fn open(&self) -> ConnectionGuard {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard {
            inner: Arc::clone(&self.inner),
            shutdown: self.inner.shutdown.subscribe(),
        }
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Asks every connection to finish its current request and close, then
    /// waits until all have, or `grace` has passed. Returns how many were left.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.inner.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let closed = self.inner.closed.notified();
            if self.count() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.count();
            }
        }
    }
}
