//! The `zkgate` command: run the proxy, check a configuration, edit
//! backends in ZooKeeper, or register a server as a sidecar.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zkgate_config::ConfigErrors;
use zkgate_control::{LoadedConfig, Workers};
use zkgate_tls::TlsMaterial;

use cli::register::{Check, Timing};
use cli::server::ServerCommand;

/// jemalloc: per-thread caches (each worker allocates without locks), and
/// freed pages handed back to the system as they age, so the resident size
/// follows the connections open rather than the most ever open.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `zkgate fleet …`
#[derive(Subcommand)]
enum FleetCommand {
    /// One line per live instance (name, zone, version, configuration
    /// generation, applied zxid per backend and its age), and a last line
    /// saying whether the fleet agrees.
    Status {
        #[command(flatten)]
        zk: cli::ZkArgs,
        /// The fleet's znode (`zookeeper.fleet.path`).
        #[arg(long)]
        path: String,
        /// The instances as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Layer-4/Layer-7 reverse proxy load balancer whose backends follow ZooKeeper.
#[derive(Parser)]
#[command(name = "zkgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "config/zkgate.yaml")]
        config: PathBuf,
        /// Threads serving connections [default: the cores zkgate may use].
        #[arg(long, env = "ZKGATE_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        /// Unix socket on which to take over the listening sockets of the
        /// zkgate already running with the same path, then hand them on to
        /// the next one: an upgrade that loses no connection.
        #[arg(long, env = "ZKGATE_UPGRADE_SOCKET", value_name = "PATH")]
        upgrade_socket: Option<PathBuf>,
    },
    /// Validate a configuration: print every error with file:line:col, exit 0 if valid, 1 if not.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "config/zkgate.yaml")]
        config: PathBuf,
    },
    /// Store (validated) or fetch the frontends/backends document kept in a ZooKeeper config node.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// List, add, change or remove servers of a backend in ZooKeeper.
    #[command(subcommand)]
    Server(ServerCommand),
    /// What the instances of a fleet announce (`zookeeper.fleet`).
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Keep an ephemeral member registered while a local health check passes (a sidecar, like Nerve).
    Register {
        #[command(flatten)]
        zk: cli::ZkArgs,
        /// The backend's znode, like /services/web.
        #[arg(long)]
        path: String,
        /// `host:port` to register.
        #[arg(long)]
        address: String,
        /// `http://host:port/path` (2xx/3xx passes) or `tcp://host:port` (connect passes).
        #[arg(long)]
        check: String,
        /// Weight to register with, 0–256.
        #[arg(long, default_value = "1")]
        weight: u32,
        /// Time between checks.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Time one check may take.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Passing checks in a row before registering.
        #[arg(long, default_value = "2")]
        rise: u32,
        /// Failing checks in a row before deregistering.
        #[arg(long, default_value = "3")]
        fall: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run {
            config,
            workers,
            upgrade_socket,
        } => run(config, workers.map(usize::from), upgrade_socket),
        Command::Server(command) => block_on(cli::server::run(command)),
        Command::Fleet(FleetCommand::Status { zk, path, json }) => block_on(async move {
            let path = cli::znode_path(&path)?;
            let client = zk.connect(Duration::from_secs(10)).await?;
            cli::fleet::status(&client, path, json).await
        }),
        Command::Config(command) => block_on(cli::config::run(command)),
        Command::Register {
            zk,
            path,
            address,
            check,
            weight,
            interval,
            timeout,
            rise,
            fall,
        } => {
            init_logging();
            block_on(async move {
                if weight > zkgate_config::defaults::MAX_WEIGHT {
                    anyhow::bail!("--weight {weight} is out of range: use 0 to 256");
                }
                let server = zkgate_config::ServerConfig {
                    address: cli::server_address(&address)?,
                    weight,
                    state: zkgate_config::AdminState::Ready,
                    zone: None,
                };
                let path = cli::znode_path(&path)?.to_owned();
                let timing = Timing {
                    interval,
                    timeout,
                    rise: rise.max(1),
                    fall: fall.max(1),
                };
                cli::register::hold(zk, path, server, Check::parse(&check)?, timing).await
            })
        }
    }
}

/// A single-threaded runtime, or `None` with the reason printed.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|err| eprintln!("zkgate: cannot start the runtime: {err}"))
        .ok()
}

/// Runs a ZooKeeper subcommand; an error is one line and exit code 1.
fn block_on(task: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zkgate: {err:#}");
            // `--wait-fleet` gave up: the write was made, not yet applied everywhere.
            if err.downcast_ref::<cli::fleet::NotApplied>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ZKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The configuration at `path` with its TLS material, or every error found.
fn load(path: &std::path::Path) -> Result<LoadedConfig, ConfigErrors> {
    let (config, text) = zkgate_config::load(path)?;
    let tls = TlsMaterial::load(&config, &path.display().to_string())?;
    Ok(LoadedConfig {
        path: path.to_owned(),
        text,
        config,
        tls,
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok(LoadedConfig { config, .. }) => {
            println!(
                "{}: configuration is valid ({} frontends, {} backends)",
                path.display(),
                config.frontends.len(),
                config.backends.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.errors.len();
            eprintln!(
                "{}: {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs the proxy: the control plane on this thread, connections on `workers`
/// threads of their own (with one worker, on this thread too).
fn run(path: PathBuf, workers: Option<usize>, upgrade_socket: Option<PathBuf>) -> ExitCode {
    init_logging();
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    // Before anything that takes time: a signal sent while zkgate starts is
    // acted on once it runs, rather than ending it.
    let signals = match runtime.block_on(async { zkgate_control::Signals::install() }) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("zkgate: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("zkgate: not starting: the configuration is invalid");
            return ExitCode::FAILURE;
        }
    };
    let workers = match workers.unwrap_or_else(Workers::default_count) {
        1 => Ok(Workers::on(runtime.handle().clone())),
        count => Workers::start(count),
    };
    let workers = match workers {
        Ok(workers) => workers,
        Err(err) => {
            eprintln!("zkgate: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let plane =
            zkgate_control::ControlPlane::start(loaded, workers, upgrade_socket, signals).await?;
        plane.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zkgate: {err}");
            ExitCode::FAILURE
        }
    }
}
