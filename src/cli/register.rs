//! `zkgate register`: a sidecar, like Nerve. It keeps an ephemeral member in
//! ZooKeeper while a local health check passes (`rise` passes in a row) and
//! removes it while the check fails (`fall` failures in a row); the member
//! also vanishes by itself if this process dies, with its session.
//! `zkgate server add --ephemeral` is the same loop with a check that always passes.

use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};
use zkgate_config::ServerConfig;
use zkgate_discovery::ops;
use zookeeper_client::Client;

use super::ZkArgs;

/// What decides that the server is healthy.
#[derive(Debug, Clone)]
pub enum Check {
    /// Always healthy (`server add --ephemeral`).
    Always,
    /// A TCP connect to `host:port` succeeds.
    Tcp(String),
    /// A GET of this URL answers 2xx or 3xx.
    Http(http::Uri),
}

impl Check {
    /// Parses `tcp://host:port` or `http://host[:port]/path`.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(target) = text.strip_prefix("tcp://") {
            crate::cli::server_address(target)?;
            return Ok(Check::Tcp(target.to_owned()));
        }
        let uri: http::Uri = text
            .parse()
            .map_err(|_| anyhow::anyhow!("--check `{text}` is not a URL"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http"), Some(_)) => Ok(Check::Http(uri)),
            (Some("https"), _) => {
                bail!("--check: https is not supported; check the plain HTTP port or use tcp://")
            }
            _ => bail!("--check must be http://host[:port]/path or tcp://host:port, not `{text}`"),
        }
    }

    async fn passes(&self, timeout: Duration) -> bool {
        match self {
            Check::Always => true,
            Check::Tcp(target) => matches!(
                tokio::time::timeout(timeout, TcpStream::connect(target.as_str())).await,
                Ok(Ok(_))
            ),
            Check::Http(uri) => matches!(
                tokio::time::timeout(timeout, http_check(uri)).await,
                Ok(true)
            ),
        }
    }
}

async fn http_check(uri: &http::Uri) -> bool {
    let (Some(host), port) = (uri.host(), uri.port_u16().unwrap_or(80)) else {
        return false;
    };
    let Ok(stream) = TcpStream::connect((host, port)).await else {
        return false;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let Ok(request) = http::Request::get(path)
        .header("host", authority)
        .body(Empty::<Bytes>::new())
    else {
        return false;
    };
    match sender.send_request(request).await {
        Ok(response) => response.status().is_success() || response.status().is_redirection(),
        Err(_) => false,
    }
}

/// How often and how strictly to check.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between checks.
    pub interval: Duration,
    /// For one check.
    pub timeout: Duration,
    /// Passes in a row to register.
    pub rise: u32,
    /// Failures in a row to deregister.
    pub fall: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps `server` registered under `path` while `check` passes, until SIGINT/SIGTERM.
pub async fn hold(
    zk: ZkArgs,
    path: String,
    server: ServerConfig,
    check: Check,
    timing: Timing,
) -> Result<()> {
    let mut client = zk.connect(SESSION_TIMEOUT).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let always = matches!(check, Check::Always);
    // Start unhealthy so a fresh server must pass `rise` checks first.
    let (mut healthy, mut streak) = (always, 0u32);
    let mut node: Option<String> = None;
    let mut ticker = tokio::time::interval(timing.interval);
    if always {
        eprintln!(
            "registering {} under {path}; Ctrl-C removes it",
            server.address
        );
    }
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
        let passed = check.passes(timing.timeout).await;
        if passed == healthy {
            streak = 0;
        } else {
            streak += 1;
            let needed = if passed { timing.rise } else { timing.fall };
            if streak >= needed {
                healthy = passed;
                streak = 0;
                info!(server = %server.address, healthy, "health changed");
            }
        }
        if client.state().is_terminated() {
            warn!("ZooKeeper session ended; opening a new one");
            match zk.connect(SESSION_TIMEOUT).await {
                Ok(fresh) => {
                    client = fresh;
                    node = None;
                }
                Err(err) => {
                    warn!(error = %err, "cannot reconnect yet");
                    continue;
                }
            }
        }
        if healthy {
            ensure_registered(&client, &path, &server, zk.auth.is_some(), &mut node).await;
        } else if let Some(registered) = node.take() {
            match client.delete(&registered, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => {
                    info!(node = %registered, "deregistered: check failing")
                }
                Err(err) => {
                    warn!(node = %registered, error = %err, "cannot deregister yet");
                    node = Some(registered);
                }
            }
        }
    }
    if let Some(registered) = node {
        // The session closing removes an ephemeral node anyway; deleting first makes it immediate.
        if let Err(err) = client.delete(&registered, None).await {
            warn!(node = %registered, error = %err, "delete on exit failed; the session's end will remove it");
        }
        eprintln!("removed {registered}");
    }
    Ok(())
}

async fn ensure_registered(
    client: &Client,
    path: &str,
    server: &ServerConfig,
    authenticated: bool,
    node: &mut Option<String>,
) {
    if let Some(registered) = node.as_deref() {
        if matches!(client.check_stat(registered).await, Ok(Some(_))) {
            return;
        }
    }
    match ops::add(client, path, server, true, authenticated).await {
        Ok(created) => {
            info!(node = %created, "registered");
            *node = Some(created);
        }
        Err(ops::OpsError::Exists(existing)) => {
            // Ours only if this session made it (an ephemeral node it owns);
            // anyone else's is left alone: never changed, never deleted.
            match client.check_stat(&existing).await {
                Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => {
                    *node = Some(existing);
                }
                Ok(_) => warn!(
                    node = %existing,
                    "a member this registrar did not create holds the address; leaving it alone (not registering, and not deleting it on exit)"
                ),
                Err(err) => warn!(node = %existing, error = %err, "cannot register yet"),
            }
        }
        Err(err) => warn!(error = %err, "cannot register yet"),
    }
}
