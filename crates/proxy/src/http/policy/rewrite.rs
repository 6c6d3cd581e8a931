//! A route's `rewrite.path_prefix`: the matched prefix of the request's
//! target replaced, the rest (and the query) kept. One function for every
//! wire adapter.

/// Appends `target` to `out` with its leading `from` replaced by `to`. A
/// target that does not start with `from` (the route matched it, so only
/// if the adapter changed the target since) is appended as it is.
pub fn rewrite_target(target: &[u8], from: &str, to: &str, out: &mut Vec<u8>) {
    match target.strip_prefix(from.as_bytes()) {
        Some(rest) => {
            out.extend_from_slice(to.as_bytes());
            out.extend_from_slice(rest);
        }
        None => out.extend_from_slice(target),
    }
}

#[cfg(test)]
mod tests {
    fn rewritten(target: &str, from: &str, to: &str) -> String {
        let mut out = Vec::new();
        super::rewrite_target(target.as_bytes(), from, to, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_prefix_is_replaced_and_the_query_kept() {
        assert_eq!(
            rewritten("/api/users?id=1", "/api", "/v2"),
            "/v2/users?id=1"
        );
        assert_eq!(rewritten("/api", "/api", "/"), "/");
        assert_eq!(rewritten("/api/x", "/api/", "/"), "/x");
        // Prefixes match bytes, as routes do: `/apix` is under `/api`.
        assert_eq!(rewritten("/apix", "/api", "/v2"), "/v2x");
        assert_eq!(rewritten("/other", "/api", "/v2"), "/other");
    }
}
