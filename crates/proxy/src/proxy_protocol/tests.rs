use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn v1_lines_parse_for_both_families_and_unknown() {
    let (header, length) = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /")
        .unwrap()
        .unwrap();
    assert_eq!(length, 45);
    assert_eq!(
        header,
        Header::Proxied {
            source: addr("192.0.2.1:56324"),
            destination: addr("198.51.100.2:443")
        }
    );
    let (header, _) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        header,
        Header::Proxied {
            source: addr("[2001:db8::1]:1"),
            destination: addr("[2001:db8::2]:2")
        }
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0,
        Header::Local
    );
}

#[test]
fn incomplete_headers_ask_for_more_and_garbage_is_refused() {
    assert_eq!(parse(b"PROXY TCP4 192.0.2.1"), Ok(None));
    assert_eq!(parse(b"\r\n\r\n\0\r\nQU"), Ok(None));
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 70000\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c",
    ] {
        let result = parse(bad);
        assert!(
            result.is_err() || bad.len() < 16 && result == Ok(None),
            "{:?}: {result:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
    assert!(parse(&long).is_err());
}

#[test]
fn v2_headers_parse_with_tlvs_skipped() {
    let mut header = encode(2, addr("192.0.2.1:56324"), addr("198.51.100.2:443"));
    // Declare and append a TLV (type 0x04 NOOP, 3 bytes) that must be skipped.
    let length = u16::from_be_bytes([header[14], header[15]]) + 6;
    header[14..16].copy_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&[0x04, 0x00, 0x03, 1, 2, 3]);
    header.extend_from_slice(b"GET");
    let (parsed, consumed) = parse(&header).unwrap().unwrap();
    assert_eq!(consumed, header.len() - 3);
    assert_eq!(
        parsed,
        Header::Proxied {
            source: addr("192.0.2.1:56324"),
            destination: addr("198.51.100.2:443")
        }
    );
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(parse(&local).unwrap().unwrap(), (Header::Local, 16));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_never_claim_more_than_given(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some((_, consumed))) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn anything_after_a_signature_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300), v2 in any::<bool>()) {
        let mut bytes = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        if let Ok(Some((_, consumed))) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn encoded_headers_parse_back(a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), c in any::<[u8; 16]>(), d in any::<[u8; 16]>(), ports in any::<(u16, u16)>(), v2 in any::<bool>(), six in any::<bool>()) {
        let (source, destination) = if six {
            (SocketAddr::new(std::net::Ipv6Addr::from(c).into(), ports.0), SocketAddr::new(std::net::Ipv6Addr::from(d).into(), ports.1))
        } else {
            (SocketAddr::new(std::net::Ipv4Addr::from(a).into(), ports.0), SocketAddr::new(std::net::Ipv4Addr::from(b).into(), ports.1))
        };
        let bytes = encode(if v2 { 2 } else { 1 }, source, destination);
        let (header, consumed) = parse(&bytes).unwrap().unwrap();
        prop_assert_eq!(consumed, bytes.len());
        prop_assert_eq!(header, Header::Proxied { source, destination });
    }
}
