//! A TCP echo server on 127.0.0.1:0: echoes everything, and when the client
//! closes its side writes `served-by <name>\n` and closes too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::accept::spawn_accept_loop;

/// A running echo server; stops when dropped.
pub struct TcpServer {
    /// Its name, in the goodbye line.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpServer {
    /// Starts a server called `name`.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let goodbye = format!("served-by {name}\n");
        let task = spawn_accept_loop(listener, move |mut stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            let goodbye = goodbye.clone();
            async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) => break,
                        Ok(n) => {
                            if stream.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
                // The client half-closed: say goodbye on the still-open direction.
                if stream.write_all(goodbye.as_bytes()).await.is_ok() {
                    stream.shutdown().await.ok();
                }
            }
        });
        TcpServer {
            name: name.to_owned(),
            addr,
            connections,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
