//! A server's response head, rewritten for the client as it is parsed, and
//! how its body is framed. Bodies pass through as they came (chunked stays
//! chunked): zkgate only needs to find their end (`super::chunked`).

use std::mem::MaybeUninit;

use super::ascii::spells;
use crate::http::policy::edits::Edits;

/// Most headers accepted in a response.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Largest response head accepted from a server.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What a response header is to the proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop (RFC 9110 §7.6.1): dropped. The framing headers stay, as
    /// the body goes through unchanged.
    HopByHop,
}

fn role_of(name: &[u8]) -> Role {
    let is = |known: &str| spells(name, known.as_bytes());
    // Dispatch on length first: most names match none and cost one compare.
    match name.len() {
        2 if is("te") => Role::HopByHop,
        7 if is("trailer") || is("upgrade") => Role::HopByHop,
        10 if is("connection") => Role::Connection,
        10 if is("keep-alive") => Role::HopByHop,
        14 if is("content-length") => Role::ContentLength,
        16 if is("proxy-connection") => Role::HopByHop,
        17 if is("transfer-encoding") => Role::TransferEncoding,
        _ => Role::Plain,
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: `HEAD`, 204, 304.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: …, chunked`.
    Chunked,
    /// Neither: the body ends when the server closes.
    UntilClose,
}

/// A complete response head.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Bytes the head took in the server's buffer.
    pub len: usize,
    pub framing: Framing,
    /// The server keeps the connection open after this response.
    pub reusable: bool,
}

/// What the start of a server's buffer holds.
#[derive(Debug)]
pub enum Scan {
    /// A final response; its head for the client is written.
    Final(Response),
    /// A 1xx interim response of this many bytes; its head for the client
    /// is written (RFC 9110 §15.2: a proxy forwards them).
    Interim(usize),
    /// More bytes are needed.
    Partial,
}

/// The response violates HTTP/1.1 in a way that makes it unsafe to forward.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// What to add to the head for the client.
pub struct Additions<'a> {
    /// A `Set-Cookie` value (sticky sessions).
    pub set_cookie: Option<&'a str>,
    /// Tell the client the connection closes after this response.
    pub close: bool,
    /// The route's response header rules and zkgate's own fields.
    pub edits: &'a Edits<'a>,
}

/// Parses the response at the start of `buf` (to a request with method
/// `HEAD` if `head`); on a final response appends its head for the client to `out`.
pub fn scan(
    buf: &[u8],
    head: bool,
    additions: &Additions<'_>,
    out: &mut Vec<u8>,
) -> Result<Scan, Malformed> {
    let parsed = parse(buf, head, |seen| match seen {
        Seen::Interim {
            status,
            reason,
            headers,
        } => write_interim(status, reason, headers, out),
        Seen::Final(head) => head.write(additions, out),
    })?;
    Ok(match parsed {
        Parsed::Final(response, ()) => Scan::Final(response),
        Parsed::Interim(len, ()) => Scan::Interim(len),
        Parsed::Partial => Scan::Partial,
    })
}

/// What [`parse`] found at the start of a server's buffer.
pub enum Parsed<R> {
    /// A final response, and what was made of its head.
    Final(Response, R),
    /// A 1xx interim response of this many bytes, and what was made of it.
    Interim(usize, R),
    /// More bytes are needed.
    Partial,
}

/// A head [`parse`] found, to make something of.
pub enum Seen<'a, 'h, 'b> {
    Interim {
        status: u16,
        reason: &'b str,
        headers: &'h [httparse::Header<'b>],
    },
    Final(&'a FinalHead<'h, 'b>),
}

/// Parses the response at the start of `buf` (to a request with method
/// `HEAD` if `head`), the one set of rules for where a server's response
/// ends and whether its connection may be reused, whichever side the
/// answer goes to: `make` makes what the caller needs of the head found.
pub fn parse<R>(
    buf: &[u8],
    head: bool,
    make: impl FnOnce(Seen<'_, '_, '_>) -> R,
) -> Result<Parsed<R>, Malformed> {
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(Malformed("unparsable response head")),
    };
    let status = response.code.unwrap_or_default();
    match status {
        101 => return Err(Malformed("switching protocols without an upgrade")),
        100..=199 => {
            let made = make(Seen::Interim {
                status,
                reason: response.reason.unwrap_or_default(),
                headers: response.headers,
            });
            return Ok(Parsed::Interim(len, made));
        }
        _ => {}
    }

    let http11 = response.version == Some(1);
    let mut roles = [Role::Plain; MAX_RESPONSE_HEADERS];
    let fields = classify(response.headers, &mut roles)?;
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3), whose
    // line is then dropped, as HAProxy does; but only a chunked one tells
    // where the body ends: with any other coding the two disagree.
    let both = fields.chunked.is_some() && fields.length.is_some();
    if fields.chunked == Some(false) && fields.length.is_some() {
        return Err(Malformed(
            "Content-Length with a Transfer-Encoding other than chunked",
        ));
    }
    // HTTP/1.0 has no transfer codings: a message naming one was mangled
    // on its way, and its framing is faulty (RFC 9112 §6.1). Refused on
    // both paths (hyper refuses it too), unless it has no body anyway.
    let bodiless = head || status == 204 || status == 304;
    if !http11 && fields.chunked.is_some() && !bodiless {
        return Err(Malformed("a transfer coding in an HTTP/1.0 response"));
    }
    let framing = if bodiless {
        Framing::Empty
    } else {
        match (fields.chunked, fields.length) {
            (Some(true), _) => Framing::Chunked,
            // Codings without `chunked`: the body ends with the connection.
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
        }
    };
    let head = FinalHead {
        buf,
        len,
        status,
        reason: response.reason.unwrap_or_default().as_bytes(),
        headers: response.headers,
        roles: &roles,
        listed: &fields.listed,
        drop_length: both,
        framing,
    };
    let made = make(Seen::Final(&head));
    Ok(Parsed::Final(
        Response {
            status,
            len,
            framing,
            // A server that framed its answer two ways is not trusted with
            // another request.
            reusable: http11 && fields.keep_alive && !both && framing_is_certain(framing),
        },
        made,
    ))
}

/// An interim answer's head for the client: its fields but the
/// hop-by-hop ones (and those its `Connection` lists) and any framing
/// field, which a 1xx cannot use (it has no body).
fn write_interim(status: u16, reason: &str, headers: &[httparse::Header<'_>], out: &mut Vec<u8>) {
    let listed: Vec<&[u8]> = headers
        .iter()
        .filter(|h| role_of(h.name.as_bytes()) == Role::Connection)
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for header in headers {
        let name = header.name.as_bytes();
        let named = listed.iter().any(|l| l.eq_ignore_ascii_case(name));
        if role_of(name) == Role::Plain && !named {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// What the framing and connection headers of a response say.
struct Fields<'b> {
    length: Option<u64>,
    /// `Transfer-Encoding` present; whether its last coding is `chunked`
    /// (and the only one: a coding after `chunked` is refused).
    chunked: Option<bool>,
    /// No `Connection: close`.
    keep_alive: bool,
    /// Names the `Connection` header lists: also hop-by-hop (rare).
    listed: Vec<&'b [u8]>,
}

/// Notes each header's role in `roles` and reads the framing and
/// connection headers.
fn classify<'b>(
    headers: &[httparse::Header<'b>],
    roles: &mut [Role; MAX_RESPONSE_HEADERS],
) -> Result<Fields<'b>, Malformed> {
    let mut fields = Fields {
        length: None,
        chunked: None,
        keep_alive: true,
        listed: Vec::new(),
    };
    for (header, role) in headers.iter().zip(roles.iter_mut()) {
        *role = role_of(header.name.as_bytes());
        match *role {
            Role::ContentLength => {
                let value = parse_length(header.value).ok_or(Malformed("bad Content-Length"))?;
                if fields.length.is_some_and(|earlier| earlier != value) {
                    return Err(Malformed("conflicting Content-Length"));
                }
                fields.length = Some(value);
            }
            Role::TransferEncoding => {
                // All `Transfer-Encoding` lines make one list of codings,
                // in which `chunked` may only come last, once (RFC 9112 §6.1).
                for coding in header.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if fields.chunked == Some(true) {
                        return Err(Malformed("a coding after chunked"));
                    }
                    if !crate::http::headers::is_token(coding) {
                        return Err(Malformed("a transfer coding that is not a token"));
                    }
                    fields.chunked = Some(spells(coding, b"chunked"));
                }
            }
            Role::Connection => {
                for token in header.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if spells(token, b"close") {
                        fields.keep_alive = false;
                    } else if !spells(token, b"keep-alive") && !is_end_to_end(token) {
                        fields.listed.push(token);
                    }
                }
            }
            Role::Plain | Role::HopByHop => {}
        }
    }
    Ok(fields)
}

/// A final response head as parsed.
pub struct FinalHead<'h, 'b> {
    /// The server's bytes; the head is their first `len`.
    buf: &'b [u8],
    len: usize,
    status: u16,
    reason: &'b [u8],
    headers: &'h [httparse::Header<'b>],
    roles: &'h [Role; MAX_RESPONSE_HEADERS],
    listed: &'h [&'b [u8]],
    /// Leave `Content-Length` out: `Transfer-Encoding` frames the body.
    drop_length: bool,
    framing: Framing,
}

impl<'b> FinalHead<'_, 'b> {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The fields a client on a wire that frames the body itself (HTTP/2)
    /// gets of the server's: those an HTTP/1.1 client gets (the hop-by-hop
    /// ones, those `Connection` lists, a `Content-Length` that a transfer
    /// coding overrode and those `edits` drop left out) but
    /// `Transfer-Encoding`.
    pub fn kept<'s>(
        &'s self,
        edits: &'s Edits<'_>,
    ) -> impl Iterator<Item = (&'b str, &'b [u8])> + 's {
        self.headers
            .iter()
            .zip(self.roles)
            .filter(|(header, role)| {
                **role != Role::TransferEncoding
                    && self.keeps(header.name.as_bytes(), **role, edits)
            })
            .map(|(header, _)| (header.name, header.value))
    }

    #[inline]
    fn keeps(&self, name: &[u8], role: Role, edits: &Edits<'_>) -> bool {
        let dropped = matches!(role, Role::Connection | Role::HopByHop)
            || (self.drop_length && role == Role::ContentLength)
            || self.listed.iter().any(|l| name.eq_ignore_ascii_case(l))
            || edits.drops(name);
        !dropped
    }

    /// Appends the head for an HTTP/1.1 client to `out`: hop-by-hop headers
    /// dropped, `additions` added, `Connection: close` where the body ends
    /// with the connection.
    fn write(&self, additions: &Additions<'_>, out: &mut Vec<u8>) {
        let framing = self.framing;
        let (buf, len, status) = (self.buf, self.len, self.status);
        out.extend_from_slice(b"HTTP/1.1 ");
        // httparse admits three digits only.
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(self.reason);
        out.extend_from_slice(b"\r\n");
        // Kept header lines go out as the server wrote them, each run of
        // adjacent kept lines in one copy (rewriting them one by one was a tenth
        // of a small request's instructions). A line ends where the next one
        // starts; the last, where the empty line does.
        let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
        let empty_line = if buf[..len].ends_with(b"\n\r\n") {
            len - 2
        } else {
            len - 1
        };
        let mut run = 0..0;
        for (i, (header, role)) in self.headers.iter().zip(self.roles).enumerate() {
            let name = header.name.as_bytes();
            if !self.keeps(name, *role, additions.edits) {
                continue;
            }
            let start = at(name);
            let end = self
                .headers
                .get(i + 1)
                .map_or(empty_line, |next| at(next.name.as_bytes()));
            if !buf[..end].ends_with(b"\r\n") {
                // A bare LF line ending: written anew, with CRLF.
                out.extend_from_slice(&buf[run.clone()]);
                run = end..end;
                push_header(out, name, header.value);
            } else if start == run.end {
                run.end = end;
            } else {
                out.extend_from_slice(&buf[run]);
                run = start..end;
            }
        }
        out.extend_from_slice(&buf[run]);
        for (name, value) in additions.edits.appended() {
            push_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
        if let Some(cookie) = additions.set_cookie {
            push_header(out, b"set-cookie", cookie.as_bytes());
        }
        if additions.close || framing == Framing::UntilClose {
            push_header(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends one `name: value` line of an HTTP/1.1 head.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether the end of a response is beyond doubt, so that its connection
/// may carry another request: not when the body ends with the connection,
/// nor when it has none whatever its head says (`HEAD`, 204, 304), since a
/// server that sends one anyway would have its bytes read as the next
/// client's response.
fn framing_is_certain(framing: Framing) -> bool {
    matches!(framing, Framing::Length(_) | Framing::Chunked)
}

/// Whether `Connection` may not remove a header of this name however it
/// lists it: the message's framing and its host are never hop-by-hop
/// (a server naming `Content-Length` there would otherwise leave the
/// client unable to tell where the body ends).
fn is_end_to_end(name: &[u8]) -> bool {
    name.is_empty()
        || spells(name, b"content-length")
        || spells(name, b"transfer-encoding")
        || spells(name, b"host")
}

/// A `Content-Length` value: digits only.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
