//! Reading and writing members, for `zkgate server list|add|set|remove` and
//! `zkgate register`. Writes use zkgate's native format; `set` is a versioned
//! read-modify-write, so concurrent edits never silently lose one another.

use zkgate_config::{AdminState, MemberFormat, ServerAddress, ServerConfig};
use zookeeper_client::{Acls, Client, CreateMode, Error, Stat};

use crate::directives::with_directive;
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
    #[error("{0} is not in zkgate's format ({1}); change it with the tool that registered it (`zkgate server remove --force` deletes it anyway)")]
    Foreign(String, String),
    /// Too many concurrent writers.
    #[error("{0} kept changing under us; try again")]
    Contended(String),
    /// The backend path does not exist.
    #[error("{0} does not exist")]
    NoPath(String),
    /// The backend path's data belongs to another tool.
    #[error("cannot write a directive on {0}: {1}")]
    NotOurs(String, String),
    /// The backend's members are in another tool's format.
    #[error("{path} holds members in the {format} format, which zkgate's members would not join (its backend reads one format); give --force to add anyway")]
    ForeignPath {
        /// The backend path.
        path: String,
        /// The format found there.
        format: &'static str,
    },
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
    /// Why no format understands it, when none does (the native decoder's word).
    pub unreadable: Option<String>,
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
    let mut children = match client.list_children(path).await {
        Ok(children) => children,
        Err(Error::NoNode) => return Err(OpsError::NoPath(path.to_owned())),
        Err(err) => return Err(err.into()),
    };
    children.sort();
    let mut listed = Vec::with_capacity(children.len());
    for name in children {
        let (data, stat) = match client.get_data(&format!("{path}/{name}")).await {
            Ok(read) => read,
            Err(Error::NoNode) => continue,
            Err(err) => return Err(err.into()),
        };
        let member = format::sniff(&name, &data);
        let unreadable = match &member {
            Some(_) => None,
            None => Some(
                match format::decode(MemberFormat::Zkgate, None, &name, &data) {
                    Err(why) => why,
                    Ok(_) => "no format reads it".to_owned(),
                },
            ),
        };
        listed.push(Listed {
            member,
            ephemeral: stat.ephemeral_owner != 0,
            unreadable,
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
    add_checked(client, path, server, ephemeral, authenticated, false).await
}

/// [`add`], refusing a path whose members are in another format unless
/// `force`.
pub async fn add_checked(
    client: &Client,
    path: &str,
    server: &ServerConfig,
    ephemeral: bool,
    authenticated: bool,
    force: bool,
) -> Result<String, OpsError> {
    if !force {
        refuse_foreign_path(client, path).await?;
    }
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

/// A path whose members another tool registered, in its own format: a
/// native member there would be skipped by the backend reading that format.
async fn refuse_foreign_path(client: &Client, path: &str) -> Result<(), OpsError> {
    let listed = match list(client, path).await {
        Ok(listed) => listed,
        // Created by `add`.
        Err(OpsError::NoPath(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    let foreign = listed.iter().find_map(|child| match &child.member {
        Some((format, _)) if *format != MemberFormat::Zkgate => Some(*format),
        _ => None,
    });
    match foreign {
        Some(format) => Err(OpsError::ForeignPath {
            path: path.to_owned(),
            format: format.as_str(),
        }),
        None => Ok(()),
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

/// Changes the weight and/or state of `address`, with a versioned write;
/// the member as written, and its znode (which may be named other than
/// after its address).
pub async fn set(
    client: &Client,
    path: &str,
    address: &ServerAddress,
    weight: Option<u32>,
    state: Option<AdminState>,
    force: bool,
) -> Result<(ServerConfig, String), OpsError> {
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
        let (member, patched) = match format::patch_native(&name, &data, weight, state) {
            Ok(patched) => patched,
            Err(_) => return Err(foreign(&node, &name, &data)),
        };
        let written = if force {
            forced(client, path, &name, |writer| {
                writer.add_set_data(&node, &patched, Some(stat.version))
            })
            .await
        } else {
            client
                .set_data(&node, &patched, Some(stat.version))
                .await
                .map(|_| ())
        };
        match written {
            Ok(()) => return Ok((member, node)),
            // Someone else wrote in between: read their version and apply ours on top.
            Err(Error::BadVersion) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(OpsError::Contended(node))
}

/// Deletes the member with `address`; one another tool registered (in
/// another format) only if `force`, as `set` will not change one either.
pub async fn remove(
    client: &Client,
    path: &str,
    address: &ServerAddress,
    force: bool,
) -> Result<String, OpsError> {
    let node = find(client, path, address).await?;
    if !force {
        let name = node.rsplit('/').next().unwrap_or_default();
        match client.get_data(&node).await {
            Ok((data, _)) => {
                if format::decode(MemberFormat::Zkgate, None, name, &data).is_err() {
                    return Err(foreign(&node, name, &data));
                }
            }
            Err(Error::NoNode) => {
                return Err(OpsError::NotFound {
                    address: address.to_string(),
                    path: path.to_owned(),
                })
            }
            Err(err) => return Err(err.into()),
        }
    }
    let name = node.rsplit('/').next().unwrap_or_default().to_owned();
    let deleted = if force {
        forced(client, path, &name, |writer| writer.add_delete(&node, None)).await
    } else {
        client.delete(&node, None).await
    };
    match deleted {
        Ok(()) => Ok(node),
        Err(Error::NoNode) => Err(OpsError::NotFound {
            address: address.to_string(),
            path: path.to_owned(),
        }),
        Err(err) => Err(err.into()),
    }
}

/// Makes a change of child `name` (added to the transaction by `change`)
/// together with a directive on `path` that names it forced, so that no
/// zkgate's mass-removal guard holds it. Where the path's data is another
/// tool's (not a JSON object), the change is made alone.
async fn forced<F>(client: &Client, path: &str, name: &str, change: F) -> Result<(), Error>
where
    F: Fn(&mut zookeeper_client::MultiWriter<'_>) -> Result<(), Error>,
{
    for _ in 0..SET_ATTEMPTS {
        let (data, stat) = client.get_data(path).await?;
        let Ok(directed) = with_directive(&data, false, Some(name)) else {
            let mut writer = client.new_multi_writer();
            change(&mut writer)?;
            return writer.commit().await.map(|_| ()).map_err(Into::into);
        };
        let mut writer = client.new_multi_writer();
        writer.add_set_data(path, &directed, Some(stat.version))?;
        change(&mut writer)?;
        match writer.commit().await {
            Ok(_) => return Ok(()),
            // The path's data changed in between (another directive): again.
            Err(zookeeper_client::MultiWriteError::OperationFailed { index: 0, .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::BadVersion)
}

/// Lets every member the mass-removal guard holds under `path` go, in
/// every zkgate watching it (a `release` directive on the path).
pub async fn release(client: &Client, path: &str) -> Result<(), OpsError> {
    for _ in 0..SET_ATTEMPTS {
        let (data, stat) = match client.get_data(path).await {
            Ok(read) => read,
            Err(Error::NoNode) => return Err(OpsError::NoPath(path.to_owned())),
            Err(err) => return Err(err.into()),
        };
        let directed = with_directive(&data, true, None)
            .map_err(|why| OpsError::NotOurs(path.to_owned(), why))?;
        match client.set_data(path, &directed, Some(stat.version)).await {
            Ok(_) => return Ok(()),
            Err(Error::BadVersion) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(OpsError::Contended(path.to_owned()))
}

/// The error for a member another tool wrote.
fn foreign(node: &str, name: &str, data: &[u8]) -> OpsError {
    let format = format::sniff(name, data).map_or("unreadable", |(f, _)| f.as_str());
    OpsError::Foreign(node.to_owned(), format.to_owned())
}
