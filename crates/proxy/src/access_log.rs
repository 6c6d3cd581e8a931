//! The access log: one line per HTTP request or TCP connection, JSON or
//! HAProxy-like text, to stdout or a file. The data plane only formats a
//! line and hands it to a bounded queue without waiting; a writer task does
//! the I/O. When the queue is full, lines are dropped and counted rather than
//! slowing traffic down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;
use zkgate_config::{AccessLogConfig, AccessLogFormat};

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// A running access log.
pub struct AccessLog {
    lines: mpsc::Sender<Queued>,
    format: AccessLogFormat,
    dropped: AtomicU64,
}

/// One HTTP request, as logged.
pub struct HttpEntry<'a> {
    /// The client.
    pub client: SocketAddr,
    /// Frontend name.
    pub frontend: &'a str,
    /// Backend name, if one was chosen.
    pub backend: Option<&'a str>,
    /// The server that answered, if any.
    pub server: Option<SocketAddr>,
    /// Request method.
    pub method: &'a str,
    /// Request path and query.
    pub path: &'a str,
    /// Status sent to the client.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// Request received → response headers.
    pub headers_after: Duration,
    /// Request received → response complete.
    pub total: Duration,
    /// The request's id, when the frontend sets request ids.
    pub request_id: Option<&'a str>,
    /// The request's W3C trace id, when the frontend sets request ids.
    pub trace_id: Option<&'a str>,
}

/// One TCP connection, as logged.
pub struct TcpEntry<'a> {
    /// The client.
    pub client: SocketAddr,
    /// Frontend name.
    pub frontend: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// The server, if one was reached.
    pub server: Option<SocketAddr>,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
    /// Connection lifetime.
    pub total: Duration,
}

impl AccessLog {
    /// Opens the destination and starts the writer.
    pub async fn start(config: &AccessLogConfig) -> std::io::Result<Arc<AccessLog>> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = if config.path == "stdout" {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&config.path)
                    .await?,
            )
        };
        let (lines, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(receiver, tokio::io::BufWriter::new(out)));
        Ok(Arc::new(AccessLog {
            lines,
            format: config.format,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Waits until every line logged so far is written out (at shutdown, so
    /// that the last requests' lines are not lost with the process).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.lines.send(Queued::Flush(done)).await.is_ok() {
            // An error means the writer is gone: nothing left to wait for.
            let _ = flushed.await;
        }
    }

    fn emit(&self, line: String) {
        if self.lines.try_send(Queued::Line(line)).is_err()
            && self.dropped.fetch_add(1, Relaxed) % 10_000 == 0
        {
            warn!("access log cannot keep up: dropping lines");
        }
    }

    /// Logs a request.
    pub fn http(&self, e: &HttpEntry<'_>) {
        let server = e.server.map(|s| s.to_string());
        let mut line = match self.format {
            AccessLogFormat::Json => format!(
                "{{\"time\":\"{}\",\"client\":\"{}\",\"frontend\":{},\"backend\":{},\"server\":{},\"method\":{},\"path\":{},\"status\":{},\"bytes\":{},\"headers_ms\":{:.3},\"total_ms\":{:.3}",
                timestamp(),
                e.client,
                json(e.frontend),
                e.backend.map_or("null".into(), json),
                server.as_deref().map_or("null".into(), json),
                json(e.method),
                json(e.path),
                e.status,
                e.bytes,
                e.headers_after.as_secs_f64() * 1e3,
                e.total.as_secs_f64() * 1e3
            ),
            AccessLogFormat::Text => format!(
                "{} [{}] {} {}/{} {}/{} {} {} \"{} {}\"\n",
                e.client,
                timestamp(),
                e.frontend,
                e.backend.unwrap_or("<NOSRV>"),
                server.as_deref().unwrap_or("<NOSRV>"),
                e.headers_after.as_millis(),
                e.total.as_millis(),
                e.status,
                e.bytes,
                e.method,
                e.path.escape_debug()
            ),
        };
        // The ids of a frontend with `request_id:`, last, so that lines of
        // frontends without stay as they were.
        match self.format {
            AccessLogFormat::Json => {
                if let (Some(id), Some(trace)) = (e.request_id, e.trace_id) {
                    line.push_str(&format!(
                        ",\"request_id\":{},\"trace_id\":{}",
                        json(id),
                        json(trace)
                    ));
                }
                line.push_str("}\n");
            }
            AccessLogFormat::Text => {
                if let (Some(id), Some(trace)) = (e.request_id, e.trace_id) {
                    line.pop();
                    line.push_str(&format!(" id={} trace={}\n", id.escape_debug(), trace));
                }
            }
        }
        self.emit(line);
    }

    /// Logs a TCP connection.
    pub fn tcp(&self, e: &TcpEntry<'_>) {
        let server = e.server.map(|s| s.to_string());
        let line = match self.format {
            AccessLogFormat::Json => format!(
                "{{\"time\":\"{}\",\"client\":\"{}\",\"frontend\":{},\"backend\":{},\"server\":{},\"bytes_in\":{},\"bytes_out\":{},\"total_ms\":{:.3}}}\n",
                timestamp(),
                e.client,
                json(e.frontend),
                json(e.backend),
                server.as_deref().map_or("null".into(), json),
                e.bytes_in,
                e.bytes_out,
                e.total.as_secs_f64() * 1e3
            ),
            AccessLogFormat::Text => format!(
                "{} [{}] {} {}/{} {} {} {}\n",
                e.client,
                timestamp(),
                e.frontend,
                e.backend,
                server.as_deref().unwrap_or("<NOSRV>"),
                e.total.as_millis(),
                e.bytes_in,
                e.bytes_out
            ),
        };
        self.emit(line);
    }
}

/// What the writer is handed.
enum Queued {
    Line(String),
    /// Answered once every line queued before it is written out.
    Flush(oneshot::Sender<()>),
}

async fn write_lines(
    mut queue: mpsc::Receiver<Queued>,
    mut out: tokio::io::BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
) {
    while let Some(first) = queue.recv().await {
        // Batch what is already queued, then flush once.
        let mut next = Some(first);
        let mut ok = true;
        let mut waiting = Vec::new();
        while let Some(queued) = next {
            match queued {
                Queued::Line(line) => ok &= out.write_all(line.as_bytes()).await.is_ok(),
                Queued::Flush(done) => waiting.push(done),
            }
            next = queue.try_recv().ok();
        }
        if !ok || out.flush().await.is_err() {
            warn!("cannot write the access log");
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// A JSON string literal.
fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Now, as RFC 3339 UTC with milliseconds.
fn timestamp() -> String {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }
}
