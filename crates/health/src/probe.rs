//! One check of one server.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkgate_config::{HealthCheckConfig, HealthCheckKind};

/// The most of a tcp-check reply read while looking for `expect`.
const MAX_REPLY: usize = 16 * 1024;

/// Runs one check; `Ok` if it passed, else why it failed.
pub async fn probe(address: SocketAddr, config: &HealthCheckConfig) -> Result<(), String> {
    match tokio::time::timeout(config.timeout, run(address, &config.kind)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {:?}", config.timeout)),
    }
}

async fn run(address: SocketAddr, kind: &HealthCheckKind) -> Result<(), String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    match kind {
        HealthCheckKind::Tcp { send, expect } => {
            if let Some(payload) = send {
                stream
                    .write_all(payload.as_bytes())
                    .await
                    .map_err(|err| format!("send: {err}"))?;
            }
            let Some(expected) = expect else {
                return Ok(());
            };
            let mut reply = Vec::new();
            let mut buffer = [0u8; 1024];
            while reply.len() < MAX_REPLY {
                let n = stream
                    .read(&mut buffer)
                    .await
                    .map_err(|err| format!("read: {err}"))?;
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buffer[..n]);
                if contains(&reply, expected.as_bytes()) {
                    return Ok(());
                }
            }
            Err(format!("reply does not contain `{expected}`"))
        }
        HealthCheckKind::Http {
            method,
            path,
            host,
            expect,
        } => {
            stream.set_nodelay(true).ok();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|err| format!("http: {err}"))?;
            tokio::spawn(connection);
            let host = host.clone().unwrap_or_else(|| address.to_string());
            let request = http::Request::builder()
                .method(method.clone())
                .uri(path.as_str())
                .header(http::header::HOST, host)
                .header(http::header::USER_AGENT, "zkgate-health-check")
                .header(http::header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|err| format!("request: {err}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|err| format!("http: {err}"))?;
            let status = response.status().as_u16();
            if HealthCheckKind::accepts(expect, status) {
                Ok(())
            } else {
                Err(format!("status {status}"))
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
