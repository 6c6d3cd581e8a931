//! Which answers are compressed, decided once for every wire adapter: the
//! coding a request accepts (RFC 9110 §12.5.3, with q-values) among the
//! frontend's, and whether a server's answer may be compressed at all.

use http::{header, HeaderMap, StatusCode};
use zkgate_config::{Algorithm, Compression};

use super::keys::RequestView;

/// The coding for answers to `request`: the frontend's coding the client
/// gives the highest q-value (explicitly or through `*`), ties going to the
/// frontend's order; `None` if it accepts none, or asks for a range (a
/// range of a compressed answer is not the range it asked for).
pub fn negotiate<R: RequestView>(config: &Compression, request: &R) -> Option<Algorithm> {
    if request.values(&header::RANGE).next().is_some() {
        return None;
    }
    let mut best: Option<(Algorithm, u16)> = None;
    for &algorithm in &config.algorithms {
        let q = accepted_q(request, algorithm.token());
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((algorithm, q));
        }
    }
    best.map(|(algorithm, _)| algorithm)
}

/// The q-value (in thousandths) a request's `Accept-Encoding` gives
/// `token`: its own entry, else `*`'s, else 0.
fn accepted_q<R: RequestView>(request: &R, token: &str) -> u16 {
    let mut star = None;
    let entries = request
        .values(&header::ACCEPT_ENCODING)
        .flat_map(|value| value.split(|&b| b == b','));
    for entry in entries {
        let mut parts = entry.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        let q = parts
            .find_map(|param| {
                let param = param.trim_ascii();
                let value = param
                    .strip_prefix(b"q=")
                    .or_else(|| param.strip_prefix(b"Q="))?;
                Some(qvalue(value))
            })
            .unwrap_or(1000);
        if coding.eq_ignore_ascii_case(token.as_bytes()) {
            return q;
        }
        if coding == b"*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0)
}

/// A q-value (`0`, `0.5`, `1.000`) in thousandths; malformed reads as 0.
fn qvalue(text: &[u8]) -> u16 {
    let text = std::str::from_utf8(text).unwrap_or_default();
    match text.parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

/// Whether a server's answer (to a `HEAD` if `head`) may be compressed:
/// one with a body, not encoded yet, of a listed type, not stated smaller
/// than `min_size`, not a range, not `no-transform`.
pub fn compressible(
    config: &Compression,
    head: bool,
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    let bodiless = head || status.is_informational() || matches!(status.as_u16(), 204 | 206 | 304);
    if bodiless || headers.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    let no_transform = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"));
    let too_small = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length < config.min_size);
    let listed = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|media| type_listed(&config.types, media));
    listed && !encoded && !no_transform && !too_small
}

/// Whether `media` (a `Content-Type`, parameters and all) is listed: as
/// itself, or by its top-level type's `type/*`.
fn type_listed(types: &[String], media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or_default().trim();
    let Some((top, _)) = essence.split_once('/') else {
        return false;
    };
    types.iter().any(|listed| match listed.strip_suffix("/*") {
        Some(listed_top) => listed_top.eq_ignore_ascii_case(top),
        None => listed.eq_ignore_ascii_case(essence),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Compression {
        Compression {
            algorithms: vec![Algorithm::Zstd, Algorithm::Br, Algorithm::Gzip],
            types: vec!["text/*".into(), "application/json".into()],
            min_size: 1024,
            gzip_level: 6,
            br_level: 4,
            zstd_level: 3,
        }
    }

    fn accepting(value: &str) -> Option<&'static str> {
        let request = http::Request::get("/")
            .header("accept-encoding", value)
            .body(())
            .unwrap();
        negotiate(&config(), &request).map(Algorithm::token)
    }

    #[test]
    fn the_highest_q_wins_and_ties_go_to_the_frontends_order() {
        assert_eq!(accepting("gzip, deflate, br, zstd"), Some("zstd"));
        assert_eq!(accepting("gzip, br"), Some("br"));
        assert_eq!(accepting("gzip;q=1.0, br;q=0.5"), Some("gzip"));
        assert_eq!(accepting("br;q=0, gzip;q=0.1"), Some("gzip"));
        assert_eq!(accepting("*;q=0.5, zstd;q=0"), Some("br"));
        assert_eq!(accepting("GZIP ; Q=0.3"), Some("gzip"));
        assert_eq!(accepting("identity"), None);
        assert_eq!(accepting("gzip;q=0"), None);
        assert_eq!(accepting("gzip;q=2"), None);
        assert_eq!(accepting(""), None);
        let ranged = http::Request::get("/")
            .header("accept-encoding", "gzip")
            .header("range", "bytes=0-9")
            .body(())
            .unwrap();
        assert_eq!(negotiate(&config(), &ranged), None);
    }

    #[test]
    fn only_listed_types_with_a_body_not_encoded_and_not_small_are_compressible() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (n, v) in pairs {
                map.append(*n, http::HeaderValue::from_static(v));
            }
            map
        };
        let ok = StatusCode::OK;
        let html = headers(&[("content-type", "text/html; charset=utf-8")]);
        assert!(compressible(&config(), false, ok, &html));
        assert!(compressible(&config(), false, StatusCode::NOT_FOUND, &html));
        assert!(!compressible(&config(), true, ok, &html));
        assert!(!compressible(
            &config(),
            false,
            StatusCode::NO_CONTENT,
            &html
        ));
        assert!(!compressible(
            &config(),
            false,
            StatusCode::NOT_MODIFIED,
            &html
        ));
        assert!(!compressible(
            &config(),
            false,
            StatusCode::PARTIAL_CONTENT,
            &html
        ));
        let cases = [
            (vec![("content-type", "application/json")], true),
            (vec![("content-type", "application/jsonx")], false),
            (vec![("content-type", "image/png")], false),
            (vec![], false),
            (
                vec![("content-type", "text/css"), ("content-length", "1023")],
                false,
            ),
            (
                vec![("content-type", "text/css"), ("content-length", "1024")],
                true,
            ),
            (
                vec![("content-type", "text/css"), ("content-encoding", "gzip")],
                false,
            ),
            (
                vec![
                    ("content-type", "text/css"),
                    ("content-encoding", "identity"),
                ],
                true,
            ),
            (
                vec![
                    ("content-type", "text/css"),
                    ("cache-control", "public, No-Transform"),
                ],
                false,
            ),
            (
                vec![
                    ("content-type", "text/css"),
                    ("content-range", "bytes 0-9/99"),
                ],
                false,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                compressible(&config(), false, ok, &headers(&pairs)),
                expected,
                "{pairs:?}"
            );
        }
    }
}
