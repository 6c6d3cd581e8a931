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
pub fn field(name: &[u8], value: &[u8], block: &mut Vec<u8>) {
    match static_name(name) {
        Some(index) => integer(index, 4, 0x00, block),
        None => {
            block.push(0x00);
            string(name, block);
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
fn static_name(name: &[u8]) -> Option<usize> {
    let index = match name {
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
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
        field(b"content-type", b"text/plain", &mut block);
        field(b"www-authenticate", b"Basic", &mut block);
        field(b"x-custom", long.as_bytes(), &mut block);
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
