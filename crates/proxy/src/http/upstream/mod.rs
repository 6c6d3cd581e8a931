//! Connections to servers, shared by every wire adapter. HTTP/1.1
//! connections are in one pool per worker thread (no lock, no sharing
//! between cores): the fast path speaks HTTP/1.1 on their sockets itself,
//! hyper is lent a socket and keeps it while its adapters use it, and
//! either puts a connection back once a response was read to its end and
//! nothing else arrived. HTTP/2 connections are hyper's, one per server
//! and thread.

mod client;
mod pool;

pub use client::{connect_for_upgrade, Conn, Reuse, UpstreamBody};
pub use pool::{PoolKey, ServerConn};
