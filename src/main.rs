//! The `zkgate` command: run the proxy, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
    },
    /// Validate a configuration: print every error with file:line:col, exit 0 if valid, 1 if not.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "config/zkgate.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(config),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match zkgate_config::load(path) {
        Ok(config) => {
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

fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ZKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match zkgate_config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("zkgate: not starting: the configuration is invalid");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("zkgate: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let plane = zkgate_control::ControlPlane::start(path, config).await?;
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
