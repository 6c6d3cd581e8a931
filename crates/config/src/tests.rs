use super::*;

const VALID: &str = r#"
admin:
  bind: 127.0.0.1:9901
defaults:
  timeouts: { connect: 250ms, server: 5s }
  retries: 1
frontends:
  web:
    bind: ["127.0.0.1:8080"]
    routes:
      - { host: api.example.com, path_prefix: /v1, backend: api }
      - { host: "*.example.com", headers: { x-canary: "1" }, backend: web }
    default_backend: web
    timeouts: { client_idle: 5s }
  db:
    bind: ["127.0.0.1:5432"]
    mode: tcp
    default_backend: pg
backends:
  web:
    servers:
      - { address: "127.0.0.1:9001", weight: 5 }
      - { address: "localhost:9002", state: drain }
  api:
    servers: [{ address: "[::1]:9003", weight: 0 }]
    timeouts: { server: 1s }
  pg:
    mode: tcp
    servers: [{ address: "127.0.0.1:15432" }]
"#;

fn errors_of(text: &str) -> Vec<String> {
    match parse(text, "zkgate.yaml") {
        Ok(_) => panic!("expected errors"),
        Err(errs) => errs.to_string().lines().map(str::to_owned).collect(),
    }
}

#[test]
fn a_valid_document_resolves_every_default() {
    let config = parse(VALID, "t").unwrap();
    assert_eq!(config.admin.bind, "127.0.0.1:9901".parse().unwrap());
    let web = &config.frontends[1];
    assert_eq!(web.name, "web");
    assert_eq!(web.timeouts.connect, std::time::Duration::from_millis(250));
    assert_eq!(web.timeouts.client_idle, std::time::Duration::from_secs(5));
    assert_eq!(web.timeouts.client_header, defaults::CLIENT_HEADER);
    assert!(web.forwarded_headers);
    assert_eq!(web.routes.len(), 2);
    assert_eq!(
        web.routes[1].host,
        Some(HostPattern::Suffix(".example.com".into()))
    );
    let db = &config.frontends[0];
    assert_eq!(db.mode, Mode::Tcp);
    assert!(!db.forwarded_headers);
    let api = config.backend("api").unwrap();
    assert_eq!(api.timeouts.server, std::time::Duration::from_secs(1));
    assert_eq!(api.retries, 1);
    assert_eq!(api.servers[0].address.host, "::1");
    let web_backend = config.backend("web").unwrap();
    assert_eq!(web_backend.servers[1].state, AdminState::Drain);
    assert_eq!(web_backend.servers[1].weight, 1);
}

#[test]
fn an_empty_document_is_a_valid_configuration_with_nothing_to_serve() {
    let config = parse("", "t").unwrap();
    assert!(config.frontends.is_empty());
    assert_eq!(config.admin.bind.to_string(), defaults::ADMIN_BIND);
}

#[test]
fn unknown_field_is_reported_with_its_position_and_the_expected_names() {
    let errs = errors_of("backends:\n  web:\n    servers: []\n    balanse: roundrobin\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("zkgate.yaml:4:5: backends.web"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("unknown field `balanse`"), "{}", errs[0]);
    assert!(errs[0].contains("balance"), "{}", errs[0]);
}

#[test]
fn bad_duration_names_the_field_and_the_expected_form() {
    let errs = errors_of("defaults:\n  timeouts:\n    connect: 3 parsecs\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("zkgate.yaml:3:5: defaults.timeouts.connect"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("like 250ms, 10s or 1h"), "{}", errs[0]);
}

#[test]
fn durations_too_long_for_a_deadline_are_refused_where_written() {
    for field in [
        "client_header",
        "client_idle",
        "server",
        "connect",
        "tunnel",
    ] {
        let yaml = format!("defaults:\n  timeouts:\n    {field}: 9223372036854775807s\n");
        let errs = errors_of(&yaml);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("zkgate.yaml:3:5: defaults.timeouts.{field}")),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains("too long: at most 30d"), "{}", errs[0]);
    }
    let longest = "defaults:\n  timeouts: { tunnel: 30d }\n";
    assert!(parse(longest, "zkgate.yaml").is_ok());
    // The longest a setting can say still makes a deadline.
    assert!(std::time::Instant::now()
        .checked_add(crate::duration::MAX)
        .is_some());
}

#[test]
fn a_number_without_unit_is_not_a_duration() {
    let errs = errors_of("defaults:\n  timeouts: { server: 30 }\n");
    assert!(
        errs[0].contains("a unit is required, like 30s"),
        "{}",
        errs[0]
    );
}

#[test]
fn route_to_missing_backend_lists_the_defined_ones() {
    let errs = errors_of(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:1\"]\n    routes:\n      - { path_prefix: /a, backend: nope }\n    default_backend: b\nbackends:\n  b: {}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("zkgate.yaml:5:28: frontends.web.routes[0].backend"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].contains("backend `nope` is not defined (defined backends: b)"),
        "{}",
        errs[0]
    );
}

#[test]
fn duplicate_bind_points_at_the_second_and_names_the_first() {
    let errs = errors_of(
        "frontends:\n  a:\n    bind: [\"127.0.0.1:80\"]\n    default_backend: b\n  c:\n    bind: [\"127.0.0.1:80\"]\n    default_backend: b\nbackends:\n  b: {}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("zkgate.yaml:6:12: frontends.c.bind[0]"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].contains("already bound by frontends.a.bind[0]"),
        "{}",
        errs[0]
    );
}

#[test]
fn every_error_is_reported_at_once_in_document_order() {
    let errs = errors_of(
        "frontends:\n  a:\n    bind: [\"nowhere\"]\n    default_backend: x\n  b:\n    bind: [\"127.0.0.1:2\"]\n    mode: udp\n    default_backend: y\nbackends:\n  y:\n    servers: [{ address: \"10.0.0.1\" }, { address: \"10.0.0.2:80\", weight: 300 }]\n",
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].contains("frontends.a.bind[0]: `nowhere` is not a listen address"));
    assert!(errs[1].contains("frontends.a.default_backend: backend `x` is not defined"));
    assert!(errs[2].contains("frontends.b.mode: unknown mode `udp`"));
    assert!(errs[3].contains("servers[0].address: `10.0.0.1` has no port"));
    assert!(errs[4].contains("servers[1].weight: weight 300 is out of range"));
}

#[test]
fn tls_sections_are_checked_for_shape() {
    let errs = errors_of("frontends:\n  a:\n    bind: [\"127.0.0.1:1\"]\n    tls: { certificates: [], alpn: [spdy/3] }\n    default_backend: b\nbackends:\n  b:\n    tls: { sni: \"not a name\" }\n    send_proxy: v2\n");
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        errs[0].contains("frontends.a.tls.certificates: a TLS frontend needs at least one"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("frontends.a.tls.alpn[0]: an http frontend serves h2 and http/1.1 only"),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.b.tls.ca: servers' certificates are verified")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.b.tls.sni: `not a name` is not a DNS name")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("send_proxy applies to tcp backends")),
        "{errs:?}"
    );
}

#[test]
fn tls_defaults_offer_h2_and_verify_servers() {
    let config = crate::parse(
        "frontends:\n  a:\n    bind: [\"127.0.0.1:1\"]\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    default_backend: b\n  t:\n    bind: [\"127.0.0.1:2\"]\n    mode: tcp\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    default_backend: c\nbackends:\n  b:\n    tls: { ca: ca.pem }\n  c:\n    mode: tcp\n    tls: { verify: false }\n",
        "<string>",
    )
    .unwrap();
    let a = config.frontends.iter().find(|f| f.name == "a").unwrap();
    assert_eq!(a.tls.as_ref().unwrap().alpn, ["h2", "http/1.1"]);
    let t = config.frontends.iter().find(|f| f.name == "t").unwrap();
    assert!(t.tls.as_ref().unwrap().alpn.is_empty());
    let b = config.backends.iter().find(|b| b.name == "b").unwrap();
    assert!(b.tls.as_ref().unwrap().verify);
    let c = config.backends.iter().find(|b| b.name == "c").unwrap();
    assert!(!c.tls.as_ref().unwrap().verify);
}

#[test]
fn http3_needs_tls_an_http_frontend_and_its_own_udp_addresses() {
    let config = crate::parse(
        "frontends:\n  a:\n    bind: [\"127.0.0.1:443\"]\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    http3: { bind: [\"127.0.0.1:443\", \"127.0.0.1:8443\"] }\n    default_backend: b\nbackends:\n  b: {}\n",
        "<string>",
    )
    .unwrap();
    let http3 = config.frontends[0].http3.as_ref().unwrap();
    // UDP 443 beside TCP 443 is the usual edge: not a conflict.
    assert_eq!(http3.binds.len(), 2);
    assert_eq!(http3.port(), Some(443));

    let errs = errors_of("frontends:\n  plain:\n    bind: [\"127.0.0.1:1\"]\n    http3: { bind: [\"127.0.0.1:2\"] }\n    default_backend: b\n  t:\n    bind: [\"127.0.0.1:3\"]\n    mode: tcp\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    http3: { bind: [\"127.0.0.1:2\", \"nowhere\"] }\n    default_backend: c\n  e:\n    bind: [\"127.0.0.1:4\"]\n    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n    http3: { bind: [] }\n    default_backend: b\nbackends:\n  b: {}\n  c: { mode: tcp }\n");
    let expected = [
        "frontends.plain.http3: HTTP/3 needs the frontend's certificates: add `tls:`",
        "frontends.t.http3: HTTP/3 carries HTTP requests: remove it from a tcp frontend",
        "frontends.t.http3.bind[0]: UDP 127.0.0.1:2 is already bound by frontends.plain.http3.bind[0]",
        "frontends.t.http3.bind[1]: `nowhere` is not a listen address",
        "frontends.e.http3.bind: no UDP address",
    ];
    for text in expected {
        assert!(errs.iter().any(|e| e.contains(text)), "{text}: {errs:#?}");
    }
}

#[test]
fn mode_mismatch_between_frontend_and_backend_is_an_error() {
    let errs = errors_of("frontends:\n  a:\n    bind: [\"127.0.0.1:3\"]\n    default_backend: b\nbackends:\n  b: { mode: tcp }\n");
    assert!(
        errs[0].contains("has mode tcp, but this frontend has mode http"),
        "{errs:?}"
    );
}

#[test]
fn yaml_syntax_errors_carry_their_position() {
    let errs = errors_of("frontends:\n  a: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("zkgate.yaml:"), "{}", errs[0]);
    assert!(errs[0].contains("invalid YAML"), "{}", errs[0]);
}

#[test]
fn host_patterns_match_exact_names_and_any_depth_of_subdomain() {
    let exact = HostPattern::Exact("api.example.com".into());
    assert!(exact.matches(b"API.example.com"));
    assert!(!exact.matches(b"x.api.example.com"));
    let wildcard = HostPattern::Suffix(".example.com".into());
    assert!(wildcard.matches(b"a.example.com"));
    assert!(wildcard.matches(b"a.b.Example.com"));
    assert!(!wildcard.matches(b"example.com"));
    assert!(!wildcard.matches(b"badexample.com"));
}

#[test]
fn server_addresses_accept_ips_and_host_names_only_with_a_port() {
    assert_eq!(
        ServerAddress::parse("Web-1.internal:80").unwrap().host,
        "web-1.internal"
    );
    assert_eq!(
        ServerAddress::parse("[::1]:80").unwrap().to_string(),
        "[::1]:80"
    );
    assert!(ServerAddress::parse("web:0").is_err());
    assert!(ServerAddress::parse("we b:80").is_err());
    assert!(ServerAddress::parse(":80").is_err());
}

#[test]
fn zookeeper_backends_resolve_their_discovery_settings() {
    let config = parse(
        "zookeeper:\n  connect: \"127.0.0.1:2181, 127.0.0.1:2182\"\n  chroot: /prod\nbackends:\n  web:\n    zookeeper: { path: /services/web }\n  ss:\n    zookeeper: { path: /aurora/web, format: serverset, endpoint: http, on_empty: apply }\n",
        "t",
    )
    .unwrap();
    let zk = config.zookeeper.unwrap();
    assert_eq!(zk.connect, "127.0.0.1:2181,127.0.0.1:2182");
    assert_eq!(zk.chroot.as_deref(), Some("/prod"));
    assert_eq!(zk.session_timeout, defaults::SESSION_TIMEOUT);
    let web = config
        .backends
        .iter()
        .find(|b| b.name == "web")
        .unwrap()
        .discovery
        .clone()
        .unwrap();
    assert_eq!(
        (web.format, web.on_empty),
        (MemberFormat::Zkgate, OnEmpty::KeepLast)
    );
    let ss = config
        .backends
        .iter()
        .find(|b| b.name == "ss")
        .unwrap()
        .discovery
        .clone()
        .unwrap();
    assert_eq!(
        (ss.format, ss.endpoint.as_deref(), ss.on_empty),
        (MemberFormat::Serverset, Some("http"), OnEmpty::Apply)
    );
}

#[test]
fn zookeeper_mistakes_are_each_reported() {
    let errs = errors_of(
        "zookeeper:\n  connect: \"zk1\"\n  chroot: prod/\n  auth: { user: u, password_env: ZKGATE_TEST_UNSET_PASSWORD }\nbackends:\n  web:\n    zookeeper: { path: /services/web/, format: eureka, endpoint: http }\n",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert!(
        errs[0].contains("zookeeper.connect: server 1: `zk1` has no port"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("zookeeper.chroot: `prod/` must be an absolute znode path"),
        "{errs:#?}"
    );
    assert!(errs[2].contains("ZKGATE_TEST_UNSET_PASSWORD"), "{errs:#?}");
    assert!(
        errs[3].contains("backends.web.zookeeper.path: `/services/web/` has an empty path segment"),
        "{errs:#?}"
    );
    assert!(errs[4].contains("unknown format `eureka`"), "{errs:#?}");
    assert!(errs[5].contains("needs `format: serverset`"), "{errs:#?}");
}

#[test]
fn a_zookeeper_backend_needs_the_zookeeper_section() {
    let errs = errors_of("backends:\n  web:\n    zookeeper: { path: /services/web }\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("no top-level `zookeeper:` section"),
        "{errs:?}"
    );
}

#[test]
fn every_algorithm_parses_and_tcp_backends_refuse_http_only_ones() {
    let pick = |balance: &str| {
        let text = format!("backends:\n  b:\n    balance: \"{balance}\"\n");
        parse(&text, "t").map(|c| c.backends[0].balance.clone())
    };
    assert_eq!(pick("leastconn").unwrap(), Balance::LeastConn);
    assert_eq!(pick("ewma").unwrap(), Balance::Ewma);
    assert_eq!(
        pick("header(X-User)").unwrap(),
        Balance::Header(http::HeaderName::from_static("x-user"))
    );
    assert_eq!(
        pick("cookie(session)").unwrap(),
        Balance::Cookie("session".into())
    );
    assert!(pick("header()").is_err());
    assert!(pick("cookie(a=b)").is_err());
    assert!(pick("fastest")
        .unwrap_err()
        .to_string()
        .contains("unknown algorithm `fastest`"));
    let errs = errors_of("backends:\n  t:\n    mode: tcp\n    balance: uri\n");
    assert!(errs[0].contains("needs HTTP requests"), "{errs:?}");
    let errs = errors_of("backends:\n  b:\n    hash_method: ring\n");
    assert!(errs[0].contains("hashing algorithms"), "{errs:?}");
    let ring = parse(
        "backends:\n  b:\n    balance: source\n    hash_method: ring\n",
        "t",
    )
    .unwrap();
    assert_eq!(ring.backends[0].hash_method, HashMethod::Ring);
}

#[test]
fn health_checks_resolve_defaults_and_refuse_mismatched_fields() {
    let config = parse(
        "backends:\n  a:\n    health_check: { kind: http, path: /healthz, expect: \"200-299,301\", interval: 500ms, rise: 1 }\n  z:\n    mode: tcp\n    health_check: { kind: tcp, send: ruok, expect: imok }\n",
        "t",
    )
    .unwrap();
    let http = config.backend("a").unwrap().health_check.clone().unwrap();
    assert_eq!(
        (http.interval, http.timeout, http.rise, http.fall),
        (
            std::time::Duration::from_millis(500),
            std::time::Duration::from_millis(500),
            1,
            3
        )
    );
    assert_eq!(
        http.kind,
        HealthCheckKind::Http {
            method: http::Method::GET,
            path: "/healthz".into(),
            host: None,
            expect: vec![(200, 299), (301, 301)]
        }
    );
    let tcp = config.backend("z").unwrap().health_check.clone().unwrap();
    assert_eq!(
        tcp.kind,
        HealthCheckKind::Tcp {
            send: Some("ruok".into()),
            expect: Some("imok".into())
        }
    );

    let errs = errors_of("backends:\n  a:\n    health_check: { kind: tcp, path: /x, expect: imok }\n  b:\n    health_check: { kind: http, expect: 2xx, timeout: 5s }\n  c:\n    health_check: { kind: icmp }\n");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].contains("`path` belongs to `kind: http` checks"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("`2xx` is not a list of statuses"),
        "{errs:#?}"
    );
    assert!(errs[2].contains("unknown check kind `icmp`"), "{errs:#?}");
}

#[test]
fn a_config_node_supplies_frontends_and_backends_and_its_errors_point_into_it() {
    let file = "admin: { bind: 127.0.0.1:9999 }\nzookeeper: { connect: \"127.0.0.1:2181\", config_node: /zkgate/config }\nfrontends:\n  old: { bind: [\"127.0.0.1:1\"], default_backend: b }\nbackends:\n  b: {}\n";
    let node = "frontends:\n  web: { bind: [\"127.0.0.1:8080\"], default_backend: web }\nbackends:\n  web: { zookeeper: { path: /services/web } }\n";
    let config = parse_with_node(file, node, "zookeeper:/zkgate/config").unwrap();
    assert_eq!(config.admin.bind.to_string(), "127.0.0.1:9999");
    assert_eq!(config.frontends.len(), 1);
    assert_eq!(config.frontends[0].name, "web");
    assert_eq!(
        config.zookeeper.as_ref().unwrap().config_node.as_deref(),
        Some("/zkgate/config")
    );

    let broken = "frontends:\n  web:\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: nope\n";
    let errors = parse_with_node(file, broken, "zookeeper:/zkgate/config")
        .unwrap_err()
        .to_string();
    assert!(
        errors.starts_with("zookeeper:/zkgate/config:4:5: frontends.web.default_backend"),
        "{errors}"
    );

    let errors = parse_with_node(file, "admin: { bind: 0.0.0.0:1 }\n", "n")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("`admin` cannot come from ZooKeeper"),
        "{errors}"
    );
}

#[test]
fn access_lists_parse_networks_and_deny_wins() {
    let config = parse(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:1\"]\n    default_backend: b\n    access: { allow: [\"10.0.0.0/8\", \"192.0.2.7\"], deny: [\"10.1.0.0/16\"] }\n    rate_limit: { requests_per_second: 5, burst: 10 }\n    max_connections_per_client: 3\nbackends:\n  b: {}\n",
        "t",
    )
    .unwrap();
    let web = &config.frontends[0];
    let access = web.access.as_ref().unwrap();
    assert!(access.permits("10.2.3.4".parse().unwrap()));
    assert!(access.permits("::ffff:192.0.2.7".parse().unwrap()));
    assert!(!access.permits("10.1.2.3".parse().unwrap()));
    assert!(!access.permits("192.0.2.8".parse().unwrap()));
    assert_eq!(
        web.rate_limit,
        Some(RateLimit {
            requests_per_second: 5,
            burst: 10
        })
    );
    assert_eq!(web.max_connections_per_client, 3);
    let errs = errors_of("frontends:\n  web:\n    bind: [\"127.0.0.1:1\"]\n    default_backend: b\n    access: { allow: [\"10.0.0.0/33\"] }\nbackends:\n  b: {}\n");
    assert!(
        errs[0].contains("frontends.web.access.allow[0]: `10.0.0.0/33` is not a network"),
        "{errs:?}"
    );
}

#[test]
fn protect_and_state_dir_are_read_and_their_mistakes_reported() {
    let config = parse(
        "state_dir: /var/lib/zkgate\nzookeeper:\n  connect: \"127.0.0.1:2181\"\nbackends:\n  web:\n    zookeeper: { path: /services/web, protect: { max_removed: 50%, window: 30s } }\n  api:\n    zookeeper: { path: /services/api, protect: { max_removed: 20, window: 1m } }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        config.state_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/zkgate"))
    );
    let protect = |name: &str| {
        config
            .backend(name)
            .unwrap()
            .discovery
            .as_ref()
            .unwrap()
            .protect
    };
    assert_eq!(
        protect("web"),
        Some(Protect {
            max_removed_percent: 50,
            window: std::time::Duration::from_secs(30)
        })
    );
    assert_eq!(protect("api").map(|p| p.max_removed_percent), Some(20));

    let errs = errors_of(
        "state_dir: var/lib\nzookeeper:\n  connect: \"127.0.0.1:2181\"\nbackends:\n  a:\n    zookeeper: { path: /a, protect: { max_removed: 150%, window: 30s } }\n  b:\n    zookeeper: { path: /b, protect: { max_removed: half, window: 30s } }\n  c:\n    zookeeper: { path: /c, protect: { max_removed: 10%, window: 0s } }\n",
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("state_dir") && e.contains("absolute")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.a.zookeeper.protect.max_removed")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.b.zookeeper.protect.max_removed")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.c.zookeeper.protect.window")),
        "{errs:#?}"
    );
}

#[test]
fn zones_and_locality_are_read_and_their_mistakes_reported() {
    let config = parse(
        "zone: us-east-1a\nbackends:\n  web:\n    servers: [{ address: \"10.0.0.1:80\", zone: us-east-1b }]\n    locality: { mode: prefer_local }\n  api:\n    servers: [{ address: \"10.0.0.2:80\" }]\n    locality: { mode: prefer_local, min_local_healthy: 50% }\n",
        "t",
    )
    .unwrap();
    assert_eq!(config.zone.as_deref(), Some("us-east-1a"));
    let web = config.backend("web").unwrap();
    assert_eq!(web.servers[0].zone.as_deref(), Some("us-east-1b"));
    assert_eq!(web.locality.map(|l| l.min_local_healthy_percent), Some(70));
    assert_eq!(
        config
            .backend("api")
            .unwrap()
            .locality
            .map(|l| l.min_local_healthy_percent),
        Some(50)
    );

    // prefer_local without the instance's zone; bad mode, share and zone names.
    let errs = errors_of(
        "backends:\n  a:\n    servers: [{ address: \"10.0.0.1:80\", zone: \"\" }]\n  b:\n    servers: [{ address: \"10.0.0.1:80\" }]\n    locality: { mode: nearest }\n  c:\n    servers: [{ address: \"10.0.0.1:80\" }]\n    locality: { mode: prefer_local, min_local_healthy: 170% }\n  d:\n    servers: [{ address: \"10.0.0.1:80\" }]\n    locality: { mode: prefer_local }\n",
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.a.servers[0].zone")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("backends.b.locality.mode")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.c.locality.min_local_healthy")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends.d.locality") && e.contains("zone")),
        "{errs:#?}"
    );
}
