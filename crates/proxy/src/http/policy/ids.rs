//! Request ids and W3C trace context (`request_id:` on a frontend): each
//! request carries an id, its own or one zkgate gives it, and belongs to a
//! trace, its own (a valid `traceparent` is passed on untouched) or one
//! zkgate starts with its own span.

use http::{HeaderName, HeaderValue};

use super::keys::RequestView;

/// `traceparent` (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A request's id and trace.
pub struct Ids {
    /// The request id, as sent to the server and returned to the client.
    pub request_id: HeaderValue,
    /// zkgate gave the id: the request had none.
    pub generated: bool,
    /// A `traceparent` zkgate started (the request had none, or an invalid one).
    pub started: Option<HeaderValue>,
    /// The trace id, 32 hex digits, for the access log.
    pub trace_id: [u8; 32],
}

impl Ids {
    /// The ids of `request`, whose id travels in `header`.
    pub fn of<R: RequestView>(request: &R, header: &HeaderName) -> Self {
        let own_id = request
            .values(header)
            .next()
            .filter(|id| !id.is_empty())
            .and_then(|id| HeaderValue::from_bytes(id).ok());
        let (request_id, generated) = match own_id {
            Some(id) => (id, false),
            None => (hex_value(&random_hex::<32>()), true),
        };
        let parent = request.values(&TRACEPARENT).next();
        match parent.and_then(trace_id_of) {
            Some(trace_id) => Ids {
                request_id,
                generated,
                started: None,
                trace_id,
            },
            None => {
                let trace_id = random_hex::<32>();
                let span_id = random_hex::<16>();
                let mut parent = Vec::with_capacity(55);
                parent.extend_from_slice(b"00-");
                parent.extend_from_slice(&trace_id);
                parent.push(b'-');
                parent.extend_from_slice(&span_id);
                parent.extend_from_slice(b"-01");
                Ids {
                    request_id,
                    generated,
                    started: Some(hex_value(&parent)),
                    trace_id,
                }
            }
        }
    }

    /// The trace id as text.
    pub fn trace_id(&self) -> &str {
        // Only hex digits are ever stored.
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }
}

/// The trace id of a valid `traceparent` (version 00 layout: version,
/// trace id, parent id, flags; lowercase hex, ids not all zero; a later
/// version may append fields after a `-`).
fn trace_id_of(value: &[u8]) -> Option<[u8; 32]> {
    let hex = |part: &[u8]| {
        part.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let zero = |part: &[u8]| part.iter().all(|&b| b == b'0');
    if value.len() < 55 || (value.len() > 55 && (value[..2] == *b"00" || value[55] != b'-')) {
        return None;
    }
    let (version, trace, parent, flags) =
        (&value[..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let valid = dashes
        && hex(version)
        && version != b"ff"
        && hex(trace)
        && !zero(trace)
        && hex(parent)
        && !zero(parent)
        && hex(flags);
    valid.then(|| trace.try_into().ok()).flatten()
}

fn random_hex<const N: usize>() -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let mut bits = fastrand::u64(..);
        for digit in chunk {
            *digit = DIGITS[(bits & 15) as usize];
            bits >>= 4;
        }
    }
    out
}

fn hex_value(bytes: &[u8]) -> HeaderValue {
    // Hex digits and dashes are always a valid value.
    HeaderValue::from_bytes(bytes).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().uri("/");
        for (n, v) in fields {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_an_id_kept_or_given() {
        let header = HeaderName::from_static("x-request-id");
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = Ids::of(
            &request(&[("traceparent", parent), ("x-request-id", "r1")]),
            &header,
        );
        assert!(ids.started.is_none() && !ids.generated);
        assert_eq!(ids.request_id, "r1");
        assert_eq!(ids.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");

        let ids = Ids::of(&request(&[]), &header);
        assert!(ids.generated && ids.request_id.len() == 32);
        let started = ids.started.unwrap();
        let started = started.to_str().unwrap();
        assert_eq!(trace_id_of(started.as_bytes()), Some(ids.trace_id));
        assert!(started.starts_with("00-") && started.ends_with("-01"));
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        let header = HeaderName::from_static("x-request-id");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            let ids = Ids::of(&request(&[("traceparent", bad)]), &header);
            assert!(ids.started.is_some(), "{bad}");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert!(Ids::of(&request(&[("traceparent", later)]), &header)
            .started
            .is_none());
    }
}
