//! The deploy kit is checked, not decorative: every YAML parses, every
//! zkgate configuration in it is valid, and the dashboard queries only
//! metrics zkgate exports.

use std::collections::BTreeSet;

use serde::Deserialize;
use std::path::{Path, PathBuf};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|err| panic!("deploy/{path}: {err}"))
}

/// Every YAML document in a file.
fn documents(path: &str) -> Vec<serde_yaml::Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::Value::deserialize(doc).unwrap_or_else(|err| panic!("deploy/{path}: {err}"))
        })
        .collect()
}

/// Metric names zkgate defines (crates/metrics).
fn exported_metrics() -> BTreeSet<String> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/metrics/src/lib.rs"),
    )
    .unwrap();
    source
        .split('"')
        .filter(|token| {
            token.starts_with("zkgate_")
                && token.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_zkgate_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/zkgate-dashboard.json")).unwrap();
    let exported = exported_metrics();
    assert!(
        exported.contains("zkgate_backend_response_seconds"),
        "{exported:?}"
    );
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("zkgate_").map(|_| word) {
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suffix| {
                            name.strip_suffix(suffix).filter(|b| exported.contains(*b))
                        })
                        .unwrap_or(name);
                    assert!(
                        exported.contains(base),
                        "panel `{}` queries `{name}`, which zkgate does not export",
                        panel["title"]
                    );
                    used.insert(base.to_owned());
                }
            }
        }
    }
    // The dashboard covers the contract's main families.
    for family in [
        "zkgate_frontend_requests_total",
        "zkgate_backend_responses_total",
        "zkgate_server_up",
        "zkgate_zookeeper_connected",
    ] {
        assert!(used.contains(family), "the dashboard never shows {family}");
    }
}

#[test]
fn every_yaml_parses_and_every_zkgate_configuration_is_valid() {
    let compose = &documents("docker/docker-compose.yml")[0];
    for service in ["zk1", "zk2", "zk3", "zkgate-a", "zkgate-b", "prometheus"] {
        assert!(
            compose["services"][service].is_mapping(),
            "compose lacks {service}"
        );
    }
    let prometheus = &documents("prometheus/prometheus.yml")[0];
    assert_eq!(prometheus["scrape_configs"][0]["metrics_path"], "/metrics");

    zkgate_config::parse(&read("docker/zkgate.yaml"), "deploy/docker/zkgate.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let kubernetes = documents("kubernetes/zkgate.yaml");
    let kinds: Vec<&str> = kubernetes
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service", "Service"]);
    let embedded = kubernetes[0]["data"]["zkgate.yaml"].as_str().unwrap();
    zkgate_config::parse(embedded, "kubernetes ConfigMap").unwrap_or_else(|e| panic!("{e}"));
    let container = &kubernetes[1]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
}

#[test]
fn the_service_unit_and_image_run_unprivileged() {
    let unit = read("systemd/zkgate.service");
    for line in [
        "ExecStart=/usr/local/bin/zkgate run -c /etc/zkgate/zkgate.yaml --upgrade-socket /run/zkgate/upgrade.sock",
        // READY=1 and MAINPID= come from zkgate, the latter from a successor.
        "Type=notify",
        "NotifyAccess=all",
        "RuntimeDirectory=zkgate",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "zkgate.service lacks `{line}`"
        );
    }
    let dockerfile = read("docker/Dockerfile");
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "not a multi-stage build"
    );
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root")),
        "the image runs as root"
    );
    assert!(read("sysctl.d/60-zkgate.conf").contains("net.ipv4.tcp_migrate_req = 1"));
}
