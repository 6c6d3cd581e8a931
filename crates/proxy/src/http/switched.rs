//! The client's side of a protocol switch, handed by a client's wire to
//! the request core: zkgate's HTTP/2 layer puts the stream of an extended
//! `CONNECT` (RFC 8441) in the request as a [`SwitchedSlot`], and the
//! switch (`full::upgrade`) takes it once a server accepted. (hyper's
//! HTTP/1.1 server hands its side over by `hyper::upgrade` instead.)

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};

/// A switched client stream, as bytes both ways.
pub trait SwitchedIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> SwitchedIo for T {}

/// A request's slot for the client's side of its switch.
#[derive(Clone)]
pub struct SwitchedSlot(Arc<Mutex<Option<Box<dyn SwitchedIo + Sync>>>>);

impl SwitchedSlot {
    pub fn new(io: Box<dyn SwitchedIo + Sync>) -> Self {
        SwitchedSlot(Arc::new(Mutex::new(Some(io))))
    }

    /// The client's side, the first time it is asked for.
    pub fn take(&self) -> Option<Box<dyn SwitchedIo + Sync>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
