//! A waker per part of a tunnel, so that a wake-up polls the part woken only.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

pub(super) const UPLOAD: u8 = 1;
pub(super) const DOWNLOAD: u8 = 2;
pub(super) const TIMER: u8 = 4;
pub(super) const ALL: u8 = UPLOAD | DOWNLOAD | TIMER;

/// A waker per part of the tunnel. Each records which part was woken and
/// wakes the tunnel's task, which then polls the parts woken and no other.
pub(super) struct Wakers {
    shared: Arc<Woken>,
    pub(super) upload: Waker,
    pub(super) download: Waker,
    pub(super) timer: Waker,
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
    pub(super) fn new() -> Self {
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
    pub(super) fn take(&self, task: &Waker) -> u8 {
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
