//! Where the configuration comes from — the file (SIGHUP) and the optional
//! ZooKeeper config node — and putting a new one in service, or refusing it
//! with the running one left untouched.

use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use zkgate_admin::Reload;
use zkgate_config::Config;
use zkgate_discovery::NodeText;
use zkgate_tls::TlsMaterial;

use crate::listeners::Bound;
use crate::{unix_now, ControlPlane};

/// The longest a reload waits for the ZooKeeper-backed backends it adds to
/// sync before it goes into service without their servers.
pub(crate) const WARM_UP: Duration = Duration::from_secs(5);

/// A valid configuration, its new listeners bound, waiting for the first
/// listing of the ZooKeeper-backed backends it adds or points elsewhere
/// (Envoy's cluster warming). The running table serves meanwhile, so no
/// route to such a backend answers 503 for want of servers ZooKeeper has.
pub(crate) struct Warming {
    bound: Bound,
    /// The backends whose first listing is awaited.
    awaiting: Vec<String>,
    until: Instant,
}

impl Warming {
    /// When the configuration goes into service even if not synced.
    pub(crate) fn until(&self) -> Instant {
        self.until
    }

    /// Whether `backend`'s first listing is being waited for.
    pub(crate) fn awaits(&self, backend: &str) -> bool {
        self.awaiting.iter().any(|name| name == backend)
    }
}

impl ControlPlane {
    /// Re-reads the configuration file; an invalid one leaves everything as it was.
    pub(crate) async fn reload(&mut self) {
        info!(path = %self.config_path.display(), "reloading configuration");
        match std::fs::read_to_string(&self.config_path) {
            Ok(text) => {
                self.file_text = text;
                self.apply_sources().await;
            }
            Err(err) => {
                error!(path = %self.config_path.display(), error = %err, "reload refused: cannot read the file");
                self.reload_failed(format!(
                    "{}: cannot read the file: {err}",
                    self.config_path.display()
                ));
            }
        }
    }

    /// The config node changed (or appeared, or vanished).
    pub(crate) async fn config_node_changed(&mut self, text: NodeText) {
        self.node_text = text;
        self.apply_sources().await;
    }

    /// Validates the file plus the config node (when there is one) and, if
    /// valid, puts the result in service.
    async fn apply_sources(&mut self) {
        let node = self
            .config
            .zookeeper
            .as_ref()
            .and_then(|zk| zk.config_node.clone());
        let origin = match (&node, &self.node_text) {
            (Some(node), Some(_)) => format!("zookeeper:{node}"),
            _ => self.config_path.display().to_string(),
        };
        let parsed = match (&node, &self.node_text) {
            (Some(_), Some(text)) => zkgate_config::parse_with_node(&self.file_text, text, &origin),
            _ => zkgate_config::parse(&self.file_text, &origin),
        };
        // Certificate files are re-read at every reload, so renewed ones take effect.
        let loaded = parsed.and_then(|config| {
            let tls = TlsMaterial::load(&config, &origin)?;
            Ok((config, tls))
        });
        match loaded {
            Ok((config, tls)) => self.apply(config, tls).await,
            Err(errors) => {
                error!("reload refused, the running configuration stays in service:\n{errors}");
                self.reload_failed(errors.to_string());
            }
        }
    }

    /// Puts a valid configuration in service; one whose listeners cannot be
    /// bound leaves everything as it was.
    async fn apply(&mut self, config: Config, tls: TlsMaterial) {
        // A newer configuration: the one warming up goes into service first,
        // so that this one is compared with (and binds beside) what runs.
        self.go_live_once_warm(true).await;
        if config.admin.bind != self.config.admin.bind {
            warn!("admin.bind changed: it takes effect at the next restart");
        }
        if config.access_log != self.config.access_log {
            warn!("access_log changed: it takes effect at the next restart");
        }
        let bound = match self.listeners.bind_new(
            &config,
            &mut self.builder,
            &mut Default::default(),
        ) {
            Ok(bound) => bound,
            Err((address, err)) => {
                error!(%address, error = %err, "reload refused: cannot listen; the running configuration stays in service");
                self.reload_failed(format!("cannot listen on {address}: {err}"));
                return;
            }
        };
        let previous = std::mem::replace(&mut self.config, config.clone());
        self.builder.set_tls(tls);
        self.resolver.forget();
        self.follow_zookeeper(Some(&previous));
        self.follow_config_node(Some(&previous));
        // Nothing to wait for from an ensemble known to be away.
        let zookeeper_away = previous.zookeeper == self.config.zookeeper
            && self.metrics.zookeeper_connected.get() == 0;
        // Only backends this configuration watches anew: one that has not
        // synced for another reason (say, a path it may not read) is no
        // reason to hold back every reload.
        let watch = |config: &Config, name: &str| {
            config
                .backend(name)
                .and_then(|backend| backend.discovery.clone())
        };
        let awaiting: Vec<String> = if zookeeper_away {
            Vec::new()
        } else {
            self.members
                .iter()
                .filter(|(name, members)| {
                    !members.synced && watch(&previous, name) != watch(&self.config, name)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        if !awaiting.is_empty() {
            info!(
                backends = ?awaiting,
                "configuration valid; in service once these backends have synced from ZooKeeper (at most {WARM_UP:?})"
            );
        }
        self.warming = Some(Warming {
            bound,
            awaiting,
            until: Instant::now() + WARM_UP,
        });
        self.go_live_once_warm(false).await;
    }

    /// Puts the configuration warming up in service once the backends it
    /// waits for have synced, or its time is up, or at once if `now`.
    pub(crate) async fn go_live_once_warm(&mut self, now: bool) {
        let Some(warming) = &self.warming else { return };
        let unsynced: Vec<&String> = warming
            .awaiting
            .iter()
            .filter(|name| self.members.get(*name).is_some_and(|m| !m.synced))
            .collect();
        if !unsynced.is_empty() {
            if !now && Instant::now() < warming.until {
                return;
            }
            warn!(
                backends = ?unsynced,
                "configuration going into service before these backends synced from ZooKeeper; they have no servers until they do"
            );
        }
        let Some(Warming { bound, .. }) = self.warming.take() else {
            return;
        };
        let config = self.config.clone();
        let next = self.build(&config).await;
        self.listeners.stop_moved(&bound).await;
        self.publish(next);
        self.listeners.commit(bound, &self.proxy);
        self.update_readiness();
        self.metrics.count_reload("ok");
        self.report.update(|facts| {
            facts.config_generation += 1;
            facts.last_reload = Some(Reload {
                result: "ok",
                error: None,
                at_unix: unix_now(),
            });
        });
        info!(
            generation = self.table.load().generation,
            "configuration reloaded"
        );
    }

    /// Starts, restarts or stops watching `zookeeper.config_node`.
    pub(crate) fn follow_config_node(&mut self, previous: Option<&Config>) {
        let node_of = |config: &Config| {
            let zk = config.zookeeper.as_ref()?;
            Some((zk.clone(), zk.config_node.clone()?))
        };
        let wanted = node_of(&self.config);
        if previous.map(node_of) == Some(wanted.clone()) {
            return;
        }
        if let Some(task) = self.config_node.take() {
            task.abort();
        }
        let source = match &wanted {
            Some((_, node)) => format!("{} + zookeeper:{node}", self.config_path.display()),
            None => self.config_path.display().to_string(),
        };
        self.report.update(|facts| facts.config_source = source);
        if let Some((zookeeper, node)) = wanted {
            info!(%node, "following the config node");
            self.config_node = Some(zkgate_discovery::watch_config_node(
                zookeeper,
                node,
                self.node_tx.clone(),
            ));
        } else {
            self.node_text = None;
        }
    }

    fn reload_failed(&self, error: String) {
        self.metrics.count_reload("error");
        self.report.update(|facts| {
            facts.last_reload = Some(Reload {
                result: "error",
                error: Some(error),
                at_unix: unix_now(),
            });
        });
    }
}
