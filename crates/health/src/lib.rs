//! Active health checks. One task per checked server, started and stopped by
//! the control plane as tables change; each writes its conclusion into the
//! server's shared state and reports transitions, so the control plane can
//! build a table without (or with) that server.
//!
//! A server nobody has checked yet is `Unknown` and takes no traffic: its
//! first check runs at once, and one pass brings it up (later it takes `rise`
//! passes in a row); `fall` failures in a row take it down.

mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zkgate_config::{AdminState, Config, HealthCheckConfig};
use zkgate_routing::{Health, RoutingTable, ServerState};

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
        }
    }

    /// Checks exactly the servers of `table` whose backend has a
    /// `health_check` in `config` (servers in maint are not checked).
    pub fn reconcile(&mut self, table: &RoutingTable, config: &Config) {
        let mut wanted: HashMap<Key, (HealthCheckConfig, Arc<ServerState>)> = HashMap::new();
        for backend in table.backends() {
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
        self.tasks.retain(|key, (config, task)| {
            let keep = wanted.get(key).is_some_and(|(check, _)| check == config);
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
