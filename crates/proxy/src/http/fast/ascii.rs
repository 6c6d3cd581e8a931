//! Case-insensitive comparison of a parsed head's names and tokens with the
//! few lowercase words the fast path looks for on every request.

/// Whether `bytes` spell `lower` (lowercase letters and `-`) in any case.
///
/// Setting bit 0x20 lowercases an ASCII letter; the only other byte it turns
/// into a letter or `-` is CR (into `-`), and a parsed head's names and
/// values hold no CR. Unlike `eq_ignore_ascii_case` this has no branch per
/// byte, which showed in profiles: every response compares a few names.
#[inline]
pub fn spells(bytes: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'));
    bytes.len() == lower.len()
        && bytes
            .iter()
            .zip(lower)
            .fold(0, |differ, (&b, &l)| differ | ((b | 0x20) ^ l))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_eq_ignore_ascii_case_for_every_byte_but_cr() {
        for word in [&b"connection"[..], b"keep-alive", b"te", b"x-forwarded-for"] {
            for at in 0..word.len() {
                for byte in (0..=255u8).filter(|&b| b != b'\r') {
                    let mut probe = word.to_vec();
                    probe[at] = byte;
                    assert_eq!(
                        spells(&probe, word),
                        probe.eq_ignore_ascii_case(word),
                        "{} vs {}",
                        probe.escape_ascii(),
                        word.escape_ascii()
                    );
                }
            }
            assert!(spells(&word.to_ascii_uppercase(), word));
            assert!(!spells(&word[1..], word));
        }
    }
}
