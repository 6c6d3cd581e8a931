//! `zkgate config push|pull`: keep the frontends/backends/defaults YAML in a
//! znode (`zookeeper.config_node`), which every zkgate watching it hot-reloads.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use zookeeper_client::{Acls, CreateMode, Error};

use super::{znode_path, ZkArgs};

/// `zkgate config …`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a YAML document of defaults/frontends/backends and store it in the node (a versioned write).
    Push {
        #[command(flatten)]
        zk: ZkArgs,
        /// The config node, like /zkgate/config.
        #[arg(long)]
        node: String,
        /// The document; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Print the document stored in the node.
    Pull {
        #[command(flatten)]
        zk: ZkArgs,
        /// The config node.
        #[arg(long)]
        node: String,
    },
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a `config` subcommand.
pub async fn run(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Push { zk, node, file } => {
            let node = znode_path(&node)?.to_owned();
            let (text, origin) = match file.as_deref() {
                None => (read_stdin()?, "<stdin>".to_owned()),
                Some(path) if path.as_os_str() == "-" => (read_stdin()?, "<stdin>".to_owned()),
                Some(path) => (
                    zkgate_config::files::read_config(path)
                        .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?,
                    path.display().to_string(),
                ),
            };
            // Validate against the ensemble it is pushed to, as zkgate will.
            let ensemble = zk.ensemble(SESSION_TIMEOUT)?;
            let base = format!("zookeeper:\n  connect: \"{}\"\n", ensemble.connect);
            if let Err(errors) = zkgate_config::parse_with_node(&base, &text, &origin) {
                eprintln!("{errors}");
                bail!("{origin} is invalid: nothing was pushed");
            }
            let client = zk.connect(SESSION_TIMEOUT).await?;
            let version = write(&client, &node, text.as_bytes(), zk.auth.is_some()).await?;
            println!("pushed {} bytes to {node} (version {version})", text.len());
            Ok(())
        }
        ConfigCommand::Pull { zk, node } => {
            let node = znode_path(&node)?;
            let client = zk.connect(SESSION_TIMEOUT).await?;
            match client.get_data(node).await {
                Ok((data, _)) => {
                    print!("{}", String::from_utf8_lossy(&data));
                    Ok(())
                }
                Err(Error::NoNode) => bail!("{node} does not exist: push a configuration first"),
                Err(err) => Err(err.into()),
            }
        }
    }
}

fn read_stdin() -> Result<String> {
    let limit = zkgate_config::files::MAX_CONFIG_BYTES;
    let mut text = String::new();
    std::io::stdin()
        .take(limit + 1)
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    if text.len() as u64 > limit {
        bail!("standard input holds more than the {limit} bytes a configuration may have");
    }
    Ok(text)
}

/// Creates or replaces the node's data; a concurrent writer makes this fail
/// rather than be overwritten silently.
async fn write(
    client: &zookeeper_client::Client,
    node: &str,
    data: &[u8],
    authenticated: bool,
) -> Result<i32> {
    let acls = if authenticated {
        Acls::creator_all()
    } else {
        Acls::anyone_all()
    };
    match client.get_data(node).await {
        Ok((_, stat)) => match client.set_data(node, data, Some(stat.version)).await {
            Ok(stat) => Ok(stat.version),
            Err(Error::BadVersion) => {
                bail!("{node} changed while pushing: pull it, review, and push again")
            }
            Err(err) => Err(err.into()),
        },
        Err(Error::NoNode) => {
            if let Some((parent, _)) = node.rsplit_once('/') {
                if !parent.is_empty() {
                    match client
                        .mkdir(parent, &CreateMode::Persistent.with_acls(acls))
                        .await
                    {
                        Ok(()) | Err(Error::NodeExists) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
            }
            match client
                .create(node, data, &CreateMode::Persistent.with_acls(acls))
                .await
            {
                Ok(_) => Ok(0),
                Err(Error::NodeExists) => {
                    bail!("{node} was created while pushing: pull it, review, and push again")
                }
                Err(err) => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}
