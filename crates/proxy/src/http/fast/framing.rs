//! A server's response head, rewritten for the client as it is parsed, and
//! how its body is framed. Bodies pass through as they came (chunked stays
//! chunked): zkgate only needs to find their end (`super::chunked`).

use std::mem::MaybeUninit;

use super::ascii::spells;
use crate::http::policy::edits::Edits;

/// Most headers accepted in a response.
const MAX_RESPONSE_HEADERS: usize = 100;

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
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Scan::Partial),
        Err(_) => return Err(Malformed("unparsable response head")),
    };
    let status = response.code.unwrap_or_default();
    match status {
        101 => return Err(Malformed("switching protocols without an upgrade")),
        100..=199 => {
            write_interim(
                status,
                response.reason.unwrap_or_default(),
                response.headers,
                out,
            );
            return Ok(Scan::Interim(len));
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
    let head = ClientHead {
        buf,
        len,
        status,
        reason: response.reason.unwrap_or_default().as_bytes(),
        headers: response.headers,
        roles: &roles,
        listed: &fields.listed,
        drop_length: both,
    };
    head.write(additions, framing, out);
    Ok(Scan::Final(Response {
        status,
        len,
        framing,
        // A server that framed its answer two ways is not trusted with
        // another request.
        reusable: http11 && fields.keep_alive && !both && framing_is_certain(framing),
    }))
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

/// A final response head as parsed, to be written for the client.
struct ClientHead<'h, 'b> {
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
}

impl ClientHead<'_, '_> {
    /// Appends the head for the client to `out`: hop-by-hop headers
    /// dropped, `additions` added, `Connection: close` where the body ends
    /// with the connection.
    fn write(&self, additions: &Additions<'_>, framing: Framing, out: &mut Vec<u8>) {
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
            let dropped = matches!(role, Role::Connection | Role::HopByHop)
                || (self.drop_length && *role == Role::ContentLength)
                || self.listed.iter().any(|l| name.eq_ignore_ascii_case(l))
                || additions.edits.drops(name);
            if dropped {
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

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
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
mod tests {
    use super::*;

    #[test]
    fn connections_whose_framing_is_in_doubt_are_not_reused() {
        let (response, _) =
            head_for_client("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, PLAIN);
        assert!(!response.reusable, "after HEAD");
        for status in ["204 No Content", "304 Not Modified"] {
            let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            let (response, _) = head_for_client(&raw, false, PLAIN);
            assert!(!response.reusable, "{status}");
        }
        let (response, _) =
            head_for_client("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, PLAIN);
        assert!(response.reusable);
    }

    #[test]
    fn connection_never_drops_the_framing_or_the_host() {
        let (response, head) = head_for_client(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nHost: h\r\nX-Drop: 1\r\nConnection: Content-Length, HOST, x-drop\r\n\r\n",
            false,
            PLAIN,
        );
        assert_eq!(response.framing, Framing::Length(5));
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nHost: h\r\n\r\n"
        );
    }

    /// The response-side matcher agrees with the one list of hop-by-hop
    /// headers: each is dropped from what the client gets, except the
    /// framing headers, which stay because the body passes unchanged.
    #[test]
    fn hop_by_hop_headers_are_the_same_list_as_on_hyper_path() {
        for name in crate::http::headers::HOP_BY_HOP {
            let role = role_of(name.as_str().to_uppercase().as_bytes());
            let expected = match name.as_str() {
                "connection" => Role::Connection,
                "transfer-encoding" => Role::TransferEncoding,
                _ => Role::HopByHop,
            };
            assert!(role == expected, "{name}");
        }
    }

    fn head_for_client(raw: &str, head: bool, additions: Additions<'_>) -> (Response, String) {
        let mut out = Vec::new();
        match scan(raw.as_bytes(), head, &additions, &mut out) {
            Ok(Scan::Final(response)) => (response, String::from_utf8(out).unwrap()),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    const PLAIN: Additions<'static> = Additions {
        set_cookie: None,
        close: false,
        edits: &Edits::NONE,
    };

    #[test]
    fn hop_by_hop_headers_go_and_framing_stays() {
        let (response, out) = head_for_client(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\nServer: s\r\n\r\nhello",
            false,
            PLAIN,
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.framing, Framing::Length(5));
        assert!(response.reusable);
        assert_eq!(
            response.len,
            out.len()
                + "Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n"
                    .len()
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\n"
        );
    }

    #[test]
    fn kept_lines_are_copied_and_bare_line_feeds_become_crlf() {
        let (_, out) = head_for_client(
            "HTTP/1.1 200 OK\r\nA: 1 \r\nKeep-Alive: x\r\nB: 2\nC: 3\r\nContent-Length: 0\n\n",
            false,
            PLAIN,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nA: 1 \r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n"
        );
        let (_, out) = head_for_client(
            "HTTP/1.1 200 OK\nA: 1\nContent-Length: 0\n\r\n",
            false,
            PLAIN,
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |raw: &str, head: bool| head_for_client(raw, head, PLAIN).0.framing;
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Framing::UntilClose
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", false),
            Framing::UntilClose
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\n\r\n", false),
            Framing::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Framing::Empty
        );
        let (response, out) = head_for_client("HTTP/1.1 200 OK\r\n\r\n", false, PLAIN);
        assert!(
            !response.reusable,
            "a close-delimited body ends the connection"
        );
        assert!(out.ends_with("connection: close\r\n\r\n"));
        let (response, _) =
            head_for_client("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, PLAIN);
        assert!(!response.reusable);
        let (response, _) = head_for_client(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            false,
            PLAIN,
        );
        assert!(!response.reusable);
    }

    #[test]
    fn additions_are_appended() {
        let (_, out) = head_for_client(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
            Additions {
                set_cookie: Some("s=1; Path=/"),
                close: true,
                edits: &Edits::NONE,
            },
        );
        assert_eq!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nset-cookie: s=1; Path=/\r\nconnection: close\r\n\r\n");
    }

    #[test]
    fn interim_responses_are_passed_on_and_smuggling_shapes_refused() {
        let mut out = Vec::new();
        assert!(matches!(
            scan(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200",
                false,
                &PLAIN,
                &mut out
            ),
            Ok(Scan::Interim(40))
        ));
        assert_eq!(out, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
        out.clear();
        // Hop-by-hop and framing fields stay behind.
        let raw = "HTTP/1.1 100 Continue\r\nConnection: x-a\r\nX-A: 1\r\nContent-Length: 4\r\nKeep-Alive: 5\r\nX-B: 2\r\n\r\n";
        assert!(matches!(
            scan(raw.as_bytes(), false, &PLAIN, &mut out),
            Ok(Scan::Interim(_))
        ));
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\nX-B: 2\r\n\r\n");
        out.clear();
        assert!(matches!(
            scan(b"HTTP/1.1 200 OK\r\nContent-Le", false, &PLAIN, &mut out),
            Ok(Scan::Partial)
        ));
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                scan(raw.as_bytes(), false, &PLAIN, &mut out).is_err(),
                "{raw:?}"
            );
        }
        assert!(
            out.is_empty(),
            "nothing is written for refused or unfinished heads"
        );
    }

    #[test]
    fn transfer_encoding_wins_over_content_length_which_is_dropped() {
        let (response, head) = head_for_client(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n",
            false,
            PLAIN,
        );
        assert_eq!(response.framing, Framing::Chunked);
        assert!(
            !response.reusable,
            "a server framing two ways is not trusted again"
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        // HTTP/1.0 with Transfer-Encoding: faulty framing, refused.
        let mut out = Vec::new();
        let raw = b"HTTP/1.0 200 Ok\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(scan(raw, false, &PLAIN, &mut out).is_err());
    }

    proptest::proptest! {
        #[test]
        fn heads_for_clients_keep_every_end_to_end_header_in_order(
            headers in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("Keep-Alive".to_owned()),
                        proptest::strategy::Just("upgrade".to_owned()),
                        "[A-Za-z][A-Za-z0-9-]{0,12}",
                    ],
                    "[!-~]([ -~]{0,20}[!-~])?",
                    proptest::prelude::any::<bool>(),
                ),
                0..12,
            ),
        ) {
            let mut raw = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
            let mut expected = raw.clone();
            for (name, value, bare_lf) in &headers {
                raw.push_str(&format!("{name}: {value}{}", if *bare_lf { "\n" } else { "\r\n" }));
                let dropped = ["keep-alive", "te", "trailer", "upgrade", "proxy-connection"]
                    .contains(&name.to_ascii_lowercase().as_str());
                if !dropped {
                    expected.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            raw.push_str("\r\n");
            proptest::prop_assume!(!headers.iter().any(|(name, _, _)| {
                let name = name.to_ascii_lowercase();
                name == "transfer-encoding" || name == "content-length" || name == "connection"
            }));
            expected.push_str("\r\n");
            let mut out = Vec::new();
            let scanned = scan(raw.as_bytes(), false, &PLAIN, &mut out);
            proptest::prop_assert!(matches!(scanned, Ok(Scan::Final(_))), "{:?}", scanned);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }

        #[test]
        fn any_bytes_are_refused_or_scanned(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            let _ = scan(&bytes, false, &PLAIN, &mut out);
        }
    }
}
