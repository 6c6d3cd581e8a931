//! zkgate's own answers as hyper responses: the text and headers of
//! `http::response`, as the fast path writes them in bytes.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use crate::http::response::{retry_after_seconds, text_of};

/// A plain-text error answer.
pub fn error(status: StatusCode) -> Response<ProxyBody> {
    let text = text_of(status);
    let mut response = Response::new(ProxyBody::message(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Stated, so that a HEAD answer (which leaves the text out) says it too.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    if status == StatusCode::BAD_REQUEST || status == StatusCode::REQUEST_TIMEOUT {
        // After a malformed request, or one whose body stopped midway, the
        // connection's framing cannot be trusted.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A redirect (a route's `redirect:`): the status, `Location`, no body.
pub fn redirect(status: StatusCode, location: HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::message(Bytes::new()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(wait: std::time::Duration) -> Response<ProxyBody> {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS);
    if let Ok(value) = HeaderValue::from_str(&retry_after_seconds(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
