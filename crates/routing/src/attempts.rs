//! The servers one request or connection tries, in order: the balancer's
//! choice first, then up to `retries` servers not tried yet.

use std::net::SocketAddr;

use crate::{Backend, Server};

/// Yields each server to try; counts every retry in the backend's metrics.
pub struct Attempts<'a> {
    backend: &'a Backend,
    first: Option<&'a Server>,
    tried: Vec<SocketAddr>,
}

impl<'a> Attempts<'a> {
    /// Whether no server was found at all (as opposed to all of them failing).
    pub fn none_tried(&self) -> bool {
        self.tried.is_empty()
    }
}

impl<'a> Iterator for Attempts<'a> {
    type Item = &'a Server;

    fn next(&mut self) -> Option<&'a Server> {
        let server = if self.tried.is_empty() {
            self.first.take()?
        } else {
            if self.tried.len() > self.backend.retries as usize {
                return None;
            }
            let server = self.backend.pick_untried(&self.tried)?;
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
            tried: Vec::new(),
        }
    }
}
