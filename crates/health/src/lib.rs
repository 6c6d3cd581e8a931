//! Active health checks. One task per checked server, started and stopped by
//! the control plane as tables change; each writes its conclusion into the
//! server's shared state and reports transitions, so the control plane can
//! build a table without (or with) that server.
//!
//! A server nobody has checked yet is `Unknown` and takes no traffic: its
//! first check runs at once, and one pass brings it up (later it takes `rise`
//! passes in a row); `fall` failures in a row take it down.

mod probe;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zkgate_config::{AdminState, Config, HealthCheckConfig};
use zkgate_routing::{Backend, Health, RoutingTable, ServerState};

pub use probe::probe;

/// A server whose health changed.
#[derive(Debug)]
pub struct HealthEvent {
    /// Its backend.
    pub backend: Arc<str>,
    /// Its address.
    pub address: SocketAddr,
    /// The new conclusion.
    pub health: Health,
}

type Key = (Arc<str>, SocketAddr);

/// The running checks; dropping this stops them.
pub struct HealthChecks {
    tasks: HashMap<Key, (HealthCheckConfig, JoinHandle<()>)>,
    events: mpsc::Sender<HealthEvent>,
    /// The backends of the last table reconciled: one carried over into the
    /// next table unchanged (the same `Arc`, so the same servers and
    /// configuration) keeps its checks without a look at each server.
    last: HashMap<Arc<str>, Arc<Backend>>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for (_, (_, task)) in self.tasks.drain() {
            task.abort();
        }
    }
}

impl HealthChecks {
    /// No checks yet; transitions will be sent on `events`.
    pub fn new(events: mpsc::Sender<HealthEvent>) -> Self {
        HealthChecks {
            tasks: HashMap::new(),
            events,
            last: HashMap::new(),
        }
    }

    /// Checks exactly the servers of `table` whose backend has a
    /// `health_check` in `config` (servers in maint are not checked).
    pub fn reconcile(&mut self, table: &RoutingTable, config: &Config) {
        let mut wanted: HashMap<Key, (HealthCheckConfig, Arc<ServerState>)> = HashMap::new();
        let mut unchanged: HashSet<Arc<str>> = HashSet::new();
        let mut last = HashMap::with_capacity(table.backends().len());
        for backend in table.backends() {
            last.insert(Arc::clone(&backend.name), Arc::clone(backend));
            if self
                .last
                .get(&backend.name)
                .is_some_and(|before| Arc::ptr_eq(before, backend))
            {
                unchanged.insert(Arc::clone(&backend.name));
                continue;
            }
            let Some(check) = config
                .backend(&backend.name)
                .and_then(|b| b.health_check.clone())
            else {
                continue;
            };
            for server in backend
                .servers
                .iter()
                .filter(|s| s.admin != AdminState::Maint)
            {
                let key = (Arc::clone(&backend.name), server.address());
                wanted.insert(key, (check.clone(), Arc::clone(&server.state)));
            }
        }
        self.last = last;
        self.tasks.retain(|key, (config, task)| {
            let keep = unchanged.contains(&key.0)
                || wanted.get(key).is_some_and(|(check, _)| check == config);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, (check, state)) in wanted {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let task = tokio::spawn(check_loop(
                Arc::clone(&key.0),
                state,
                check.clone(),
                self.events.clone(),
            ));
            self.tasks.insert(key, (check, task));
        }
    }

    /// Servers being checked.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Up to ±10% of `interval`, so checks of many servers do not beat in step.
fn jittered(interval: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let spread = interval.as_nanos() as u64 / 10;
    if spread == 0 {
        return interval;
    }
    let offset = *seed % (2 * spread);
    Duration::from_nanos(interval.as_nanos() as u64 - spread + offset)
}

async fn check_loop(
    backend: Arc<str>,
    state: Arc<ServerState>,
    config: HealthCheckConfig,
    events: mpsc::Sender<HealthEvent>,
) {
    // A (re)started check knows nothing yet.
    state.health.set(Health::Unknown);
    let mut seed =
        0x2545_f491_4f6c_dd1d ^ u64::from(state.address.port()) ^ (state.label.len() as u64) << 32;
    let (mut passes, mut failures) = (0u32, 0u32);
    let mut health = Health::Unknown;
    loop {
        let result = probe(state.address, &config).await;
        if result.is_ok() {
            passes += 1;
            failures = 0;
        } else {
            failures += 1;
            passes = 0;
            state.health_check_failures.inc();
        }
        let next = match (health, &result) {
            (Health::Unknown, Ok(())) => Health::Up,
            (Health::Down, Ok(())) if passes >= config.rise => Health::Up,
            (Health::Unknown | Health::Up, Err(_)) if failures >= config.fall => Health::Down,
            _ => health,
        };
        if next != health {
            match &result {
                Ok(()) => {
                    info!(%backend, server = %state.address, "health check passing: server up")
                }
                Err(why) => {
                    warn!(%backend, server = %state.address, "health check failing ({why}): server down")
                }
            }
            health = next;
            if health == Health::Up {
                // Slow start ramps from here.
                state.ready_since_ms.store(
                    zkgate_routing::clock::now_ms(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            state.health.set(health);
            let event = HealthEvent {
                backend: Arc::clone(&backend),
                address: state.address,
                health,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(jittered(config.interval, &mut seed)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use zkgate_config::{AdminState, ServerAddress, ServerConfig};
    use zkgate_routing::{Changed, Discovered, TableBuilder};

    use super::*;

    const CONFIG: &str = "frontends:\n  web:\n    bind: [\"127.0.0.1:18080\"]\n    default_backend: a\nbackends:\n  a:\n    health_check: { kind: http, path: /healthz, interval: 1h }\n    servers: []\n  b:\n    health_check: { kind: http, path: /healthz, interval: 1h }\n    servers: []\n";

    fn members(ports: &[u16]) -> Vec<ServerConfig> {
        ports
            .iter()
            .map(|port| ServerConfig {
                address: ServerAddress::parse(&format!("127.0.0.1:{port}")).unwrap(),
                weight: 1,
                state: AdminState::Ready,
                zone: None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_change_to_one_backend_leaves_the_others_checks_running() {
        let config = zkgate_config::parse(CONFIG, "t").unwrap();
        let metrics = zkgate_metrics::Metrics::register(&prometheus::Registry::new()).unwrap();
        let mut builder = TableBuilder::new(metrics);
        let (events, _received) = mpsc::channel(16);
        let mut checks = HealthChecks::new(events);
        let (a, b, a_after) = (members(&[1, 2, 3]), members(&[4, 5]), members(&[1, 3]));
        let mut discovered: Discovered = [
            ("a".into(), a.iter().collect()),
            ("b".into(), b.iter().collect()),
        ]
        .into();
        let first = builder.build(&config, &discovered, &Default::default());
        checks.reconcile(&first, &config);
        assert_eq!(checks.len(), 5);
        let task_of = |checks: &HealthChecks, port: u16| {
            let key: Key = ("b".into(), ([127, 0, 0, 1], port).into());
            checks.tasks.get(&key).map(|(_, task)| task.id())
        };
        let b_task = task_of(&checks, 4);

        // Backend a loses a server; b is carried over and keeps its tasks.
        discovered.insert("a".into(), a_after.iter().collect());
        let changed: HashSet<String> = ["a".to_owned()].into();
        let second = builder.build_changed(
            &config,
            &discovered,
            &Default::default(),
            Changed::Backends(&changed),
        );
        checks.reconcile(&second, &config);
        assert_eq!(checks.len(), 4);
        assert_eq!(task_of(&checks, 4), b_task, "b's check was not restarted");

        // A backend gone takes its checks with it.
        let only_a = zkgate_config::parse(
            &CONFIG.replace("  b:\n    health_check: { kind: http, path: /healthz, interval: 1h }\n    servers: []\n", ""),
            "t",
        )
        .unwrap();
        let third = builder.build(&only_a, &discovered, &Default::default());
        checks.reconcile(&third, &only_a);
        assert_eq!(checks.len(), 2);
    }
}
