//! A minimal HTTP/1.1 origin for load benchmarks: on every port given,
//! answers `GET /1m` with 1 MiB, `GET /text` with 128 KiB of HTML (text
//! that compresses about as a web page does) and anything else with a
//! 64-byte body (`GET /slow` too, 10 s late: a request in flight),
//! keep-alive, on the calling thread. It does so little per request that the
//! load generator's core, which also runs the origins, keeps headroom and
//! the proxy under test is the bottleneck. `examples/responder.rs` runs it
//! as a program; `benches/churn.rs` runs it in a child process.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SMALL_BODY: &[u8; 64] = b"0123456789012345678901234567890123456789012345678901234567890123";
const LARGE_BODY_LEN: usize = 1 << 20;
/// The length of the `/text` page.
pub const TEXT_BODY_LEN: usize = 128 * 1024;

/// `18101`, or an inclusive range `19000-19999`.
pub fn parse_ports(arg: &str) -> Option<RangeInclusive<u16>> {
    match arg.split_once('-') {
        Some((first, last)) => Some(first.parse().ok()?..=last.parse().ok()?),
        None => arg.parse().ok().map(|port| port..=port),
    }
}

/// Serves on 127.0.0.1 at every port, forever; returns only if a port
/// cannot be bound.
pub fn serve(ports: impl IntoIterator<Item = u16>) -> std::io::Result<()> {
    let binary = "application/octet-stream";
    let small: &'static [u8] = Box::leak(response(SMALL_BODY, binary).into_boxed_slice());
    let large: &'static [u8] =
        Box::leak(response(&vec![b'x'; LARGE_BODY_LEN], binary).into_boxed_slice());
    let text: &'static [u8] =
        Box::leak(response(&page(), "text/html; charset=utf-8").into_boxed_slice());
    let answers: &'static Answers = Box::leak(Box::new(Answers { small, large, text }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        for port in ports {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, answers));
                }
            });
        }
        std::future::pending::<std::io::Result<()>>().await
    })
}

fn response(body: &[u8], media: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nServer: responder\r\nDate: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
         Content-Type: {media}\r\nContent-Length: {}\r\n\
         Connection: keep-alive\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The three answers, whole.
struct Answers {
    small: &'static [u8],
    large: &'static [u8],
    text: &'static [u8],
}

/// [`TEXT_BODY_LEN`] bytes of HTML paragraphs of words drawn from a small
/// vocabulary (deterministic): it compresses about 3 to 4 times, as pages do.
fn page() -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "proxy",
        "server",
        "request",
        "the",
        "of",
        "and",
        "zookeeper",
        "route",
        "backend",
        "to",
        "a",
        "connection",
        "table",
        "member",
        "health",
        "weight",
        "in",
        "for",
        "edge",
        "frontend",
        "with",
        "traffic",
        "is",
        "latency",
    ];
    let mut out = Vec::with_capacity(TEXT_BODY_LEN + 64);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut counter = 0u64;
    while out.len() < TEXT_BODY_LEN {
        out.extend_from_slice(b"<p class=\"item\">");
        for _ in 0..12 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(WORDS[(state % 24) as usize].as_bytes());
            out.push(b' ');
        }
        counter += 1;
        out.extend_from_slice(format!("#{counter}</p>\n").as_bytes());
    }
    out.truncate(TEXT_BODY_LEN);
    out
}

/// Answers each request head as it completes; bodies are not expected.
async fn answer(mut stream: TcpStream, answers: &'static Answers) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let mut start = 0;
        while let Some(end) = find_head_end(&buf[start..filled]) {
            let head = &buf[start..start + end];
            if head.starts_with(b"GET /slow ") {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
            let answer = if head.starts_with(b"GET /1m ") {
                answers.large
            } else if head.starts_with(b"GET /text ") {
                answers.text
            } else {
                answers.small
            };
            if stream.write_all(answer).await.is_err() {
                return;
            }
            start += end;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            return; // a head larger than the buffer: not a benchmark request
        }
    }
}

/// The length of the first complete head in `bytes`, its blank line included.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_single_or_inclusive_ranges() {
        assert_eq!(parse_ports("18101"), Some(18101..=18101));
        assert_eq!(parse_ports("19000-19999").map(|r| r.count()), Some(1000));
        assert_eq!(parse_ports("x"), None);
        assert_eq!(parse_ports("1-x"), None);
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
