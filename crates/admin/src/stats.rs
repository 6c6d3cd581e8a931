//! `/stats`: one self-contained HTML page in the spirit of HAProxy's stats
//! page — frontends, backends and every server with state, weight, health,
//! traffic and errors — refreshing itself every 5 seconds. No external
//! assets: zkgate runs on closed networks.

use crate::status::{BackendStatus, ServerStatus, Status};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "
body{font:13px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 6px}
.meta{color:#5b6475;margin-bottom:12px}.meta b{color:#1d2330}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.ok{background:#d9f2e0;color:#14652f}.bad{background:#fbdcdc;color:#9b1c1c}.warn{background:#fdeccb;color:#8a5300}.off{background:#e3e6eb;color:#4a5260}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001;margin-bottom:6px}
th,td{padding:4px 10px;text-align:right;border-bottom:1px solid #eceef2;white-space:nowrap}
th{background:#2f3b52;color:#fff;font-weight:600}th:first-child,td:first-child{text-align:left}
tr.up td:first-child{border-left:4px solid #2da44e}tr.down td:first-child{border-left:4px solid #d1242f}
tr.drain td:first-child{border-left:4px solid #d4a72c}tr.maint td:first-child{border-left:4px solid #8c959f}
tr.total td{font-weight:600;background:#f0f2f5}.muted{color:#8a93a3}
";

/// Renders the page.
pub fn render(status: &Status) -> String {
    let facts = &status.facts;
    let mut page = String::with_capacity(16 * 1024);
    page.push_str(&format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>zkgate stats</title><style>{STYLE}</style></head><body><h1>zkgate {}</h1><div class=\"meta\">",
        esc(status.version)
    ));
    let ready = if facts.not_ready.is_empty() && facts.ready_notes.is_empty() {
        "<span class=\"pill ok\">ready</span>".to_owned()
    } else if facts.not_ready.is_empty() {
        format!(
            "<span class=\"pill warn\">ready</span> {}",
            esc(&facts.ready_notes.join("; "))
        )
    } else {
        format!(
            "<span class=\"pill bad\">not ready</span> {}",
            esc(&facts.not_ready.join("; "))
        )
    };
    let zookeeper = match &facts.zookeeper {
        None => "<span class=\"pill off\">not used</span>".to_owned(),
        Some(zk) if zk.connected => format!(
            "<span class=\"pill ok\">connected</span> {}",
            esc(&zk.connect)
        ),
        Some(zk) => format!(
            "<span class=\"pill bad\">disconnected</span> {} (serving the last known members)",
            esc(&zk.connect)
        ),
    };
    let reload = match &facts.last_reload {
        None => "none".to_owned(),
        Some(r) if r.error.is_none() => "<span class=\"pill ok\">ok</span>".to_owned(),
        Some(r) => format!(
            "<span class=\"pill bad\">refused</span> {}",
            esc(r.error.as_deref().unwrap_or(""))
        ),
    };
    page.push_str(&format!(
        "{ready} &nbsp; table generation <b>{}</b> &nbsp; config generation <b>{}</b> ({}) &nbsp; ZooKeeper {zookeeper} &nbsp; last reload {reload}</div>",
        status.table_generation,
        facts.config_generation,
        esc(&facts.config_source)
    ));

    page.push_str("<h2>Frontends</h2><table><tr><th>frontend</th><th>mode</th><th>listening on</th><th>active conns</th><th>conns</th><th>requests</th><th>bytes in</th><th>bytes out</th></tr>");
    for fe in &status.frontends {
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&fe.name),
            fe.mode,
            esc(&fe.binds.join(", ")),
            fe.active_connections,
            fe.connections_total,
            fe.requests_total,
            human_bytes(fe.bytes_received_total),
            human_bytes(fe.bytes_sent_total)
        ));
    }
    page.push_str("</table>");

    for backend in &status.backends {
        backend_table(&mut page, backend, facts.discovery.get(&backend.name));
    }
    page.push_str("<p class=\"muted\">Refreshes every 5 s. JSON: <a href=\"/api/v1/status\">/api/v1/status</a> · Prometheus: <a href=\"/metrics\">/metrics</a></p></body></html>");
    page
}

fn backend_table(
    page: &mut String,
    backend: &BackendStatus,
    discovery: Option<&crate::report::DiscoveryFacts>,
) {
    let up = backend.servers.iter().filter(|s| s.up).count();
    let health = if backend.servers.is_empty() {
        "<span class=\"pill bad\">no servers</span>".to_owned()
    } else if up == 0 {
        "<span class=\"pill bad\">0 up</span>".to_owned()
    } else if up < backend.servers.len() {
        format!(
            "<span class=\"pill warn\">{up}/{} up</span>",
            backend.servers.len()
        )
    } else {
        format!(
            "<span class=\"pill ok\">{up}/{} up</span>",
            backend.servers.len()
        )
    };
    let panic = if backend.panic {
        " <span class=\"pill bad\">panic: routing to all</span>"
    } else {
        ""
    };
    let source = match discovery {
        None => String::new(),
        Some(d) => {
            let sync = if d.synced { "synced" } else { "not synced yet" };
            let kept = if d.stale {
                " · <span class=\"pill warn\">stale: last-known members from state_dir</span>"
            } else if d.keeping_last {
                " · <span class=\"pill warn\">keeping last members</span>"
            } else {
                ""
            };
            let held = if d.held.is_empty() {
                String::new()
            } else {
                let each: Vec<String> = d
                    .held
                    .iter()
                    .map(|h| format!("{} ({})", esc(&h.address), h.reason))
                    .collect();
                format!(
                    " · <span class=\"pill warn\">{} held by protect: {}</span>",
                    d.held.len(),
                    each.join(", ")
                )
            };
            let invalid = if d.invalid_members > 0 {
                format!(
                    " · <span class=\"pill bad\">{} invalid</span>",
                    d.invalid_members
                )
            } else {
                String::new()
            };
            format!(
                " &nbsp; ZooKeeper {} ({}, {sync}){kept}{held}{invalid}",
                esc(&d.path),
                d.format
            )
        }
    };
    page.push_str(&format!(
        "<h2>Backend {} &nbsp; {health}{panic}</h2><div class=\"meta\">{} · balance {}{source}</div>",
        esc(&backend.name),
        backend.mode,
        esc(&backend.balance)
    ));
    page.push_str("<table><tr><th>server</th><th>source</th><th>state</th><th>weight</th><th>health</th><th>active</th><th>requests</th><th>check failures</th></tr>");
    for server in &backend.servers {
        server_row(page, server);
    }
    let class = |name: &str| backend.responses.get(name).copied().unwrap_or(0);
    let (c1, c2, c3, c4, c5) = (
        class("1xx"),
        class("2xx"),
        class("3xx"),
        class("4xx"),
        class("5xx"),
    );
    let mean = backend
        .mean_response_ms
        .map_or("–".to_owned(), |ms| format!("{ms:.1} ms"));
    page.push_str(&format!(
        "<tr class=\"total\"><td colspan=\"8\">responses 1xx {c1} · 2xx {c2} · 3xx {c3} · 4xx {c4} · 5xx {c5} &nbsp; mean response {mean} &nbsp; connect errors {} · retries {} · no server {}</td></tr></table>",
        backend.connect_errors,
        backend.retries,
        backend.no_server
    ));
}

fn server_row(page: &mut String, server: &ServerStatus) {
    let class = if server.state == "maint" {
        "maint"
    } else if server.state == "drain" {
        "drain"
    } else if server.up {
        "up"
    } else {
        "down"
    };
    let health = match (server.ejected, server.health) {
        (true, _) => "<span class=\"pill bad\">ejected</span>",
        (false, "up") => "<span class=\"pill ok\">up</span>",
        (false, "down") => "<span class=\"pill bad\">down</span>",
        (false, "unknown") => "<span class=\"pill warn\">checking</span>",
        _ => "<span class=\"muted\">not checked</span>",
    };
    page.push_str(&format!(
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{health}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&server.address),
        server.source,
        server.state,
        server.weight,
        server.active_requests,
        server.requests_total,
        server.health_check_failures
    ));
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
