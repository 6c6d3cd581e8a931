//! HPACK for answers (RFC 7541), without the dynamic table: each field is
//! its static-table entry where one matches whole (`:status: 200`), else
//! a literal that is not indexed, its name by static index where the table
//! has it. It costs no search and no table per connection; answers grow by
//! a few bytes where a table would have repeated a field, as HAProxy's
//! encoder does. Requests are decoded by `loona-hpack`, which keeps the
//! client's table.

/// Appends a dynamic table size update (§6.3): the client lowered its
/// table, and the next header block must say so first.
pub fn table_size_update(size: usize, block: &mut Vec<u8>) {
    integer(size, 5, 0x20, block);
}

/// Appends `:status`.
pub fn status(code: u16, block: &mut Vec<u8>) {
    let indexed = match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if indexed > 0 {
        block.push(0x80 | indexed);
        return;
    }
    // Literal without indexing, name `:status` (index 8).
    integer(8, 4, 0x00, block);
    string(&itoa_3(code), block);
}

/// Appends one field as a literal without indexing (§6.2.2).
pub fn field(name: &str, value: &[u8], block: &mut Vec<u8>) {
    match static_name(name) {
        Some(index) => integer(index, 4, 0x00, block),
        None => {
            block.push(0x00);
            string(name.as_bytes(), block);
        }
    }
    string(value, block);
}

fn itoa_3(code: u16) -> [u8; 3] {
    let code = code.min(999);
    [
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]
}

/// A string literal, not Huffman-coded (§5.2).
fn string(bytes: &[u8], block: &mut Vec<u8>) {
    integer(bytes.len(), 7, 0x00, block);
    block.extend_from_slice(bytes);
}

/// An integer with an N-bit prefix after `leading` bits (§5.1).
fn integer(mut value: usize, prefix: u8, leading: u8, block: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        block.push(leading | value as u8);
        return;
    }
    block.push(leading | max as u8);
    value -= max;
    while value >= 128 {
        block.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    block.push(value as u8);
}

/// A field name's index in the static table (Appendix A).
fn static_name(name: &str) -> Option<usize> {
    let index = match name {
        "accept-charset" => 15,
        "accept-encoding" => 16,
        "accept-language" => 17,
        "accept-ranges" => 18,
        "accept" => 19,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "authorization" => 23,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "cookie" => 32,
        "date" => 33,
        "etag" => 34,
        "expect" => 35,
        "expires" => 36,
        "from" => 37,
        "host" => 38,
        "if-match" => 39,
        "if-modified-since" => 40,
        "if-none-match" => 41,
        "if-range" => 42,
        "if-unmodified-since" => 43,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "max-forwards" => 47,
        "proxy-authenticate" => 48,
        "proxy-authorization" => 49,
        "range" => 50,
        "referer" => 51,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "transfer-encoding" => 57,
        "user-agent" => 58,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a real decoder makes of a block.
    fn decoded(block: &[u8]) -> Vec<(String, String)> {
        let mut decoder = loona_hpack::Decoder::new();
        decoder
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_decoder_reads_back_every_kind_of_field() {
        let long = "v".repeat(300);
        let mut block = Vec::new();
        table_size_update(0, &mut block);
        status(200, &mut block);
        field("content-type", b"text/plain", &mut block);
        field("www-authenticate", b"Basic", &mut block);
        field("x-custom", long.as_bytes(), &mut block);
        let mut other = Vec::new();
        status(418, &mut other);
        block.extend(other);
        assert_eq!(
            decoded(&block),
            [
                (":status", "200"),
                ("content-type", "text/plain"),
                ("www-authenticate", "Basic"),
                ("x-custom", long.as_str()),
                (":status", "418"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn common_statuses_take_one_byte() {
        for (code, byte) in [(200, 0x88), (304, 0x8b), (500, 0x8e)] {
            let mut block = Vec::new();
            status(code, &mut block);
            assert_eq!(block, [byte]);
        }
    }
}
