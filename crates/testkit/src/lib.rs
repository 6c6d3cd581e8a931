//! Real parts for zkgate's tests, on loopback and free ports only:
//! ZooKeeper from the Debian package (standalone or an ensemble), HTTP and TCP
//! servers that say who answered, a zkgate process, and small clients.

mod accept;
pub mod client;
pub mod grpc;
pub mod h2_frames;
pub mod h2_server;
pub mod h3_client;
pub mod http_server;
pub mod pki;
pub mod ports;
pub mod process;
pub mod recording;
pub mod relay;
pub mod responder;
pub mod tcp_server;
pub mod wait;
pub mod websocket;
pub mod websocket_h2;
pub mod zookeeper;

pub use accept::spawn_accept_loop;
pub use client::{http_get, http_request, http_request_on, raw_exchange, read_until_ending, Reply};
pub use http_server::HttpServer;
pub use ports::{free_port, free_udp_port};
pub use process::{send_signal, Zkgate};
pub use recording::{Answer, RecordingOrigin};
pub use relay::Relay;
pub use tcp_server::TcpServer;
pub use wait::wait_until;
pub use zookeeper::ZooKeeper;
