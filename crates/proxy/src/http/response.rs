//! Answers zkgate gives itself: short, plain, without internal detail.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;

/// Sent on the raw socket when a client's request head does not arrive in time.
pub const REQUEST_TIMEOUT_RAW: [u8; 113] = *b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n";

/// A plain-text error answer.
pub fn error(status: StatusCode) -> Response<ProxyBody> {
    let text: &'static str = match status {
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::SERVICE_UNAVAILABLE => "no server available\n",
        StatusCode::GATEWAY_TIMEOUT => "gateway timeout\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::TOO_MANY_REQUESTS => "too many requests\n",
        _ => "error\n",
    };
    let mut response = Response::new(ProxyBody::message(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if status == StatusCode::BAD_REQUEST {
        // After a malformed request the connection's framing cannot be trusted.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(wait: std::time::Duration) -> Response<ProxyBody> {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS);
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_raw_408_declares_its_exact_body_length() {
        let text = std::str::from_utf8(&super::REQUEST_TIMEOUT_RAW).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
