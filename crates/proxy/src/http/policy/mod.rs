//! The request core: what happens to an HTTP request, decided once for
//! every wire adapter (the fast HTTP/1 reader, hyper's HTTP/1 and HTTP/2).
//! Which frontend serves it and whether it is admitted, which backend and
//! server it goes to, when it is tried again, how long a client may keep
//! zkgate waiting: all here. The adapters only turn bytes or frames into a
//! [`RequestView`] and carry the decision out.

mod admission;
pub mod client_wait;
pub mod compression;
mod decide;
pub mod edits;
pub mod ids;
pub mod keys;
pub mod retry;
mod rewrite;
pub mod upgrade;

pub use decide::{decide, refuse_malformed, Decision, Routed};
pub use keys::RequestView;
pub use rewrite::rewrite_target;

/// Largest request head accepted (request line + headers); beyond it: 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most request headers accepted; beyond it: 431.
pub const MAX_HEADERS: usize = 100;
