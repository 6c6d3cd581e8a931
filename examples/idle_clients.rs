//! Holds many keep-alive client connections open, for the memory rows of
//! `benches/compare.sh`: opens `COUNT` connections to `ADDR` (from source
//! addresses 127.0.0.2, .3, … so that more than one address's ports can be
//! used), sends one `GET PATH` on each and reads its answer (or, with
//! `--in-flight`, leaves it waiting), prints `ready`, and holds them until a
//! line arrives on stdin; then closes them all and prints `closed`.
//!
//!     cargo run --release --example idle_clients -- 127.0.0.1:18201 10000 /64
//!     … 127.0.0.1:18401 10000 /64 --tls        # TLS, any certificate accepted
//!     … 127.0.0.1:18201 10000 /slow --in-flight
//!
//! Loopback only: the proxies under test listen there.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Connections per source address: below the ephemeral port range's size.
const PER_SOURCE: usize = 20_000;
/// Connections opened at once.
const OPENING: usize = 256;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: idle_clients ADDR COUNT PATH [--tls] [--in-flight]";
    let addr: SocketAddr = args.first().and_then(|a| a.parse().ok()).expect(usage);
    assert!(addr.ip().is_loopback(), "loopback addresses only");
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let path = args.get(2).expect(usage).clone();
    let tls = args.iter().any(|a| a == "--tls");
    let in_flight = args.iter().any(|a| a == "--in-flight");
    let connector = tls.then(connector);
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench.test\r\n\r\n");

    let mut held: Vec<Box<dyn Io>> = Vec::with_capacity(count);
    let mut failed = 0;
    for start in (0..count).step_by(OPENING) {
        let batch = (start..count.min(start + OPENING)).map(|i| {
            let (connector, request) = (connector.clone(), request.clone());
            async move {
                let source = Ipv4Addr::new(127, 0, 0, 2 + (i / PER_SOURCE) as u8);
                let mut io = open(addr, source, connector).await?;
                io.write_all(request.as_bytes()).await?;
                if !in_flight {
                    read_answer(&mut io).await?;
                }
                Ok::<_, std::io::Error>(io)
            }
        });
        for opened in futures_join(batch).await {
            match opened {
                Ok(io) => held.push(io),
                Err(_) => failed += 1,
            }
        }
    }
    println!("ready {} failed {failed}", held.len());
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    drop(held);
    println!("closed");
    Ok(())
}

/// Runs `futures` as tasks and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

async fn open(
    addr: SocketAddr,
    source: Ipv4Addr,
    tls: Option<tokio_rustls::TlsConnector>,
) -> std::io::Result<Box<dyn Io>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream: TcpStream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    match tls {
        None => Ok(Box::new(stream)),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from("bench.test").expect("name");
            Ok(Box::new(connector.connect(name, stream).await?))
        }
    }
}

/// Reads one answer with a `Content-Length` to its end.
async fn read_answer(io: &mut Box<dyn Io>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// A TLS client that accepts any certificate: a benchmark on loopback,
/// against the proxies' own throwaway certificate.
fn connector() -> tokio_rustls::TlsConnector {
    let config = zkgate_testkit::pki::any_certificate(rustls::DEFAULT_VERSIONS, &[]);
    tokio_rustls::TlsConnector::from(config)
}
