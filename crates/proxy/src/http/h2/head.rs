//! A request's header block, decoded field by field, checked as RFC 9113
//! §8.2–8.3 asks, and made a request for the request core; and a response
//! head made a header block.
//!
//! What a malformed request gets follows HAProxy: a `:method` or `:scheme`
//! that is not valid is answered 400, anything else malformed (a bad
//! `:path`, a missing or repeated pseudo-header, an upper-case or
//! connection-specific field) resets the stream. Either way it reaches no
//! server and the connection's other streams go on.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

use super::hpack;
use crate::http::headers::strip_hop_by_hop;

/// Decoded size of one request's fields (each counts 32 bytes more, RFC
/// 9113 §6.5.2); beyond, the request is answered 431.
pub const MAX_HEADER_LIST_SIZE: usize = 64 * 1024;

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answered with this status.
    Answer(StatusCode),
    /// The stream is reset (PROTOCOL_ERROR).
    Reset(&'static str),
}

/// Where a field's bytes are in [`Fields`]' store.
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

/// One regular field: its name and value.
#[derive(Clone, Copy)]
struct Field {
    name: Span,
    value: Span,
}

/// A header block's fields as the decoder gives them, checked and kept as
/// bytes: a header map is made only for a request that goes through the
/// request core as an `http::Request` (the lane reads the bytes).
#[derive(Default)]
pub struct Fields {
    method: Option<Method>,
    scheme: Option<Span>,
    authority: Option<Span>,
    path: Option<Span>,
    protocol: Option<Span>,
    /// The pseudo-headers' values, back to back.
    pseudo: String,
    /// The regular fields' names and values, back to back.
    store: Vec<u8>,
    regular: Vec<Field>,
    /// `cookie` fields, joined into one for HTTP/1.1 (RFC 9113 §8.2.3).
    cookies: usize,
    /// `host` fields.
    hosts: usize,
    size: usize,
    regular_seen: bool,
    refused: Option<Refusal>,
}

/// Connection-specific fields have no place in HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"transfer-encoding",
    b"upgrade",
    b"keep-alive",
    b"proxy-connection",
];

impl Fields {
    /// Room for the fields of a header block of `len` bytes, which HPACK
    /// makes several times smaller than the fields it carries.
    pub fn for_block(len: usize) -> Fields {
        Fields {
            pseudo: String::with_capacity(64),
            store: Vec::with_capacity((256 + len * 4).min(MAX_HEADER_LIST_SIZE)),
            regular: Vec::with_capacity(12),
            ..Fields::default()
        }
    }

    /// Takes one decoded field; the first problem found is kept.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.size += name.len() + value.len() + 32;
        if self.size > MAX_HEADER_LIST_SIZE {
            self.refuse(Refusal::Answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        }
        if self.refused.is_some() {
            return;
        }
        if let Err(refusal) = self.take(name, value) {
            self.refuse(refusal);
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.refused.get_or_insert(refusal);
    }

    fn keep(&mut self, bytes: &[u8]) -> Span {
        let start = self.store.len() as u32;
        self.store.extend_from_slice(bytes);
        Span {
            start,
            end: self.store.len() as u32,
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.store[span.start as usize..span.end as usize]
    }

    fn text(&self, span: Span) -> &str {
        self.pseudo
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    fn take(&mut self, name: &[u8], value: &[u8]) -> Result<(), Refusal> {
        if value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
            || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
        {
            return Err(Refusal::Reset("a field value with white space around it"));
        }
        let Some(pseudo) = name.strip_prefix(b":") else {
            self.regular_seen = true;
            return self.take_regular(name, value);
        };
        if self.regular_seen {
            return Err(Refusal::Reset("a pseudo-header after a regular field"));
        }
        if pseudo == b"method" {
            let method = Method::from_bytes(value)
                .ok()
                .filter(|_| crate::http::headers::is_token(value))
                .ok_or(Refusal::Answer(StatusCode::BAD_REQUEST))?;
            if self.method.replace(method).is_some() {
                return Err(Refusal::Reset("a repeated pseudo-header"));
            }
            return Ok(());
        }
        if pseudo == b"scheme" && !is_scheme(value) {
            return Err(Refusal::Answer(StatusCode::BAD_REQUEST));
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return Err(Refusal::Reset("a pseudo-header that is not text"));
        };
        let start = self.pseudo.len() as u32;
        self.pseudo.push_str(text);
        let span = Span {
            start,
            end: self.pseudo.len() as u32,
        };
        let slot = match pseudo {
            b"scheme" => &mut self.scheme,
            b"authority" => &mut self.authority,
            b"path" => &mut self.path,
            b"protocol" => &mut self.protocol,
            _ => return Err(Refusal::Reset("an unknown pseudo-header")),
        };
        if slot.replace(span).is_some() {
            return Err(Refusal::Reset("a repeated pseudo-header"));
        }
        Ok(())
    }

    fn take_regular(&mut self, name: &[u8], value: &[u8]) -> Result<(), Refusal> {
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err(Refusal::Reset("an upper-case field name"));
        }
        // What `HeaderName` and `HeaderValue` accept, checked on the bytes.
        if !crate::http::headers::is_token(name) {
            return Err(Refusal::Reset("a bad field name"));
        }
        if !crate::http::headers::is_field_value(value) {
            return Err(Refusal::Reset("a bad field value"));
        }
        if CONNECTION_SPECIFIC.contains(&name) {
            return Err(Refusal::Reset("a connection-specific field"));
        }
        if name == b"te" && value != b"trailers" {
            return Err(Refusal::Reset("a `te` other than `trailers`"));
        }
        match name {
            b"cookie" => self.cookies += 1,
            b"host" => self.hosts += 1,
            _ => {}
        }
        let field = Field {
            name: self.keep(name),
            value: self.keep(value),
        };
        self.regular.push(field);
        Ok(())
    }

    /// The first problem found, if any.
    pub fn refused(&self) -> Option<Refusal> {
        self.refused
    }

    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    pub fn scheme(&self) -> Option<&str> {
        self.scheme.map(|span| self.text(span))
    }

    pub fn authority(&self) -> Option<&str> {
        self.authority.map(|span| self.text(span))
    }

    pub fn path(&self) -> Option<&str> {
        self.path.map(|span| self.text(span))
    }

    pub fn has_protocol(&self) -> bool {
        self.protocol.is_some()
    }

    /// How many `cookie` and `host` fields came.
    pub fn cookies_and_hosts(&self) -> (usize, usize) {
        (self.cookies, self.hosts)
    }

    /// The regular fields, in order (names in lower case).
    pub fn regular(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.regular
            .iter()
            .map(|field| (self.bytes(field.name), self.bytes(field.value)))
    }

    /// The regular fields as a header map, `cookie` fields joined.
    fn header_map(&self) -> Result<HeaderMap, Refusal> {
        let mut headers = HeaderMap::with_capacity(self.regular.len());
        let mut cookies: Vec<&[u8]> = Vec::new();
        for (name, value) in self.regular() {
            if name == b"cookie" {
                cookies.push(value);
                continue;
            }
            let name =
                HeaderName::from_bytes(name).map_err(|_| Refusal::Reset("a bad field name"))?;
            let value =
                HeaderValue::from_bytes(value).map_err(|_| Refusal::Reset("a bad field value"))?;
            headers.append(name, value);
        }
        if !cookies.is_empty() {
            let joined = HeaderValue::from_bytes(&cookies.join(&b"; "[..]))
                .map_err(|_| Refusal::Reset("a bad field value"))?;
            headers.insert(header::COOKIE, joined);
        }
        Ok(headers)
    }

    /// The request the fields make (its body to come).
    pub fn into_request(self) -> Result<Request<()>, Refusal> {
        if let Some(refusal) = self.refused {
            return Err(refusal);
        }
        let method = self.method.clone().ok_or(Refusal::Reset("no :method"))?;
        let uri = if method == Method::CONNECT && self.protocol.is_none() {
            // A plain CONNECT names only where to (RFC 9113 §8.5).
            if self.scheme.is_some() || self.path.is_some() {
                return Err(Refusal::Reset("a CONNECT with :scheme or :path"));
            }
            let authority = self
                .authority()
                .ok_or(Refusal::Reset("a CONNECT without :authority"))?;
            Uri::try_from(authority).map_err(|_| Refusal::Reset("a bad :authority"))?
        } else {
            let scheme = self.scheme().ok_or(Refusal::Reset("no :scheme"))?;
            let path = self.path().ok_or(Refusal::Reset("no :path"))?;
            let valid_path = path.starts_with('/') || (path == "*" && method == Method::OPTIONS);
            if !valid_path {
                return Err(Refusal::Reset("a :path that is not absolute"));
            }
            match self.authority() {
                Some(authority) => Uri::builder()
                    .scheme(scheme)
                    .authority(authority)
                    .path_and_query(path)
                    .build(),
                None => Uri::builder().path_and_query(path).build(),
            }
            .map_err(|_| Refusal::Reset("a :path or :authority that is not a URI part"))?
        };
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = self.header_map()?;
        if let Some(protocol) = self.protocol {
            request
                .extensions_mut()
                .insert(hyper::ext::Protocol::from(self.text(protocol)));
        }
        Ok(request)
    }

    /// The fields as a request's trailers: no pseudo-header there.
    pub fn into_trailers(self) -> Result<HeaderMap, Refusal> {
        if let Some(refusal) = self.refused {
            return Err(refusal);
        }
        let pseudo = self.method.is_some()
            || self.scheme.is_some()
            || self.authority.is_some()
            || self.path.is_some()
            || self.protocol.is_some();
        if pseudo {
            return Err(Refusal::Reset("a pseudo-header in trailers"));
        }
        self.header_map()
    }
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(value: &[u8]) -> bool {
    value.first().is_some_and(u8::is_ascii_alphabetic)
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Appends a head's header block: `:status`, then its fields but the
/// connection-specific ones.
pub fn encode_head(status: StatusCode, headers: &mut HeaderMap, block: &mut Vec<u8>) {
    hpack::status(status.as_u16(), block);
    encode_fields(headers, block);
}

/// Appends fields (a head's, or trailers) but the connection-specific ones.
pub fn encode_fields(headers: &mut HeaderMap, block: &mut Vec<u8>) {
    strip_hop_by_hop(headers);
    for (name, value) in headers.iter() {
        hpack::field(name.as_str().as_bytes(), value.as_bytes(), block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Fields {
        let mut fields = Fields::default();
        for (name, value) in list {
            fields.add(name.as_bytes(), value.as_bytes());
        }
        fields
    }

    const GET: [(&str, &str); 3] = [(":method", "GET"), (":scheme", "https"), (":path", "/a?b")];

    #[test]
    fn a_valid_request_becomes_one_for_the_request_core() {
        let mut list = GET.to_vec();
        list.push((":authority", "example.com:8443"));
        list.push(("cookie", "a=1"));
        list.push(("x-b", "2"));
        list.push(("cookie", "c=3"));
        let request = fields(&list).into_request().unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "https://example.com:8443/a?b");
        assert_eq!(request.version(), Version::HTTP_2);
        assert_eq!(request.headers()["cookie"], "a=1; c=3");
        assert_eq!(request.headers()["x-b"], "2");
        let without_authority = fields(&GET).into_request().unwrap();
        assert_eq!(without_authority.uri(), "/a?b");
    }

    #[test]
    fn a_bad_method_or_scheme_is_answered_400_and_other_faults_reset() {
        let answered = [(":method", "GET?"), (":scheme", "http://localhost/?")];
        for (name, value) in answered {
            let mut list: Vec<_> = GET.iter().filter(|(n, _)| *n != name).copied().collect();
            list.push((name, value));
            assert_eq!(
                fields(&list).into_request().unwrap_err(),
                Refusal::Answer(StatusCode::BAD_REQUEST),
                "{name}: {value}"
            );
        }
        let reset: [&[(&str, &str)]; 8] = [
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "hello-world"),
            ],
            &[(":method", "GET"), (":scheme", "http")],
            &[
                (":method", "GET"),
                (":path", "/"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":status", "200"),
            ],
            &[
                (":method", "GET"),
                ("x-a", "1"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("X-A", "1"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("connection", "close"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "gzip"),
            ],
        ];
        for list in reset {
            assert!(
                matches!(fields(list).into_request(), Err(Refusal::Reset(_))),
                "{list:?}"
            );
        }
        let te = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("te", "trailers"),
        ];
        assert!(fields(&te).into_request().is_ok());
    }

    #[test]
    fn too_many_fields_are_answered_431() {
        let mut many = fields(&GET);
        let value = "v".repeat(1000);
        for _ in 0..70 {
            many.add(b"x-big", value.as_bytes());
        }
        assert_eq!(
            many.into_request().unwrap_err(),
            Refusal::Answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn trailers_carry_no_pseudo_header() {
        assert!(fields(&[("x-sum", "1")]).into_trailers().is_ok());
        assert!(fields(&[(":path", "/")]).into_trailers().is_err());
    }
}
