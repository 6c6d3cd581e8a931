//! The control plane: the single owner of change. It receives every input
//! (for now: the configuration file and signals), builds the next
//! [`RoutingTable`] off the data path, publishes it with one `ArcSwap`
//! store, and binds or unbinds listeners to match.

mod listeners;
mod resolve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};
use zkgate_admin::{Admin, Readiness};
use zkgate_config::Config;
use zkgate_proxy::Proxy;
use zkgate_routing::{Metrics, RoutingTable, TableBuilder};

use listeners::Listeners;

/// How long SIGTERM waits for in-flight requests before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why zkgate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Metrics could not be registered (a bug: names are fixed).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// The running control plane.
pub struct ControlPlane {
    config_path: PathBuf,
    config: Config,
    builder: TableBuilder,
    metrics: Metrics,
    table: Arc<ArcSwap<RoutingTable>>,
    proxy: Proxy,
    listeners: Listeners,
}

impl ControlPlane {
    /// Binds the admin listener and every frontend, and publishes the first table.
    pub async fn start(config_path: PathBuf, config: Config) -> Result<Self, StartError> {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry)?;
        let readiness = Readiness::not_ready("listeners are not bound yet");
        let admin_socket =
            zkgate_proxy::bind(config.admin.bind).map_err(|source| StartError::Bind {
                address: config.admin.bind,
                source,
            })?;
        let admin = Admin {
            registry,
            readiness: Arc::clone(&readiness),
        };
        tokio::spawn(async move {
            if let Err(err) = admin.serve(admin_socket).await {
                error!(error = %err, "admin listener failed");
            }
        });

        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::empty()));
        let proxy = Proxy::new(Arc::clone(&table));
        let mut plane = ControlPlane {
            config_path,
            config: config.clone(),
            builder: TableBuilder::new(metrics.clone()),
            metrics,
            table,
            proxy,
            listeners: Listeners::default(),
        };
        let next = plane.build(&config).await;
        let bound = plane
            .listeners
            .bind_new(&config, &mut plane.builder)
            .map_err(|(address, source)| StartError::Bind { address, source })?;
        plane.publish(next);
        plane.listeners.commit(bound, &plane.proxy);
        readiness.set(Vec::new());
        Ok(plane)
    }

    /// Handles signals until SIGTERM or SIGINT, then drains and returns.
    pub async fn run(mut self) -> Result<(), StartError> {
        let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
        loop {
            tokio::select! {
                _ = hangup.recv() => self.reload().await,
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        info!(
            connections = self.proxy.connections.count(),
            "shutting down: no longer accepting"
        );
        self.listeners.stop_all();
        let left = self.proxy.connections.drain(SHUTDOWN_GRACE).await;
        if left > 0 {
            warn!(
                connections = left,
                "grace period over; closing remaining connections"
            );
        }
        Ok(())
    }

    /// Re-reads the configuration file; an invalid one leaves everything as it was.
    async fn reload(&mut self) {
        info!(path = %self.config_path.display(), "reloading configuration");
        let config = match zkgate_config::load(&self.config_path) {
            Ok(config) => config,
            Err(errors) => {
                error!("reload refused, the running configuration stays in service:\n{errors}");
                self.metrics.count_reload("error");
                return;
            }
        };
        if config.admin.bind != self.config.admin.bind {
            warn!("admin.bind changed: it takes effect at the next restart");
        }
        let bound = match self.listeners.bind_new(&config, &mut self.builder) {
            Ok(bound) => bound,
            Err((address, err)) => {
                error!(%address, error = %err, "reload refused: cannot listen; the running configuration stays in service");
                self.metrics.count_reload("error");
                return;
            }
        };
        let next = self.build(&config).await;
        self.publish(next);
        self.listeners.commit(bound, &self.proxy);
        self.config = config;
        self.metrics.count_reload("ok");
    }

    async fn build(&mut self, config: &Config) -> RoutingTable {
        let resolved = resolve::resolve_servers(config).await;
        self.builder.build(config, &resolved)
    }

    fn publish(&self, table: RoutingTable) {
        let generation = table.generation;
        let started = Instant::now();
        self.table.store(Arc::new(table));
        self.metrics.table_generation.set(generation as i64);
        self.metrics.table_swaps.inc();
        info!(
            generation,
            swap_us = started.elapsed().as_micros() as u64,
            "routing table published"
        );
    }

    /// The addresses being listened on (bound ports included when the
    /// configuration asked for port 0).
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listeners.addresses()
    }
}
