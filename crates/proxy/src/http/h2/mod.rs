//! HTTP/2 from clients (ALPN `h2` over TLS, or h2c with prior knowledge on
//! cleartext listeners), served by zkgate's own HTTP/2 layer: frames
//! (`frame`), header blocks checked and made requests (`head`), the
//! frames a client sends (`recv`), a request made a stream (`open`), the
//! answers that go back (`send`, `hpack`), one connection's life (`serve`)
//! and its future (`conn`), the state it keeps per stream (`state`) and
//! what a stream shares with its readers (`stream`). Each request goes
//! through the same request core as HTTP/1.1 and HTTP/3 requests; the
//! common one (a bodiless `GET` or `HEAD` to an HTTP/1.1 server) by the
//! core's lane, as its decoded fields (`lane`). Requests' HPACK is decoded
//! by `loona-hpack`; answers are encoded without a dynamic table (`hpack`).
//!
//! Its own rather than hyper's, so that a malformed request is answered
//! or reset on its stream alone (hyper's HTTP/2 layer ends the whole
//! connection for a `:method` it cannot parse), and so that a waiting
//! connection holds no buffer and a request costs no task of its own.

mod conn;
mod frame;
mod head;
mod hpack;
mod lane;
mod open;
mod recv;
mod send;
mod serve;
mod state;
mod stream;

pub use serve::serve;
