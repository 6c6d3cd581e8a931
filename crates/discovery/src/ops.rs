//! Reading and writing members, for `zkgate server list|add|set|remove` and
//! `zkgate register`. Writes use zkgate's native format; `set` is a versioned
//! read-modify-write, so concurrent edits never silently lose one another.

use zkgate_config::{AdminState, MemberFormat, ServerAddress, ServerConfig};
use zookeeper_client::{Acls, Client, CreateMode, Error, Stat};

use crate::format::{self, encode_native};

/// Why an operation failed, in words for a one-line CLI error.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// ZooKeeper refused or failed.
    #[error("ZooKeeper: {0}")]
    ZooKeeper(#[from] Error),
    /// No member with that address.
    #[error("no member {address} under {path}")]
    NotFound {
        /// The address asked for.
        address: String,
        /// The backend path.
        path: String,
    },
    /// The member exists already.
    #[error("{0} is already registered; change it with `zkgate server set`")]
    Exists(String),
    /// The member was written by another tool in another format.
    #[error("{0} is not in zkgate's format ({1}); change it with the tool that registered it")]
    Foreign(String, String),
    /// Too many concurrent writers.
    #[error("{0} kept changing under us; try again")]
    Contended(String),
}

/// One child of a backend path, as `server list` shows it.
#[derive(Debug)]
pub struct Listed {
    /// The znode name.
    pub name: String,
    /// The member, if some format understands it.
    pub member: Option<(MemberFormat, ServerConfig)>,
    /// Ephemeral znode (goes away with its session).
    pub ephemeral: bool,
}

/// ACLs for nodes zkgate creates: open, or the creator's alone when authenticated.
fn acls(authenticated: bool) -> Acls<'static> {
    if authenticated {
        Acls::creator_all()
    } else {
        Acls::anyone_all()
    }
}

/// Every child of `path`, decoded when possible.
pub async fn list(client: &Client, path: &str) -> Result<Vec<Listed>, OpsError> {
    let mut children = client.list_children(path).await?;
    children.sort();
    let mut listed = Vec::with_capacity(children.len());
    for name in children {
        let (data, stat) = match client.get_data(&format!("{path}/{name}")).await {
            Ok(read) => read,
            Err(Error::NoNode) => continue,
            Err(err) => return Err(err.into()),
        };
        listed.push(Listed {
            member: format::sniff(&name, &data),
            ephemeral: stat.ephemeral_owner != 0,
            name,
        });
    }
    Ok(listed)
}

/// Registers `server` as `path/<address>` (creating `path` if needed).
pub async fn add(
    client: &Client,
    path: &str,
    server: &ServerConfig,
    ephemeral: bool,
    authenticated: bool,
) -> Result<String, OpsError> {
    let acls = acls(authenticated);
    match client
        .mkdir(path, &CreateMode::Persistent.with_acls(acls))
        .await
    {
        Ok(()) | Err(Error::NodeExists) => {}
        Err(err) => return Err(err.into()),
    }
    let node = format!("{path}/{}", server.address);
    let mode = if ephemeral {
        CreateMode::Ephemeral
    } else {
        CreateMode::Persistent
    };
    match client
        .create(&node, &encode_native(server), &mode.with_acls(acls))
        .await
    {
        Ok(_) => Ok(node),
        Err(Error::NodeExists) => Err(OpsError::Exists(node)),
        Err(err) => Err(err.into()),
    }
}

/// Finds the znode of `address`: named after it, or a native member holding it.
async fn find(client: &Client, path: &str, address: &ServerAddress) -> Result<String, OpsError> {
    let named = format!("{path}/{address}");
    if client.check_stat(&named).await?.is_some() {
        return Ok(named);
    }
    for listed in list(client, path).await? {
        if let Some((_, member)) = &listed.member {
            if &member.address == address {
                return Ok(format!("{path}/{}", listed.name));
            }
        }
    }
    Err(OpsError::NotFound {
        address: address.to_string(),
        path: path.to_owned(),
    })
}

/// Most read-modify-write rounds `set` tries before giving up.
const SET_ATTEMPTS: usize = 20;

/// Changes the weight and/or state of `address`, with a versioned write.
pub async fn set(
    client: &Client,
    path: &str,
    address: &ServerAddress,
    weight: Option<u32>,
    state: Option<AdminState>,
) -> Result<ServerConfig, OpsError> {
    let node = find(client, path, address).await?;
    let name = node.rsplit('/').next().unwrap_or_default().to_owned();
    for _ in 0..SET_ATTEMPTS {
        let (data, stat): (Vec<u8>, Stat) = match client.get_data(&node).await {
            Ok(read) => read,
            Err(Error::NoNode) => {
                return Err(OpsError::NotFound {
                    address: address.to_string(),
                    path: path.to_owned(),
                })
            }
            Err(err) => return Err(err.into()),
        };
        let mut member = match format::decode(MemberFormat::Zkgate, None, &name, &data) {
            Ok(format::Child::Member(member)) => member,
            _ => {
                let other = format::sniff(&name, &data)
                    .map_or("unreadable".to_owned(), |(f, _)| f.as_str().to_owned());
                return Err(OpsError::Foreign(node, other));
            }
        };
        if let Some(weight) = weight {
            member.weight = weight;
        }
        if let Some(state) = state {
            member.state = state;
        }
        match client
            .set_data(&node, &encode_native(&member), Some(stat.version))
            .await
        {
            Ok(_) => return Ok(member),
            // Someone else wrote in between: read their version and apply ours on top.
            Err(Error::BadVersion) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(OpsError::Contended(node))
}

/// Deletes the member with `address`.
pub async fn remove(
    client: &Client,
    path: &str,
    address: &ServerAddress,
) -> Result<String, OpsError> {
    let node = find(client, path, address).await?;
    match client.delete(&node, None).await {
        Ok(()) => Ok(node),
        Err(Error::NoNode) => Err(OpsError::NotFound {
            address: address.to_string(),
            path: path.to_owned(),
        }),
        Err(err) => Err(err.into()),
    }
}
