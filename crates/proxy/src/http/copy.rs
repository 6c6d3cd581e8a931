//! A request's body copied as it passes, for a route's mirror: the bytes
//! are kept up to a limit and handed over once the original's body was read
//! to its end.

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

/// The largest request body copied (64 KiB); a larger one is not mirrored
/// (`result="too_large"`), so that the copies in flight (at most 512)
/// hold at most 32 MiB.
pub const MAX_COPIED_BODY: usize = 64 * 1024;

/// A copy's body: known already, or still being read for the original.
pub enum CopiedBody {
    /// The whole body (empty for a bodiless request).
    Ready(Bytes),
    /// Sent once the original's body was read: `None` when it was larger
    /// than [`MAX_COPIED_BODY`]; the sender dropped when it failed.
    Pending(oneshot::Receiver<Option<Bytes>>),
}

/// The original body's side of a pending copy: what it read so far.
pub struct BodyCopy {
    bytes: BytesMut,
    done: Option<oneshot::Sender<Option<Bytes>>>,
}

impl BodyCopy {
    /// A copy of a body not yet read, and its pending side.
    pub fn new() -> (BodyCopy, CopiedBody) {
        let (done, pending) = oneshot::channel();
        let copy = BodyCopy {
            bytes: BytesMut::new(),
            done: Some(done),
        };
        (copy, CopiedBody::Pending(pending))
    }

    /// Takes in bytes of the body as they pass.
    pub fn data(&mut self, data: &Bytes) {
        if self.done.is_none() {
            return;
        }
        if self.bytes.len() + data.len() > MAX_COPIED_BODY {
            if let Some(done) = self.done.take() {
                let _ = done.send(None);
            }
            self.bytes = BytesMut::new();
            return;
        }
        self.bytes.extend_from_slice(data);
    }

    /// The body was read to its end: the copy may go.
    pub fn finished(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Some(std::mem::take(&mut self.bytes).freeze()));
        }
    }
}
