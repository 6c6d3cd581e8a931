//! `framing`'s tests: what a server's response head becomes.

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
            + "Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n".len()
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
