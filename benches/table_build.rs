//! Criterion: building a routing table (the control plane's work per change),
//! one pick from it and one route match (the data plane's work per request).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use zkgate_config::{AdminState, ServerAddress, ServerConfig};
use zkgate_metrics::Metrics;
use zkgate_routing::{Discovered, Resolved, TableBuilder};

/// The allocator zkgate runs with (`src/main.rs`): large buffers are
/// reused, not mapped and zeroed anew at every build as glibc's are.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONFIG: &str = "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: web\nbackends:\n  web:\n    servers: []\n";

/// The members a bench keeps, by backend; a build borrows them (`view`).
type Members = HashMap<String, Vec<ServerConfig>>;

/// What a build is given: `members` borrowed, as the control plane does.
fn view(members: &Members) -> Discovered<'_> {
    members
        .iter()
        .map(|(name, servers)| (name.clone(), servers.iter().collect()))
        .collect()
}

/// `n` servers on loopback addresses with mixed weights.
fn members(n: usize) -> (Members, Resolved) {
    let mut resolved: Resolved = HashMap::new();
    let servers: Vec<ServerConfig> = (0..n)
        .map(|i| {
            let address: SocketAddr = ([127, 1, (i / 250) as u8, (i % 250 + 1) as u8], 8080).into();
            let server = ServerConfig {
                address: ServerAddress::parse(&address.to_string()).unwrap(),
                weight: 1 + (i % 10) as u32,
                state: AdminState::Ready,
                zone: None,
            };
            resolved.insert(server.address.clone(), address);
            server
        })
        .collect();
    ([("web".to_owned(), servers)].into(), resolved)
}

fn table_build(c: &mut Criterion) {
    let config = zkgate_config::parse(CONFIG, "bench").unwrap();
    let mut group = c.benchmark_group("table_build");
    for n in [10, 1_000, 10_000] {
        let (members, resolved) = members(n);
        let discovered = view(&members);
        let mut builder =
            TableBuilder::new(Metrics::register(&prometheus::Registry::new()).unwrap());
        // Steady state: server states carry over from the previous table.
        builder.build(&config, &discovered, &resolved);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(builder.build(&config, &discovered, &resolved)))
        });
    }
    group.finish();
}

/// One backend of `n` members, built once, whose members then change one
/// at a time, as a member change is applied.
struct OneBackend {
    config: zkgate_config::Config,
    members: Members,
    resolved: Resolved,
    builder: TableBuilder,
    flip: u32,
}

impl OneBackend {
    fn new(n: usize) -> Self {
        let config = zkgate_config::parse(CONFIG, "bench").unwrap();
        let (members, resolved) = members(n);
        let mut builder =
            TableBuilder::new(Metrics::register(&prometheus::Registry::new()).unwrap());
        builder.build(&config, &view(&members), &resolved);
        OneBackend {
            config,
            members,
            resolved,
            builder,
            flip: 0,
        }
    }

    /// Member `index` changes its weight; the backend is built anew from
    /// its members.
    fn change(&mut self, index: usize) -> zkgate_routing::RoutingTable {
        self.flip ^= 1;
        self.members.get_mut("web").unwrap()[index].weight = 3 + self.flip;
        let changed: std::collections::HashSet<String> = ["web".to_owned()].into();
        self.builder.build_changed(
            &self.config,
            &view(&self.members),
            &self.resolved,
            zkgate_routing::Changed::Backends(&changed),
        )
    }
}

/// One member of a 10,000-server backend changes its weight.
fn one_member_of_ten_thousand(c: &mut Criterion) {
    let mut backend = OneBackend::new(10_000);
    c.bench_function("table_build/one_member_of_10000", |b| {
        b.iter(|| black_box(backend.change(4_321)))
    });
}

/// One member of a 1,000-server backend changes its weight, with the
/// caches emptied before each build: a fleet's process on a shared
/// machine meets its table cold at every change (a hundred such tables
/// do not fit in the caches), so what a change costs there is mostly the
/// cache lines it touches.
fn one_member_of_a_thousand_cold(c: &mut Criterion) {
    let mut backend = OneBackend::new(1_000);
    // Larger than the last-level cache.
    let mut flush = vec![0u8; 96 << 20];
    c.bench_function("table_build/one_member_of_1000_cold", |b| {
        b.iter_batched(
            || {
                for line in flush.chunks_mut(64) {
                    line[0] = line[0].wrapping_add(1);
                }
            },
            |()| black_box(backend.change(432)),
            criterion::BatchSize::PerIteration,
        )
    });
}

/// 50 backends × 200 servers: every backend built, against one changed
/// backend built anew and the others carried over.
fn one_backend_of_fifty(c: &mut Criterion) {
    let mut text =
        "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: b0\nbackends:\n"
            .to_owned();
    let mut members: Members = HashMap::new();
    let mut resolved: Resolved = HashMap::new();
    for b in 0..50 {
        text.push_str(&format!("  b{b}:\n    servers: []\n"));
        let servers: Vec<ServerConfig> = (0..200)
            .map(|i| {
                let address: SocketAddr = ([127, 2, b as u8, (i + 1) as u8], 8080).into();
                let server = ServerConfig {
                    address: ServerAddress::parse(&address.to_string()).unwrap(),
                    weight: 1 + (i % 10) as u32,
                    state: AdminState::Ready,
                    zone: None,
                };
                resolved.insert(server.address.clone(), address);
                server
            })
            .collect();
        members.insert(format!("b{b}"), servers);
    }
    let discovered = view(&members);
    let config = zkgate_config::parse(&text, "bench").unwrap();
    let mut builder = TableBuilder::new(Metrics::register(&prometheus::Registry::new()).unwrap());
    builder.build(&config, &discovered, &resolved);
    let mut group = c.benchmark_group("table_build_50x200");
    group.bench_function("all", |b| {
        b.iter(|| black_box(builder.build(&config, &discovered, &resolved)))
    });
    let changed: std::collections::HashSet<String> = ["b7".to_owned()].into();
    group.bench_function("one_changed", |b| {
        b.iter(|| {
            black_box(builder.build_changed(
                &config,
                &discovered,
                &resolved,
                zkgate_routing::Changed::Backends(&changed),
            ))
        })
    });
    group.finish();
}

fn config_with(balance: &str, hash_method: &str) -> zkgate_config::Config {
    let text = format!(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: web\nbackends:\n  web:\n    balance: \"{balance}\"\n{hash_method}    servers: []\n"
    );
    zkgate_config::parse(&text, "bench").unwrap()
}

/// One pick per algorithm: what a request pays to choose its server.
fn pick(c: &mut Criterion) {
    let algorithms = [
        ("roundrobin", ""),
        ("leastconn", ""),
        ("random", ""),
        ("ewma", ""),
        ("source", "    hash_method: maglev\n"),
        ("source", "    hash_method: ring\n"),
    ];
    for (balance, method) in algorithms {
        let name = if method.contains("ring") {
            "source-ring".to_owned()
        } else if balance == "source" {
            "source-maglev".to_owned()
        } else {
            balance.to_owned()
        };
        let mut group = c.benchmark_group(format!("pick/{name}"));
        for n in [3, 100, 10_000] {
            let config = config_with(balance, method);
            let (members, resolved) = members(n);
            let mut builder =
                TableBuilder::new(Metrics::register(&prometheus::Registry::new()).unwrap());
            let table = builder.build(&config, &view(&members), &resolved);
            let backend = table.backend("web").unwrap().clone();
            let mut key = 0u64;
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(backend.pick(Some(key)).map(|s| s.address()))
                })
            });
        }
        group.finish();
    }
}

/// Route matching: a frontend with 50 routes (exact and wildcard hosts,
/// path prefixes, a header match); requests that match early, late, or fall
/// through to the default backend.
fn route_match(c: &mut Criterion) {
    let mut text = String::from(
        "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: web\n    routes:\n",
    );
    for i in 0..48 {
        text.push_str(&format!(
            "      - {{ host: \"app{i}.example.com\", path_prefix: /api/v{i}, backend: web }}\n"
        ));
    }
    text.push_str(
        "      - { host: \"*.example.org\", headers: { x-canary: \"1\" }, backend: web }\n",
    );
    text.push_str("      - { path_prefix: /static, backend: web }\n");
    text.push_str("backends:\n  web:\n    servers: [{ address: \"127.0.0.1:1\" }]\n");
    let config = zkgate_config::parse(&text, "bench").unwrap();
    let mut builder = TableBuilder::new(Metrics::register(&prometheus::Registry::new()).unwrap());
    let table = builder.build(&config, &HashMap::new(), &HashMap::new());
    let frontend = table.frontends().next().unwrap().clone();
    let mut canary = http::HeaderMap::new();
    canary.insert("x-canary", http::HeaderValue::from_static("1"));
    let plain = http::HeaderMap::new();
    let cases = [
        ("first", "app0.example.com", "/api/v0/users", &plain),
        ("last-host", "app47.example.com", "/api/v47/x", &plain),
        ("wildcard-header", "www.example.org", "/", &canary),
        ("default", "unknown.example.net", "/index.html", &plain),
    ];
    let mut group = c.benchmark_group("route_match");
    for (name, host, path, headers) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    frontend
                        .select(
                            Some(black_box(host.as_bytes())),
                            black_box(path.as_bytes()),
                            headers,
                        )
                        .is_some(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    table_build,
    one_backend_of_fifty,
    one_member_of_ten_thousand,
    one_member_of_a_thousand_cold,
    pick,
    route_match
);
criterion_main!(benches);
