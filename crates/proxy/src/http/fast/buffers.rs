//! The fast path's buffers, taken from a pool of the worker's only while
//! bytes are in flight: an idle keep-alive connection holds none (as
//! HAProxy's connections hold no buffer between requests). A worker is one
//! thread, so its pool is a thread-local list: no lock, no sharing. The pool
//! keeps at most [`KEPT`] of each kind; beyond, buffers go back to the
//! allocator, so memory follows the connections that are busy, not those
//! that ever were.

use std::cell::RefCell;

use bytes::BytesMut;

use super::head::Field;

/// How much is read from a client at once.
pub const READ_SIZE: usize = 8 * 1024;
/// Buffers of each kind a worker keeps for reuse.
const KEPT: usize = 64;
/// Scratch vectors grown beyond this (by a large response) are not kept.
const SCRATCH_KEPT_CAPACITY: usize = 64 * 1024;

/// What serving one request needs besides the read buffer: the parsed
/// head's fields, the head for the server, what goes to the client.
#[derive(Default)]
pub struct Scratch {
    pub fields: Vec<Field>,
    pub upstream: Vec<u8>,
    pub out: Vec<u8>,
}

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    // Boxed in the pool as in the connection that holds them (whose idle
    // state keeps one word for them): taking and giving back move a pointer.
    #[allow(clippy::vec_box)]
    static SCRATCH: RefCell<Vec<Box<Scratch>>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer of [`READ_SIZE`].
pub fn take_read() -> BytesMut {
    READS
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE))
}

/// Returns an empty read buffer (one still holding bytes is the caller's).
pub fn give_read(mut buf: BytesMut) {
    debug_assert!(buf.is_empty());
    buf.clear();
    // Reclaims the bytes advanced past: a lone owner gets its whole
    // allocation back without copying.
    buf.reserve(READ_SIZE);
    if buf.capacity() != READ_SIZE {
        return;
    }
    READS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT {
            pool.push(buf);
        }
    });
}

/// Scratch vectors for a request, empty.
pub fn take_scratch() -> Box<Scratch> {
    SCRATCH
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| {
            Box::new(Scratch {
                fields: Vec::with_capacity(16),
                upstream: Vec::with_capacity(1024),
                out: Vec::with_capacity(1024),
            })
        })
}

/// Returns scratch vectors.
pub fn give_scratch(mut scratch: Box<Scratch>) {
    if scratch.out.capacity() > SCRATCH_KEPT_CAPACITY
        || scratch.upstream.capacity() > SCRATCH_KEPT_CAPACITY
    {
        return;
    }
    scratch.fields.clear();
    scratch.upstream.clear();
    scratch.out.clear();
    SCRATCH.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT {
            pool.push(scratch);
        }
    });
}
