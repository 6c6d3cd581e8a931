//! The fast path's scratch vectors (the parsed head's fields, the head for
//! the server, what goes to the client), taken from a pool of the worker's
//! while a request is served, as its read buffers are (`http::buffers`).

use std::cell::RefCell;

use super::head::Field;

/// Scratch sets a worker keeps for reuse.
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
    // Boxed in the pool as in the connection that holds them (whose idle
    // state keeps one word for them): taking and giving back move a pointer.
    #[allow(clippy::vec_box)]
    static SCRATCH: RefCell<Vec<Box<Scratch>>> = const { RefCell::new(Vec::new()) };
}

/// Scratch vectors for a request, empty.
pub fn take_scratch() -> Box<Scratch> {
    SCRATCH
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| {
            Box::new(Scratch {
                fields: Vec::with_capacity(16),
                upstream: Vec::with_capacity(1024),
                // Grown by the first answer: a request waiting for its
                // server holds none.
                out: Vec::new(),
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
