//! `zkgate server list|add|set|remove|release`: edit a backend's members in
//! ZooKeeper, and let go the members a mass-removal guard holds.

use std::time::Duration;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use zkgate_config::{AdminState, ServerConfig};
use zkgate_discovery::ops;

use super::{register, server_address, znode_path, ZkArgs};

/// A server's state as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// Takes traffic.
    Ready,
    /// No new traffic; sticky and in-flight traffic finishes.
    Drain,
    /// No traffic.
    Maint,
}

impl From<StateArg> for AdminState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Ready => AdminState::Ready,
            StateArg::Drain => AdminState::Drain,
            StateArg::Maint => AdminState::Maint,
        }
    }
}

fn weight(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(w) if w <= 256 => Ok(w),
        _ => Err(format!("`{text}` is not a weight: use 0 to 256")),
    }
}

/// `--wait-fleet P [--timeout D]`: after the write, wait until every
/// instance announced under `P` that watches the path has applied it.
#[derive(clap::Args, Debug, Clone)]
pub struct WaitFleet {
    /// The fleet's znode (`zookeeper.fleet.path`); exit 3 naming the
    /// instances that have not applied the change within `--timeout`.
    #[arg(long = "wait-fleet", value_name = "PATH")]
    pub fleet: Option<String>,
    /// How long `--wait-fleet` waits.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, requires = "fleet")]
    pub timeout: Duration,
}

impl WaitFleet {
    /// Waits as asked for the write to `node` (or `path`'s children).
    async fn after(
        &self,
        client: &zookeeper_client::Client,
        path: &str,
        node: Option<&str>,
    ) -> Result<()> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let fleet = znode_path(fleet)?;
        let zxid = super::fleet::zxid_of_write(client, path, node).await?;
        super::fleet::wait(client, fleet, path, zxid, self.timeout).await?;
        println!("applied by every instance under {fleet} that watches {path}");
        Ok(())
    }
}

/// `zkgate server …`
#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// List the members under a backend path: address, weight, state, format, ephemeral or not.
    List {
        #[command(flatten)]
        zk: ZkArgs,
        /// The backend's znode, like /services/web.
        #[arg(long)]
        path: String,
    },
    /// Register a server (zkgate's native format).
    Add {
        #[command(flatten)]
        zk: ZkArgs,
        /// The backend's znode.
        #[arg(long)]
        path: String,
        /// `host:port` of the server.
        address: String,
        /// 0–256; 0 takes no new traffic.
        #[arg(long, default_value = "1", value_parser = weight)]
        weight: u32,
        /// ready, drain or maint.
        #[arg(long, value_enum, default_value = "ready")]
        state: StateArg,
        /// The zone the server runs in (for backends with `locality`).
        #[arg(long)]
        zone: Option<String>,
        /// Make the member ephemeral and stay attached until Ctrl-C.
        #[arg(long)]
        ephemeral: bool,
        /// Add even where the members are in another tool's format (the
        /// backend reading that format will skip this one).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitFleet,
    },
    /// Change a server's weight and/or state (a versioned write: concurrent edits are not lost).
    Set {
        #[command(flatten)]
        zk: ZkArgs,
        /// The backend's znode.
        #[arg(long)]
        path: String,
        /// `host:port` of the server.
        address: String,
        /// New weight, 0–256.
        #[arg(long, value_parser = weight)]
        weight: Option<u32>,
        /// New state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Make the change take effect at once, even where a backend's
        /// mass-removal guard (`protect`) would hold it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitFleet,
    },
    /// Delete a server's member.
    Remove {
        #[command(flatten)]
        zk: ZkArgs,
        /// The backend's znode.
        #[arg(long)]
        path: String,
        /// `host:port` of the server.
        address: String,
        /// Delete it even if another tool registered it (in another
        /// format), and take it out of service at once, even where a
        /// backend's mass-removal guard (`protect`) would hold it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitFleet,
    },
    /// Let go every member the mass-removal guard (`protect`) holds under a
    /// backend path, in every zkgate watching it.
    Release {
        #[command(flatten)]
        zk: ZkArgs,
        /// The backend's znode.
        #[arg(long)]
        path: String,
    },
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a `server` subcommand.
pub async fn run(command: ServerCommand) -> Result<()> {
    match command {
        ServerCommand::List { zk, path } => {
            let path = znode_path(&path)?;
            let client = zk.connect(SESSION_TIMEOUT).await?;
            let listed = ops::list(&client, path).await?;
            print_members(&listed);
            if listed.is_empty() {
                eprintln!("no members under {path}");
            }
            Ok(())
        }
        ServerCommand::Add {
            zk,
            path,
            address,
            weight,
            state,
            zone,
            ephemeral,
            force,
            wait,
        } => {
            let path = znode_path(&path)?.to_owned();
            let zone = zone
                .as_deref()
                .map(zkgate_config::zone_name)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let server = ServerConfig {
                address: server_address(&address)?,
                weight,
                state: state.into(),
                zone,
            };
            if ephemeral {
                return register::hold(
                    zk,
                    path,
                    server,
                    register::Check::Always,
                    register::Timing::default(),
                )
                .await;
            }
            let client = zk.connect(SESSION_TIMEOUT).await?;
            let authenticated = zk.auth.is_some();
            let node =
                ops::add_checked(&client, &path, &server, false, authenticated, force).await?;
            println!(
                "added {node} (weight {}, {})",
                server.weight,
                server.state.as_str()
            );
            wait.after(&client, &path, Some(&node)).await
        }
        ServerCommand::Set {
            zk,
            path,
            address,
            weight,
            state,
            force,
            wait,
        } => {
            let path = znode_path(&path)?;
            if weight.is_none() && state.is_none() {
                anyhow::bail!("nothing to change: give --weight and/or --state");
            }
            let address = server_address(&address)?;
            let client = zk.connect(SESSION_TIMEOUT).await?;
            let state = state.map(Into::into);
            let (server, node) = ops::set(&client, path, &address, weight, state, force).await?;
            println!(
                "{} now has weight {}, {}",
                server.address,
                server.weight,
                server.state.as_str()
            );
            // The member's own znode, whatever its name: its data's zxid is the write's.
            wait.after(&client, path, Some(&node)).await
        }
        ServerCommand::Remove {
            zk,
            path,
            address,
            force,
            wait,
        } => {
            let path = znode_path(&path)?;
            let address = server_address(&address)?;
            let client = zk.connect(SESSION_TIMEOUT).await?;
            let node = ops::remove(&client, path, &address, force).await?;
            println!("removed {node}");
            wait.after(&client, path, None).await
        }
        ServerCommand::Release { zk, path } => {
            let path = znode_path(&path)?;
            let client = zk.connect(SESSION_TIMEOUT).await?;
            ops::release(&client, path).await?;
            println!("asked every zkgate watching {path} to let its held members go");
            Ok(())
        }
    }
}

/// `server list`'s table.
fn print_members(listed: &[ops::Listed]) {
    println!(
        "{:<24} {:>6}  {:<6} {:<12} {:<10} {:<9} ZNODE",
        "ADDRESS", "WEIGHT", "STATE", "ZONE", "FORMAT", "EPHEMERAL"
    );
    for member in listed {
        let ephemeral = if member.ephemeral { "yes" } else { "no" };
        match &member.member {
            Some((format, server)) => println!(
                "{:<24} {:>6}  {:<6} {:<12} {:<10} {:<9} {}",
                server.address.to_string(),
                server.weight,
                server.state.as_str(),
                server.zone.as_deref().unwrap_or("-"),
                format.as_str(),
                ephemeral,
                member.name
            ),
            None => println!(
                "{:<24} {:>6}  {:<6} {:<12} {:<10} {:<9} {}  ({})",
                "-",
                "-",
                "-",
                "-",
                "unreadable",
                ephemeral,
                member.name,
                member.unreadable.as_deref().unwrap_or("no format reads it")
            ),
        }
    }
}
