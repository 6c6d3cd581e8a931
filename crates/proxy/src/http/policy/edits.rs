//! The header fields changed on a request or a response on its way through
//! zkgate, decided once in the request core: a route's `request_headers` /
//! `response_headers` rules, then zkgate's own fields (the request id, a
//! started `traceparent`). Every wire adapter carries the same edits out,
//! on raw bytes (`drops`, `appended`) or on a `HeaderMap` (`apply`).

use http::{HeaderMap, HeaderName, HeaderValue};
use zkgate_config::HeaderRules;

/// The edits of one message. Without rules or own fields, they cost one test.
#[derive(Default, Clone)]
pub struct Edits<'t> {
    rules: Option<&'t HeaderRules>,
    /// Fields zkgate sets itself, replacing any of the same name (empty,
    /// without an allocation, unless the frontend sets request ids).
    own: Vec<(&'t HeaderName, HeaderValue)>,
}

impl<'t> Edits<'t> {
    /// No edits.
    #[cfg(test)]
    pub const NONE: Edits<'static> = Edits {
        rules: None,
        own: Vec::new(),
    };

    /// A route's rules, if it has any for this message.
    pub fn of(rules: Option<&'t HeaderRules>) -> Self {
        Edits {
            rules: rules.filter(|rules| !rules.is_empty()),
            own: Vec::new(),
        }
    }

    /// Sets `name` to `value` after the rules.
    pub fn set_own(&mut self, name: &'t HeaderName, value: HeaderValue) {
        self.own.push((name, value));
    }

    /// Whether nothing changes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rules.is_none() && self.own.is_empty()
    }

    /// Whether a field called `name` (any case) that the message carries
    /// is left out: removed, or replaced by a set one.
    pub fn drops(&self, name: &[u8]) -> bool {
        if self.is_empty() {
            return false;
        }
        let named = |n: &HeaderName| name.eq_ignore_ascii_case(n.as_str().as_bytes());
        let by_rules = self.rules.is_some_and(|rules| {
            rules.remove.iter().any(named) || rules.set.iter().any(|(n, _)| named(n))
        });
        by_rules || self.own.iter().any(|(n, _)| named(n))
    }

    /// The fields added after the message's own (those kept), in order.
    pub fn appended(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let rules = self
            .rules
            .into_iter()
            .flat_map(|rules| rules.set.iter().chain(&rules.add));
        let own = self.own.iter().map(|(n, v)| (*n, v));
        rules.map(|(n, v)| (n, v)).chain(own)
    }

    /// Carries the edits out on `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.is_empty() {
            return;
        }
        if let Some(rules) = self.rules {
            for name in rules.remove.iter().chain(rules.set.iter().map(|(n, _)| n)) {
                headers.remove(name);
            }
        }
        for (name, _) in &self.own {
            headers.remove(*name);
        }
        for (name, value) in self.appended() {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HeaderRules {
        let pair = |n: &'static str, v: &'static str| {
            (HeaderName::from_static(n), HeaderValue::from_static(v))
        };
        HeaderRules {
            set: vec![pair("x-env", "prod")],
            add: vec![pair("x-via", "edge")],
            remove: vec![HeaderName::from_static("x-debug")],
        }
    }

    #[test]
    fn raw_and_map_edits_agree() {
        let rules = rules();
        let id = HeaderName::from_static("x-request-id");
        let mut edits = Edits::of(Some(&rules));
        edits.set_own(&id, HeaderValue::from_static("abc"));
        // The raw view: which of the message's fields stay, what follows them.
        let fields = [
            ("X-Env", "dev"),
            ("x-via", "client"),
            ("X-DEBUG", "1"),
            ("accept", "*/*"),
            ("x-request-id", "forged"),
        ];
        let mut raw: Vec<(String, String)> = fields
            .iter()
            .filter(|(n, _)| !edits.drops(n.as_bytes()))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        raw.extend(
            edits
                .appended()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())),
        );
        // The map view.
        let mut map = HeaderMap::new();
        for (n, v) in fields {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        edits.apply(&mut map);
        let mut from_map: Vec<(String, String)> = map
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        raw.sort();
        from_map.sort();
        assert_eq!(raw, from_map);
        assert_eq!(
            raw,
            [
                ("accept", "*/*"),
                ("x-env", "prod"),
                ("x-request-id", "abc"),
                ("x-via", "client"),
                ("x-via", "edge"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn no_rules_change_nothing() {
        let none = HeaderRules::default();
        let edits = Edits::of(Some(&none));
        assert!(edits.is_empty() && !edits.drops(b"x-anything"));
        assert_eq!(edits.appended().count(), 0);
    }
}
