//! Subcommands that talk to ZooKeeper.

pub mod config;
pub mod fleet;
pub mod register;
pub mod server;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use zkgate_config::{ServerAddress, ZookeeperConfig};
use zookeeper_client::Client;

/// `--zk` and `--zk-auth`, shared by every ZooKeeper subcommand.
#[derive(Args, Debug, Clone)]
pub struct ZkArgs {
    /// ZooKeeper servers, `host:port[,host:port…][/chroot]`.
    #[arg(long = "zk", value_name = "CONNECT")]
    pub connect: String,
    /// Digest credentials, `user:password`.
    #[arg(long = "zk-auth", value_name = "USER:PASSWORD")]
    pub auth: Option<String>,
}

/// How long a subcommand waits for ZooKeeper before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl ZkArgs {
    /// The ensemble as a `ZookeeperConfig` (chroot split off the connect string).
    pub fn ensemble(&self, session_timeout: Duration) -> Result<ZookeeperConfig> {
        let (hosts, chroot) = match self.connect.split_once('/') {
            Some((hosts, chroot)) => (hosts, Some(format!("/{chroot}"))),
            None => (self.connect.as_str(), None),
        };
        for host in hosts.split(',') {
            ServerAddress::parse(host.trim()).map_err(|why| anyhow::anyhow!("--zk: {why}"))?;
        }
        if let Some(auth) = &self.auth {
            if !auth.contains(':') {
                bail!("--zk-auth must be user:password");
            }
        }
        Ok(ZookeeperConfig {
            connect: hosts.to_owned(),
            chroot: chroot.filter(|c| c != "/"),
            config_node: None,
            fleet: None,
            session_timeout,
            auth: None,
        })
    }

    /// Connects, failing within a few seconds with one clear line.
    pub async fn connect(&self, session_timeout: Duration) -> Result<Client> {
        let ensemble = self.ensemble(session_timeout)?;
        zkgate_discovery::connect_with(&ensemble, self.auth.as_deref(), CONNECT_TIMEOUT)
            .await
            .map_err(anyhow::Error::msg)
    }
}

/// Checks a `--path` argument.
pub fn znode_path(path: &str) -> Result<&str> {
    if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.contains("//") {
        bail!("--path must be an absolute znode path like /services/web, not `{path}`");
    }
    Ok(path)
}

/// Parses a server address argument.
pub fn server_address(text: &str) -> Result<ServerAddress> {
    ServerAddress::parse(text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid server address `{text}`"))
}
