//! HTTP/3 load for the `h3` rows of `benches/compare.sh`: `CONNECTIONS`
//! QUIC connections to `ADDR`, each with `STREAMS` requests in flight at a
//! time (`GET PATH`, answers read whole), for `SECONDS`; with `--new`,
//! `CONNECTIONS` clients each opening a new connection (a full handshake)
//! per request. Prints `requests N seconds S p99_ms P errors E`.
//!
//!     cargo run --release --example h3_load -- 127.0.0.1:18601 64 10 6 /64
//!     … 127.0.0.1:18601 16 1 6 /64 --new
//!
//! Any certificate is accepted (the bench's is self-signed). Loopback only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use quinn::crypto::rustls::QuicClientConfig;

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: h3_load ADDR CONNECTIONS STREAMS SECONDS PATH [--new]";
    let addr: SocketAddr = args.first().and_then(|a| a.parse().ok()).expect(usage);
    assert!(addr.ip().is_loopback(), "loopback addresses only");
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let streams: usize = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let path = args.get(4).expect(usage).clone();
    let new = args.iter().any(|a| a == "--new");

    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config());
    let uri: http::Uri = format!("https://bench.test{path}").parse().unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (endpoint, uri) = (endpoint.clone(), uri.clone());
        if new {
            tasks.spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let begun = Instant::now();
                    match connect(&endpoint, addr).await {
                        Ok((mut sender, conn)) => {
                            tally.record(begun, get(&mut sender, &uri).await);
                            conn.close(0u32.into(), b"");
                        }
                        Err(()) => tally.errors += 1,
                    }
                }
                tally
            });
        } else {
            let Ok((sender, conn)) = connect(&endpoint, addr).await else {
                eprintln!("h3_load: cannot connect to {addr}");
                std::process::exit(1);
            };
            for _ in 0..streams {
                let (mut sender, uri) = (sender.clone(), uri.clone());
                tasks.spawn(async move {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let begun = Instant::now();
                        tally.record(begun, get(&mut sender, &uri).await);
                    }
                    tally
                });
            }
            // Held by the tasks' senders; closed when the process ends.
            std::mem::forget(conn);
        }
    }
    let mut all = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.unwrap();
        all.errors += tally.errors;
        all.micros.extend(tally.micros);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.micros.sort_unstable();
    let p99 = all
        .micros
        .get(all.micros.len() * 99 / 100)
        .map_or(0.0, |&us| f64::from(us) / 1000.0);
    println!(
        "requests {} seconds {elapsed:.3} p99_ms {p99:.2} errors {}",
        all.micros.len(),
        all.errors
    );
}

#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    errors: u64,
}

impl Tally {
    fn record(&mut self, begun: Instant, answered: bool) {
        if answered {
            let us = begun.elapsed().as_micros();
            self.micros.push(u32::try_from(us).unwrap_or(u32::MAX));
        } else {
            self.errors += 1;
        }
    }
}

async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<(Sender, quinn::Connection), ()> {
    let conn = endpoint
        .connect(addr, "bench.test")
        .map_err(drop)?
        .await
        .map_err(drop)?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .map_err(drop)?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok((sender, conn))
}

/// One `GET`, read whole; whether it was answered with a 2xx.
async fn get(sender: &mut Sender, uri: &http::Uri) -> bool {
    let request = http::Request::get(uri.clone()).body(()).unwrap();
    let Ok(mut stream) = sender.send_request(request).await else {
        return false;
    };
    if stream.finish().await.is_err() {
        return false;
    }
    let Ok(head) = stream.recv_response().await else {
        return false;
    };
    while let Ok(Some(mut chunk)) = stream.recv_data().await {
        chunk.advance(chunk.remaining());
    }
    head.status().is_success()
}

fn client_config() -> quinn::ClientConfig {
    let tls = zkgate_testkit::pki::any_certificate(&[&rustls::version::TLS13], &["h3"]);
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()))
}
