//! Pipes for splicing, kept per thread between bursts.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::PipeFlags;

/// Asked of the kernel for each splicing direction's pipe (the default is
/// 64 KiB); fewer round trips per megabyte.
pub(super) const PIPE_SIZE: usize = 256 * 1024;

/// A pipe between two sockets, and how many bytes sit in it. A direction
/// holds one only while it splices a burst, so an idle tunnel holds no file
/// descriptors beyond its sockets; empty pipes are kept per thread for the
/// next burst.
pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
    /// Bytes in the pipe.
    pub(super) held: usize,
}

/// Empty pipes kept per worker thread (two file descriptors each).
const SPARE_PIPES: usize = 64;

thread_local! {
    pub(super) static SPARES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// A spare pipe of this thread's, or a new one.
    pub(super) fn take() -> io::Result<Pipe> {
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
    pub(super) fn give_back(self) {
        if self.held == 0 {
            SPARES.with_borrow_mut(|spares| {
                if spares.len() < SPARE_PIPES {
                    spares.push(self);
                }
            });
        }
    }
}
