//! Property tests: whatever text a configuration holds, parsing answers a
//! configuration or errors with positions; it never panics, and YAML alias
//! bombs are refused rather than expanded.

use proptest::prelude::*;

const VALID: &str = "zookeeper:\n  connect: \"127.0.0.1:2181\"\nfrontends:\n  web:\n    bind: [\"127.0.0.1:8080\"]\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    access: { allow: [\"10.0.0.0/8\"] }\n    rate_limit: { requests_per_second: 10, burst: 5 }\n    routes:\n      - { host: \"*.example.com\", path_prefix: /v1, headers: { x-a: \"1\" }, backend: api }\n    default_backend: web\n    timeouts: { client_header: 5s }\nbackends:\n  web:\n    balance: header(x-user)\n    servers: [{ address: \"127.0.0.1:9000\", weight: 3 }]\n    health_check: { kind: http, path: /healthz, interval: 2s }\n  api:\n    zookeeper: { path: /services/api, format: serverset, endpoint: http }\n    tls: { ca: ca.pem, sni: api.internal }\n";

fn parse(text: &str) {
    let _ = crate::parse(text, "<fuzz>");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        parse(&text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "[a-z_:\\[\\]{}, \\n\\-\"'*&!#0-9./]{0,400}") {
        parse(&text);
    }

    #[test]
    fn a_valid_config_with_one_edit_never_panics(
        at in 0usize..VALID.len(),
        cut in 0usize..8,
        insert in "\\PC{0,8}",
    ) {
        let mut text = VALID.to_owned();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        parse(&text);
    }
}

#[test]
fn the_unedited_config_is_valid() {
    crate::parse(VALID, "<fuzz>").unwrap();
}

#[test]
fn a_yaml_alias_bomb_is_refused_not_expanded() {
    let mut text =
        String::from("a0: &a0 [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(",")));
    }
    let errors = crate::parse(&text, "<bomb>").expect_err("refused");
    assert!(!errors.errors.is_empty());
}
