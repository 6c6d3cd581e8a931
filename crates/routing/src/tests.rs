use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;
use prometheus::Registry;
use zkgate_metrics::Metrics;

use crate::{Discovered, Resolved, ServerSource, TableBuilder};

const CONFIG: &str = r#"
frontends:
  web:
    bind: ["127.0.0.1:18080"]
    routes:
      - { host: api.example.com, path_prefix: /v1, backend: api }
      - { host: "*.example.com", headers: { x-canary: "1" }, backend: canary }
    default_backend: web
backends:
  web:
    servers:
      - { address: "127.0.0.1:9001", weight: 2 }
      - { address: "127.0.0.1:9002", weight: 1 }
      - { address: "127.0.0.1:9003", state: drain }
  api: { servers: [{ address: "127.0.0.1:9101" }] }
  canary: { servers: [{ address: "127.0.0.1:9201" }] }
"#;

fn resolved(config: &zkgate_config::Config) -> Resolved {
    config
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .map(|s| {
            (
                s.address.clone(),
                s.address.to_string().parse::<SocketAddr>().unwrap(),
            )
        })
        .collect()
}

fn builder() -> (TableBuilder, Registry) {
    let registry = Registry::new();
    (
        TableBuilder::new(Metrics::register(&registry).unwrap()),
        registry,
    )
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            )
        })
        .collect()
}

#[test]
fn routes_match_first_by_host_path_and_headers_else_default() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.frontends().next().unwrap();
    let backend = |host: Option<&str>, path: &str, h: &HeaderMap| {
        web.select(host.map(str::as_bytes), path.as_bytes(), h)
            .and_then(|route| route.backend())
            .map(|b| b.name.to_string())
    };
    let none = HeaderMap::new();
    assert_eq!(
        backend(Some("api.example.com"), "/v1/users", &none).unwrap(),
        "api"
    );
    assert_eq!(
        backend(Some("api.example.com"), "/v2", &none).unwrap(),
        "web"
    );
    assert_eq!(
        backend(Some("x.example.com"), "/", &headers(&[("x-canary", "1")])).unwrap(),
        "canary"
    );
    assert_eq!(
        backend(Some("x.example.com"), "/", &headers(&[("x-canary", "2")])).unwrap(),
        "web"
    );
    assert_eq!(backend(None, "/v1", &none).unwrap(), "web");
}

#[test]
fn only_ready_servers_are_picked_in_weight_ratio() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.backend("web").unwrap();
    let mut counts = std::collections::HashMap::new();
    for _ in 0..300 {
        *counts
            .entry(web.pick(None).unwrap().address().port())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.get(&9001), Some(&200));
    assert_eq!(counts.get(&9002), Some(&100));
    assert_eq!(counts.get(&9003), None);
}

#[test]
fn retries_pick_a_server_not_tried_yet() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.backend("web").unwrap();
    let first = web.pick(None).unwrap().address();
    let second = web.pick_untried(&[first]).unwrap().address();
    assert_ne!(first, second);
    assert!(web.pick_untried(&[first, second]).is_none());
}

#[test]
fn attempts_try_each_usable_server_once_and_count_the_retries() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.backend("web").unwrap();
    let mut attempts = web.attempts(web.pick(None));
    let ports: Vec<u16> = attempts.by_ref().map(|s| s.address().port()).collect();
    assert_eq!(
        ports.len(),
        2,
        "two ready servers, retries allow three: {ports:?}"
    );
    assert_ne!(ports[0], ports[1]);
    assert!(!attempts.none_tried());
    assert_eq!(web.metrics.retries.get(), 1);

    let mut nothing = web.attempts(None);
    assert!(nothing.next().is_none());
    assert!(nothing.none_tried());
}

#[test]
fn attempts_past_the_inline_list_still_try_each_server_once() {
    let config = zkgate_config::parse(
        r#"
frontends:
  web: { bind: ["127.0.0.1:18080"], default_backend: wide }
backends:
  wide:
    retries: 9
    servers:
      - { address: "127.0.0.1:9301" }
      - { address: "127.0.0.1:9302" }
      - { address: "127.0.0.1:9303" }
      - { address: "127.0.0.1:9304" }
      - { address: "127.0.0.1:9305" }
      - { address: "127.0.0.1:9306" }
      - { address: "127.0.0.1:9307" }
"#,
        "t",
    )
    .unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let wide = table.backend("wide").unwrap();
    let mut ports: Vec<u16> = wide
        .attempts(wide.pick(None))
        .map(|s| s.address().port())
        .collect();
    assert_eq!(ports.len(), 7, "seven servers, nine retries: {ports:?}");
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports, (9301..=9307).collect::<Vec<u16>>());
    assert_eq!(wide.metrics.retries.get(), 6);
}

#[test]
fn server_state_survives_a_rebuild_and_removed_servers_lose_their_series() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, registry) = builder();
    let first = builder.build(&config, &Discovered::new(), &resolved(&config));
    let in_flight = first.backend("api").unwrap().servers[0]
        .state
        .start_request();

    let changed = CONFIG.replace("127.0.0.1:9002", "127.0.0.1:9009");
    let config = zkgate_config::parse(&changed, "t").unwrap();
    let second = builder.build(&config, &Discovered::new(), &resolved(&config));
    assert_eq!(second.generation, first.generation + 1);
    let api = &second.backend("api").unwrap().servers[0].state;
    assert!(Arc::ptr_eq(api, in_flight.server()));
    assert_eq!(api.active.get(), 1);
    drop(in_flight);
    assert_eq!(api.active.get(), 0);

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"zkgate_server_weight{backend="web",server="127.0.0.1:9009"} 1"#),
        "{text}"
    );
    assert!(!text.contains("127.0.0.1:9002"), "{text}");
    assert!(
        text.contains(r#"zkgate_backend_servers{backend="web",state="drain"} 1"#),
        "{text}"
    );
}

#[test]
fn a_build_for_some_backends_carries_the_others_over_unchanged() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, registry) = builder();
    let resolved = resolved(&config);
    let first = builder.build(&config, &Discovered::new(), &resolved);
    let changed: std::collections::HashSet<String> = ["api".to_owned()].into();
    let second = builder.build_changed(
        &config,
        &Discovered::new(),
        &resolved,
        crate::Changed::Backends(&changed),
    );
    let same =
        |name: &str| Arc::ptr_eq(first.backend(name).unwrap(), second.backend(name).unwrap());
    assert!(
        same("web") && same("canary"),
        "untouched backends are carried over"
    );
    assert!(!same("api"), "the touched one is built anew");
    // Its servers keep their state, and the carried ones their series.
    let api =
        |table: &crate::RoutingTable| Arc::clone(&table.backend("api").unwrap().servers[0].state);
    assert!(Arc::ptr_eq(&api(&first), &api(&second)));
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"zkgate_server_weight{backend="web",server="127.0.0.1:9001"} 2"#),
        "{text}"
    );
    // A changed configuration is built anew even if not named.
    let reweighted = zkgate_config::parse(&CONFIG.replace("weight: 2", "weight: 5"), "t").unwrap();
    let none = std::collections::HashSet::new();
    let third = builder.build_changed(
        &reweighted,
        &Discovered::new(),
        &resolved,
        crate::Changed::Backends(&none),
    );
    assert!(!Arc::ptr_eq(
        second.backend("web").unwrap(),
        third.backend("web").unwrap()
    ));
    assert!(Arc::ptr_eq(
        second.backend("api").unwrap(),
        third.backend("api").unwrap()
    ));
}

#[test]
fn frontend_ids_are_stable_across_tables() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let id = builder.frontend_id("other");
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.frontends().next().unwrap().id;
    assert_ne!(web, id);
    assert_eq!(builder.frontend_id("web"), web);
    assert!(table.frontend(id).is_none());
}

#[test]
fn a_removed_frontend_is_retired_while_it_has_connections() {
    let both = format!(
        "{CONFIG}  other: {{ servers: [{{ address: \"127.0.0.1:9301\" }}] }}\n"
    )
    .replace(
        "backends:\n",
        "  spare: { bind: [\"127.0.0.1:18081\"], default_backend: other }\n  idle: { bind: [\"127.0.0.1:18082\"], default_backend: other }\nbackends:\n",
    );
    let both = zkgate_config::parse(&both, "t").unwrap();
    let web_only = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&both, &Discovered::new(), &resolved(&both));
    let spare = builder.frontend_id("spare");
    let idle = builder.frontend_id("idle");
    let spare_frontend = Arc::clone(table.frontend(spare).unwrap());
    spare_frontend.metrics.active_connections.inc();

    // Removed with a connection open: retired, as it last was.
    let table = builder.build(&web_only, &Discovered::new(), &resolved(&web_only));
    assert!(table.frontend(spare).is_none());
    let retired = table.retired(spare).expect("spare is retired");
    assert!(Arc::ptr_eq(retired, &spare_frontend));
    assert_eq!(retired.default_backend().unwrap().name.as_ref(), "other");
    // Removed with none: gone at once.
    assert!(table.frontend(idle).is_none() && table.retired(idle).is_none());
    // Still retired at the next build while the connection lasts.
    let table = builder.build(&web_only, &Discovered::new(), &resolved(&web_only));
    assert!(table.retired(spare).is_some());

    // Back in the configuration: live again, not retired.
    let table = builder.build(&both, &Discovered::new(), &resolved(&both));
    assert!(table.frontend(spare).is_some() && table.retired(spare).is_none());

    // Removed again, and once its last connection closes, gone.
    let table = builder.build(&web_only, &Discovered::new(), &resolved(&web_only));
    assert!(table.retired(spare).is_some());
    spare_frontend.metrics.active_connections.dec();
    let table = builder.build(&web_only, &Discovered::new(), &resolved(&web_only));
    assert!(table.retired(spare).is_none());
    assert!(table.frontend(spare).is_none());
}

#[test]
fn discovered_servers_join_static_ones_and_a_static_address_wins() {
    let config = zkgate_config::parse(CONFIG, "t").unwrap();
    let (mut builder, _) = builder();
    let member = |address: &str, weight| zkgate_config::ServerConfig {
        address: zkgate_config::ServerAddress::parse(address).unwrap(),
        weight,
        state: zkgate_config::AdminState::Ready,
        zone: None,
    };
    let members = [member("127.0.0.1:9102", 3), member("127.0.0.1:9101", 9)];
    let discovered: Discovered = [("api".to_owned(), members.iter().collect())].into();
    let mut resolved = resolved(&config);
    for m in &discovered["api"] {
        resolved.insert(m.address.clone(), m.address.to_string().parse().unwrap());
    }
    let table = builder.build(&config, &discovered, &resolved);
    let api = table.backend("api").unwrap();
    let servers: Vec<(u16, u32, ServerSource)> = api
        .servers
        .iter()
        .map(|s| (s.address().port(), s.weight, s.source))
        .collect();
    assert_eq!(
        servers,
        [
            (9101, 1, ServerSource::Static),
            (9102, 3, ServerSource::ZooKeeper)
        ]
    );
}

#[test]
fn slow_start_gives_a_new_server_a_small_weight_and_asks_for_a_refresh() {
    let text = "backends:\n  web:\n    slow_start: 10s\n    servers: [{ address: \"127.0.0.1:9001\", weight: 100 }, { address: \"127.0.0.1:9002\", weight: 100 }]\n";
    let config = zkgate_config::parse(text, "t").unwrap();
    let (mut builder, _) = builder();
    let only_first = text.replace(", { address: \"127.0.0.1:9002\", weight: 100 }", "");
    let first = zkgate_config::parse(&only_first, "t").unwrap();
    // Servers of the first table (process start) do not ramp.
    let table = builder.build(&first, &Discovered::new(), &resolved(&first));
    assert!(table.refresh_at_ms().is_none());
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.backend("web").unwrap();
    assert!(table.refresh_at_ms().is_some());
    // The added server starts at weight 1 against 100.
    let picks: Vec<u16> = (0..101)
        .map(|_| web.pick(None).unwrap().address().port())
        .collect();
    assert_eq!(picks.iter().filter(|&&p| p == 9002).count(), 1);
}

#[test]
fn many_routes_indexed_by_host_match_as_the_first_match_in_order() {
    // 40 routes (indexed): exact hosts (some repeated, with other paths),
    // suffixes and routes without a host, each to its own backend.
    let hosts = [
        "a.example",
        "b.example",
        "A.example",
        "*.example",
        "c.example",
    ];
    let mut routes = String::new();
    let mut backends = String::new();
    let mut expected_routes = Vec::new();
    for i in 0..40 {
        let host = (i % 7 != 3).then(|| hosts[i % hosts.len()]);
        let prefix = ["/", "/api", "/api/v2", "/static"][i % 4];
        let host_yaml = host.map_or(String::new(), |h| format!("host: \"{h}\", "));
        routes.push_str(&format!(
            "      - {{ {host_yaml}path_prefix: {prefix}, backend: r{i} }}\n"
        ));
        backends.push_str(&format!(
            "  r{i}: {{ servers: [{{ address: \"127.0.0.1:{}\" }}] }}\n",
            20000 + i
        ));
        expected_routes.push((host.map(str::to_ascii_lowercase), prefix));
    }
    let yaml = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    routes:\n{routes}    default_backend: r0\nbackends:\n{backends}"
    );
    let config = zkgate_config::parse(&yaml, "t").unwrap();
    let (mut builder, _) = builder();
    let table = builder.build(&config, &Discovered::new(), &resolved(&config));
    let web = table.frontends().next().unwrap();
    let none = HeaderMap::new();
    // The reference: the first route, in order, whose host and prefix match.
    let reference = |host: &str, path: &str| {
        let host = host.to_ascii_lowercase();
        expected_routes
            .iter()
            .position(|(pattern, prefix)| {
                let host_ok = match pattern.as_deref() {
                    None => true,
                    Some(p) if p.starts_with("*.") => {
                        host.ends_with(&p[1..]) && host.len() > p.len() - 1
                    }
                    Some(p) => p == host,
                };
                host_ok && path.starts_with(prefix)
            })
            .map(|i| format!("r{i}"))
    };
    for host in [
        "a.example",
        "B.EXAMPLE",
        "c.example",
        "x.example",
        "other.net",
        "example",
    ] {
        for path in ["/", "/api", "/api/v2/x", "/static/a.css", "/zzz"] {
            let got = web
                .select(Some(host.as_bytes()), path.as_bytes(), &none)
                .and_then(|route| route.backend())
                .map(|b| b.name.to_string());
            let want = reference(host, path).or(Some("r0".to_owned()));
            assert_eq!(got, want, "{host} {path}");
        }
    }
}
