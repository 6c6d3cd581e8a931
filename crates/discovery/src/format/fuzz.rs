//! Property tests: whatever a znode holds, every decoder answers a member or
//! an error; it never panics.

use proptest::prelude::*;
use zkgate_config::MemberFormat;

use super::{decode, sniff};

const FORMATS: [MemberFormat; 4] = [
    MemberFormat::Zkgate,
    MemberFormat::Serverset,
    MemberFormat::Curator,
    MemberFormat::Nerve,
];

fn decode_everywhere(name: &str, data: &[u8]) {
    for format in FORMATS {
        let _ = decode(format, None, name, data);
        let _ = decode(format, Some("http"), name, data);
    }
    let _ = sniff(name, data);
}

/// JSON values of the shapes the formats expect, and wrong ones.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() {
            n.to_string()
        } else {
            "1e999".to_owned()
        }),
        "[ -~]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("\"10.0.0.1:8080\"".to_owned()),
        Just("\"[::1]:80\"".to_owned()),
        Just("65536".to_owned()),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let keys = prop_oneof![
            Just("address"),
            Just("host"),
            Just("port"),
            Just("weight"),
            Just("state"),
            Just("serviceEndpoint"),
            Just("additionalEndpoints"),
            Just("status"),
            Just("name"),
            Just("id"),
            Just("address"),
            Just("sslPort"),
            Just("payload"),
            Just("labels"),
            Just("zone"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((keys, inner), 0..6).prop_map(|fields| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(name in "\\PC{0,40}", data in prop::collection::vec(any::<u8>(), 0..1024)) {
        decode_everywhere(&name, &data);
    }

    #[test]
    fn json_shaped_members_never_panic(name in "[a-z0-9_:.\\-\\[\\]]{0,40}", json in json_value()) {
        decode_everywhere(&name, json.as_bytes());
    }

    #[test]
    fn nerve_style_names_never_panic(
        len in 0usize..64,
        payload in "[A-Za-z0-9+/=_\\-]{0,48}",
        seq in "[0-9]{0,12}",
        data in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        decode_everywhere(&format!("base64_{len}_{payload}_{seq}"), &data);
    }
}
