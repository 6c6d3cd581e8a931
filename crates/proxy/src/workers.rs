//! The data plane's threads: one single-threaded runtime per worker, each
//! accepting on a socket of its own for every listen address (SO_REUSEPORT:
//! the kernel spreads new connections over the sockets). A connection lives
//! its whole life on the thread that accepted it: no work stealing, no
//! wake-ups across threads, and the per-thread pools of server connections
//! always hold the connections this thread's clients use.
//!
//! With several workers the control plane runs on a thread of its own (the
//! one that started them), so a table build or a burst of ZooKeeper events
//! never delays a request; with one, it shares the worker's thread.

use std::io;
use std::sync::mpsc;

use tokio::runtime::Handle;

/// Running worker threads. They run until the process exits.
#[derive(Clone)]
pub struct Workers {
    handles: Vec<Handle>,
}

impl Workers {
    /// Starts `count` worker threads (at least one).
    pub fn start(count: usize) -> io::Result<Workers> {
        let mut handles = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let (sender, handle) = mpsc::channel();
            std::thread::Builder::new()
                .name(format!("zkgate-worker-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => {
                            let _ = sender.send(Ok(runtime.handle().clone()));
                            // Serves whatever is spawned onto it, until the
                            // process exits, and keeps its pool of server
                            // connections swept meanwhile.
                            runtime.block_on(crate::http::sweep_idle_connections());
                        }
                        Err(err) => {
                            let _ = sender.send(Err(err));
                        }
                    }
                })?;
            handles.push(handle.recv().map_err(io::Error::other)??);
        }
        Ok(Workers { handles })
    }

    /// One worker: the runtime of `handle`, which the caller drives (the
    /// control plane's thread). The process then has a single thread, like
    /// HAProxy with `nbthread 1`: nothing crosses threads, and the C library
    /// skips the bookkeeping it does around every system call in
    /// multi-threaded processes (~2 % of a small request's instructions).
    pub fn on(handle: Handle) -> Workers {
        handle.spawn(crate::http::sweep_idle_connections());
        Workers {
            handles: vec![handle],
        }
    }

    /// The number of threads to run when not told: the cores this process may use.
    pub fn default_count() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// How many there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Each worker's runtime.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }
}
