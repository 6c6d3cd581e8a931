//! The servers one request or connection tries, in order: the balancer's
//! choice first, then up to `retries` servers not tried yet.

use std::net::SocketAddr;

use crate::{Backend, Server};

/// Yields each server to try; counts every retry in the backend's metrics.
pub struct Attempts<'a> {
    backend: &'a Backend,
    first: Option<&'a Server>,
    tried: Tried,
}

/// How many tried addresses fit without a heap allocation: a request
/// allocates nothing on its way unless it retries more than three times.
const INLINE: usize = 4;

/// The addresses tried so far, in order.
struct Tried {
    inline: [SocketAddr; INLINE],
    len: usize,
    /// Every address, once there are more than fit inline.
    spilled: Vec<SocketAddr>,
}

impl Tried {
    fn new() -> Tried {
        Tried {
            inline: [SocketAddr::from(([0, 0, 0, 0], 0)); INLINE],
            len: 0,
            spilled: Vec::new(),
        }
    }

    fn as_slice(&self) -> &[SocketAddr] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    fn push(&mut self, address: SocketAddr) {
        if self.len < INLINE {
            self.inline[self.len] = address;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(address);
        }
    }
}

impl<'a> Attempts<'a> {
    /// Whether no server was found at all (as opposed to all of them failing).
    pub fn none_tried(&self) -> bool {
        self.tried.as_slice().is_empty()
    }
}

impl<'a> Iterator for Attempts<'a> {
    type Item = &'a Server;

    fn next(&mut self) -> Option<&'a Server> {
        let tried = self.tried.as_slice();
        let server = if tried.is_empty() {
            self.first.take()?
        } else {
            if tried.len() > self.backend.retries as usize {
                return None;
            }
            let server = self.backend.pick_untried(tried)?;
            self.backend.metrics.retries.inc();
            server
        };
        self.tried.push(server.address());
        Some(server)
    }
}

impl Backend {
    /// The attempts for a request whose first server is `first` (usually
    /// [`Backend::pick`]; a sticky server when the client names one).
    pub fn attempts<'a>(&'a self, first: Option<&'a Server>) -> Attempts<'a> {
        Attempts {
            backend: self,
            first,
            tried: Tried::new(),
        }
    }
}
