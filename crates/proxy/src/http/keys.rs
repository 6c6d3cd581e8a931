//! The request key a hashing backend places a request by.

use std::net::IpAddr;

use http::{header, HeaderMap, Request};
use zkgate_config::Balance;
use zkgate_routing::balance::hash::{client_key, hash64, SEED};

/// The key hash for `balance`, or `None` when it does not hash or the request
/// has no such key (then the backend falls back to round robin).
pub fn hash_key<B>(balance: &Balance, request: &Request<B>, client: IpAddr) -> Option<u64> {
    let bytes = match balance {
        Balance::Source => return Some(client_key(client)),
        Balance::Uri => request.uri().path().as_bytes(),
        Balance::Header(name) => request.headers().get(name)?.as_bytes(),
        Balance::Cookie(name) => cookie(request.headers(), name)?,
        _ => return None,
    };
    Some(hash64(bytes, SEED))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; session=abc; sessionx=no".parse().unwrap(),
        );
        headers.append(header::COOKIE, "other=2".parse().unwrap());
        assert_eq!(cookie(&headers, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie(&headers, "other"), Some(&b"2"[..]));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn keys_follow_the_algorithm_and_are_absent_without_the_field() {
        let request = Request::get("/a/b?q=1")
            .header("x-user", "u1")
            .body(())
            .unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            hash_key(&Balance::Uri, &request, ip),
            Some(hash64(b"/a/b", SEED))
        );
        assert_eq!(
            hash_key(
                &Balance::Header(http::HeaderName::from_static("x-user")),
                &request,
                ip
            ),
            Some(hash64(b"u1", SEED))
        );
        assert_eq!(hash_key(&Balance::Cookie("s".into()), &request, ip), None);
        assert_eq!(hash_key(&Balance::RoundRobin, &request, ip), None);
        assert_eq!(
            hash_key(&Balance::Source, &request, ip),
            hash_key(
                &Balance::Source,
                &request,
                "::ffff:10.0.0.1".parse().unwrap()
            )
        );
    }
}
