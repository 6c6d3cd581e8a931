//! Answers zkgate gives itself: short, plain, without internal detail; the
//! same text whichever adapter sends it.

use http::StatusCode;

/// Sent on the raw socket when a client's request head does not arrive in time.
pub const REQUEST_TIMEOUT_RAW: [u8; 113] = *b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n";

/// The body of an error answer.
pub fn text_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::SERVICE_UNAVAILABLE => "no server available\n",
        StatusCode::GATEWAY_TIMEOUT => "gateway timeout\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::TOO_MANY_REQUESTS => "too many requests\n",
        _ => "error\n",
    }
}

/// The same answer as hyper's path gives (see `full::answer`; a 429 with
/// `retry_after` seconds) written as raw HTTP/1.1 into `out`; `close` adds
/// `Connection: close`; the answer to a `HEAD` (`head`) leaves its text out.
pub fn write_error(
    status: StatusCode,
    retry_after: Option<u64>,
    close: bool,
    head: bool,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    let text = text_of(status);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncache-control: no-cache\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text.len()
    );
    if let Some(seconds) = retry_after {
        let _ = write!(out, "retry-after: {seconds}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(text.as_bytes());
    }
}

/// The same redirect as `full::answer::redirect`, as raw HTTP/1.1 into
/// `out`; `close` adds `Connection: close`.
pub fn write_redirect(status: StatusCode, location: &[u8], close: bool, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nlocation: ",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    out.extend_from_slice(location);
    out.extend_from_slice(b"\r\ncontent-length: 0\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whole seconds for `Retry-After` (at least 1).
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_raw_408_declares_its_exact_body_length() {
        let text = std::str::from_utf8(&super::REQUEST_TIMEOUT_RAW).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }

    #[test]
    fn raw_errors_are_complete_messages() {
        let mut out = Vec::new();
        super::write_error(
            http::StatusCode::TOO_MANY_REQUESTS,
            Some(2),
            true,
            false,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("retry-after: 2") && head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(body, "too many requests\n");
    }
}
