//! A client's request head, parsed in place in the connection's read buffer,
//! and whether the fast path may serve it.

use std::mem::MaybeUninit;

use http::HeaderName;
use zkgate_routing::RequestHeaders;

use super::ascii::spells;
use crate::http::policy::keys::host_name;
use crate::http::policy::RequestView;

/// Most headers the fast path parses; a request with more goes to hyper,
/// which takes up to `MAX_HEADERS`.
const MAX_FAST_HEADERS: usize = 64;

/// What a header is to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Forwarded as it came.
    Plain,
    /// `Host`.
    Host,
    /// The connection's own (`Connection`, `Keep-Alive`, `TE`, …): never forwarded.
    HopByHop,
    /// `X-Forwarded-For`: extended with the client when zkgate adds X-Forwarded-*.
    ForwardedFor,
    /// `X-Forwarded-Proto` / `-Host`: replaced when zkgate adds X-Forwarded-*.
    ForwardedOther,
}

/// Where one header's name and value lie in the head.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    name: (u32, u32),
    value: (u32, u32),
    pub role: Role,
}

/// The parts of a complete head the fast path serves (offsets into the buffer).
#[derive(Debug, Clone, Copy)]
pub struct Parsed {
    /// Bytes the head takes (through the blank line).
    pub len: usize,
    method: (u32, u32),
    target: (u32, u32),
    /// Length of the path within the target (before any `?`).
    path_len: u32,
    /// Index of the `Host` field.
    host: Option<u32>,
    /// The client asked to close the connection after this request.
    pub close: bool,
    /// Its body's length (its one `Content-Length`; 0 without one).
    pub body: u64,
    /// Its body is chunked (its one `Transfer-Encoding`, without a length).
    pub chunked: bool,
    /// It said `Expect: 100-continue`.
    pub expects_continue: bool,
}

/// What the start of a client's buffer holds.
#[derive(Debug)]
pub enum Scan {
    /// A complete head the fast path serves.
    Complete(Parsed),
    /// More bytes are needed.
    Partial,
    /// Malformed, too large, or something the fast path leaves to hyper:
    /// a body framed otherwise than by one plain `Content-Length`,
    /// `Upgrade`, `Expect`, HTTP/1.0, an absolute URI, `CONNECT`, …
    Other,
}

/// Parses the head at the start of `buf`; on `Complete`, `fields` holds its headers.
pub fn scan(buf: &[u8], fields: &mut Vec<Field>) -> Scan {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FAST_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Scan::Partial,
        Err(_) => return Scan::Other,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Scan::Other;
    };
    if method == "CONNECT" || !is_origin_form(target.as_bytes()) {
        return Scan::Other;
    }
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        (start as u32, (start + part.len()) as u32)
    };
    fields.clear();
    let mut parsed = Parsed {
        len,
        method: at(method.as_bytes()),
        target: at(target.as_bytes()),
        path_len: target
            .bytes()
            .position(|b| b == b'?')
            .unwrap_or(target.len()) as u32,
        host: None,
        close: false,
        body: 0,
        chunked: false,
        expects_continue: false,
    };
    let mut seen_length = false;
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        let role = match role_of(name) {
            Some(role) => role,
            // One plain `Content-Length`, or one `Transfer-Encoding:
            // chunked` (the request core takes its body); any other
            // framing or a protocol switch: hyper's.
            // The request core answers it (as the body is first asked for).
            None if !parsed.expects_continue
                && spells(name, b"expect")
                && value.trim_ascii().eq_ignore_ascii_case(b"100-continue") =>
            {
                parsed.expects_continue = true;
                Role::Plain
            }
            None if !seen_length && spells(name, b"transfer-encoding") => {
                if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Scan::Other;
                }
                parsed.chunked = true;
                seen_length = true;
                Role::Plain
            }
            None if !seen_length && spells(name, b"content-length") => {
                let Some(length) = plain_length(value) else {
                    return Scan::Other;
                };
                parsed.body = length;
                seen_length = true;
                Role::Plain
            }
            None => return Scan::Other,
        };
        if role == Role::Host {
            if parsed.host.is_some() {
                return Scan::Other;
            }
            parsed.host = Some(fields.len() as u32);
        }
        if spells(name, b"connection") {
            match connection_tokens(value) {
                Some(close) => parsed.close |= close,
                None => return Scan::Other,
            }
        }
        fields.push(Field {
            name: at(name),
            value: at(value),
            role,
        });
    }
    Scan::Complete(parsed)
}

/// The role of a header by its name; `None` for those the fast path does
/// not serve (or, for `Content-Length`, must look at the value of).
fn role_of(name: &[u8]) -> Option<Role> {
    let is = |known: &str| spells(name, known.as_bytes());
    // Dispatch on length first: most names match none and cost one compare.
    Some(match name.len() {
        2 if is("te") => Role::HopByHop,
        4 if is("host") => Role::Host,
        6 if is("expect") => return None,
        7 if is("upgrade") => return None,
        7 if is("trailer") => Role::HopByHop,
        10 if is("connection") || is("keep-alive") => Role::HopByHop,
        14 if is("content-length") => return None,
        15 if is("x-forwarded-for") => Role::ForwardedFor,
        16 if is("x-forwarded-host") => Role::ForwardedOther,
        16 if is("proxy-connection") => Role::HopByHop,
        17 if is("transfer-encoding") => return None,
        17 if is("x-forwarded-proto") => Role::ForwardedOther,
        _ => Role::Plain,
    })
}

/// A `Content-Length` in its one plain spelling: digits, no leading zero
/// (but `0`), short of any overflow. Anything else is hyper's to refuse.
fn plain_length(value: &[u8]) -> Option<u64> {
    let plain = matches!(value, [b'0'] | [b'1'..=b'9', ..])
        && value.len() <= 15
        && value.iter().all(u8::is_ascii_digit);
    plain.then(|| value.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Whether `Connection` asks to close (`Some(true)`); `None` when it names
/// anything but `close` and `keep-alive` (an upgrade, or headers to drop:
/// hyper's path handles those).
fn connection_tokens(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if spells(token, b"close") {
            close = true;
        } else if !spells(token, b"keep-alive") && !token.is_empty() {
            return None;
        }
    }
    Some(close)
}

/// An origin-form target (`/path?query`) of bytes a URI may hold (RFC 3986);
/// anything else is left to hyper's stricter URI parsing and its answer.
fn is_origin_form(target: &[u8]) -> bool {
    target.first() == Some(&b'/')
        && target.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                )
        })
}

/// A complete head and its fields, read in place.
pub struct Head<'a> {
    pub buf: &'a [u8],
    pub fields: &'a [Field],
    pub parsed: Parsed,
}

impl Parsed {
    /// How its body is framed, if it has one.
    pub fn body_framing(&self) -> Option<super::body::Framing> {
        if self.chunked {
            Some(super::body::Framing::Chunked)
        } else {
            (self.body > 0).then_some(super::body::Framing::Length(self.body))
        }
    }
}

impl<'a> Head<'a> {
    fn slice(&self, (start, end): (u32, u32)) -> &'a [u8] {
        &self.buf[start as usize..end as usize]
    }

    fn text(&self, range: (u32, u32)) -> &'a str {
        // The parser admits only ASCII in methods and (see `is_origin_form`) targets.
        std::str::from_utf8(self.slice(range)).unwrap_or_default()
    }

    pub fn method(&self) -> &'a str {
        self.text(self.parsed.method)
    }

    pub fn method_bytes(&self) -> &'a [u8] {
        self.slice(self.parsed.method)
    }

    pub fn target_bytes(&self) -> &'a [u8] {
        self.slice(self.parsed.target)
    }

    pub fn is_head(&self) -> bool {
        self.method_bytes() == b"HEAD"
    }

    /// Path and query, as sent.
    pub fn target(&self) -> &'a str {
        self.text(self.parsed.target)
    }

    /// The `Host` header's value, as sent.
    pub fn host_value(&self) -> Option<&'a [u8]> {
        let field = self.fields[self.parsed.host? as usize];
        Some(self.slice(field.value))
    }

    /// The host to route by: `Host` without its port.
    pub fn host(&self) -> Option<&'a [u8]> {
        host_name(self.host_value()?)
    }

    pub fn name(&self, field: &Field) -> &'a [u8] {
        self.slice(field.name)
    }

    pub fn value(&self, field: &Field) -> &'a [u8] {
        self.slice(field.value)
    }
}

impl RequestHeaders for Head<'_> {
    fn has_value(&self, name: &HeaderName, value: &[u8]) -> bool {
        self.values(name).any(|v| v == value)
    }
}

impl RequestView for Head<'_> {
    type Headers = Self;

    fn host(&self) -> Option<&[u8]> {
        Head::host(self)
    }

    fn headers(&self) -> &Self {
        self
    }

    fn path(&self) -> &[u8] {
        let (start, _) = self.parsed.target;
        self.slice((start, start + self.parsed.path_len))
    }

    fn path_and_query(&self) -> &[u8] {
        self.target_bytes()
    }

    fn values<'b>(&'b self, name: &'b HeaderName) -> impl Iterator<Item = &'b [u8]> + 'b {
        self.fields
            .iter()
            .filter(move |field| {
                self.name(field)
                    .eq_ignore_ascii_case(name.as_str().as_bytes())
            })
            .map(move |field| self.value(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path's request-side matcher agrees with the one list of
    /// hop-by-hop headers hyper's path strips: each is dropped, or (where
    /// the fast path must look at it: `Upgrade`, `Transfer-Encoding`) the
    /// request goes to hyper's path, whatever the case of its name.
    #[test]
    fn hop_by_hop_headers_are_the_same_list_as_on_hyper_path() {
        for name in crate::http::headers::HOP_BY_HOP {
            for spelling in [name.as_str().to_owned(), name.as_str().to_uppercase()] {
                let role = role_of(spelling.as_bytes());
                assert!(
                    matches!(role, Some(Role::HopByHop) | None),
                    "{spelling}: {role:?}"
                );
            }
        }
        for plain in ["accept", "x-connection", "tee", "upgrades"] {
            assert_eq!(role_of(plain.as_bytes()), Some(Role::Plain), "{plain}");
        }
    }

    fn complete(raw: &str) -> (Parsed, Vec<Field>) {
        let mut fields = Vec::new();
        match scan(raw.as_bytes(), &mut fields) {
            Scan::Complete(parsed) => (parsed, fields),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn is_other(raw: &str) -> bool {
        matches!(scan(raw.as_bytes(), &mut Vec::new()), Scan::Other)
    }

    #[test]
    fn a_plain_get_is_served_with_its_fields_in_place() {
        let raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-User: u1\r\nCookie: s=1; t=2\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\nGET /next";
        let (parsed, fields) = complete(raw);
        assert_eq!(parsed.len, raw.len() - "GET /next".len());
        let head = Head {
            buf: raw.as_bytes(),
            fields: &fields,
            parsed,
        };
        assert_eq!(head.method(), "GET");
        assert_eq!(head.target(), "/a/b?x=1");
        assert_eq!(head.path(), b"/a/b");
        assert_eq!(head.host(), Some(&b"Example.com"[..]));
        assert!(!parsed.close);
        let user = HeaderName::from_static("x-user");
        assert!(head.has_value(&user, b"u1"));
        assert!(!head.has_value(&user, b"u2"));
        assert_eq!(
            crate::http::policy::keys::cookie(&head, "t"),
            Some(&b"2"[..]),
            "cookies are read from the head"
        );
        let roles: Vec<Role> = fields.iter().map(|f| f.role).collect();
        assert_eq!(
            roles,
            [
                Role::Host,
                Role::Plain,
                Role::Plain,
                Role::HopByHop,
                Role::Plain
            ]
        );
    }

    #[test]
    fn hosts_lose_their_port_including_ipv6_literals() {
        for (host, expected) in [("[::1]:80", Some("::1")), ("a.example", Some("a.example"))] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let (parsed, fields) = complete(&raw);
            let head = Head {
                buf: raw.as_bytes(),
                fields: &fields,
                parsed,
            };
            assert_eq!(head.host(), expected.map(str::as_bytes));
        }
        let (parsed, fields) = complete("GET / HTTP/1.1\r\n\r\n");
        assert!(Head {
            buf: b"GET / HTTP/1.1\r\n\r\n",
            fields: &fields,
            parsed
        }
        .host()
        .is_none());
    }

    #[test]
    fn close_is_noted() {
        let (parsed, _) = complete("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(parsed.close);
    }

    #[test]
    fn partial_heads_wait_for_more() {
        let mut fields = Vec::new();
        for raw in ["", "GET", "GET / HTTP/1.1\r\nHost: a\r\n"] {
            assert!(matches!(scan(raw.as_bytes(), &mut fields), Scan::Partial));
        }
    }

    #[test]
    fn one_plain_length_or_chunked_states_the_body() {
        let (parsed, _) = complete("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(parsed.body, 5);
        let (parsed, _) = complete("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(parsed.body, 0);
        let (parsed, _) = complete("POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n");
        assert_eq!(parsed.body, 999_999_999_999_999);
        assert!(!parsed.expects_continue);
        let (parsed, _) =
            complete("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n");
        assert!(parsed.expects_continue);
        let (parsed, _) = complete("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert!(parsed.chunked);
        assert_eq!(
            parsed.body_framing(),
            Some(super::super::body::Framing::Chunked)
        );
    }

    #[test]
    fn everything_unusual_is_left_to_hyper() {
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a.example/ HTTP/1.1\r\n\r\n",
            "CONNECT a.example:443 HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue, x\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: something-else\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n",
        ] {
            assert!(is_other(raw), "{raw:?}");
        }
        let many: String = (0..MAX_FAST_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert!(is_other(&format!("GET / HTTP/1.1\r\n{many}\r\n")));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_scan_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut fields = Vec::new();
            if let Scan::Complete(parsed) = scan(&bytes, &mut fields) {
                let head = Head { buf: &bytes, fields: &fields, parsed };
                let _ = (head.method(), head.target(), head.path(), head.host());
                proptest::prop_assert!(parsed.len <= bytes.len());
            }
        }
    }
}
