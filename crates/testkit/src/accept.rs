//! The accept loop every test server shares: one task per connection, all
//! owned by the loop's task, so stopping a server (aborting that task) closes
//! its connections too, as a crashed server's would be.

use std::future::Future;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Accepts on `listener` forever, running `handle` for each connection.
pub fn spawn_accept_loop<F, Fut>(listener: TcpListener, mut handle: F) -> JoinHandle<()>
where
    F: FnMut(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(handle(stream));
        }
    })
}
