//! The full path: the request core (`ProxyService`) for every request the
//! fast path leaves aside (request bodies, HTTP/2 and HTTP/3 clients,
//! upgrades, HTTP/2 servers, unusual heads), hyper's HTTP/1.1 server for
//! such HTTP/1.1 clients, and the clients towards servers: hyper's for
//! HTTP/1.1 (but for a bodiless `GET` or `HEAD`: `direct`), zkgate's own
//! for HTTP/2 (`upstream_h2`). An HTTP/2 client's bodiless `GET` or `HEAD`
//! to an HTTP/1.1 server takes the core's `lane`, with no `http::Request`
//! in between. Each request goes through the same request core as the
//! fast path's; bodies stream both ways with back-pressure.

mod answer;
mod attempt;
mod body;
mod client;
mod compress;
mod direct;
mod direct_body;
mod forward;
mod h1;
mod lane;
mod mirror;
mod rewind;
mod service;
mod upgrade;
mod upstream_h2;

pub use body::ProxyBody;
pub use h1::serve as serve_h1;
pub use lane::{Answer, Encode, LaneRequest};
pub use mirror::{head_of as mirrored_head, spawn as mirror};
pub use service::ProxyService;
