//! The hand-over socket (`zkgate run --upgrade-socket PATH`): a Unix socket on
//! which a running zkgate hands its listening sockets to the next process
//! started with the same path. The new process starts by asking for them,
//! then serves the path itself for its own successor. Once the old process
//! gets SIGTERM it stops accepting and exits, but the sockets stay open in
//! the new one, so no connection on its way in is lost
//! ([`zkgate_proxy::handover`] says why that beats closing them).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zkgate_proxy::{handover, Inherited};

/// A request, from a process that connected, for copies of every listening socket.
pub type SocketsWanted = oneshot::Sender<Vec<OwnedFd>>;

/// Takes over the listening sockets of the zkgate serving `path`, if one
/// does, and says which process that is. Without one (or if it fails) the
/// new process binds afresh, which SO_REUSEPORT allows next to the old one.
pub async fn take_over(path: &Path) -> (Inherited, Option<u32>) {
    let socket_path = path.to_owned();
    let received = tokio::task::spawn_blocking(move || {
        let stream = match std::os::unix::net::UnixStream::connect(&socket_path) {
            Ok(stream) => stream,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(err),
        };
        // Who is at the other end: the process to wait for, or to outlive.
        let from = rustix::net::sockopt::socket_peercred(&stream)
            .ok()
            .map(|peer| peer.pid.as_raw_nonzero().get() as u32);
        handover::receive(&stream).map(|sockets| Some((sockets, from)))
    })
    .await
    .unwrap_or_else(|panicked| Err(io::Error::other(panicked)));
    match received {
        Ok(Some((inherited, from))) => {
            info!(path = %path.display(), sockets = inherited.len(), pid = from, "took over the previous process's listening sockets");
            (inherited, from)
        }
        Ok(None) => {
            info!(path = %path.display(), "no previous process on the upgrade socket");
            (Inherited::default(), None)
        }
        Err(err) => {
            warn!(path = %path.display(), error = %err, "could not take over the previous process's listening sockets; binding new ones");
            (Inherited::default(), None)
        }
    }
}

/// The upgrade socket this process serves.
pub struct HandoverSocket {
    path: PathBuf,
    /// The inode bound, to tell our socket file from a successor's.
    inode: u64,
    task: JoinHandle<()>,
}

impl HandoverSocket {
    /// Serves `path` (replacing the predecessor's socket file): each process
    /// that connects gets the sockets the control plane answers `wanted` with.
    pub fn serve(path: &Path, wanted: mpsc::Sender<SocketsWanted>) -> io::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a socket",
                ))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let listener = UnixListener::bind(path)?;
        // Whoever can connect can take the ports: the owner only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let inode = std::fs::metadata(path)?.ino();
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        warn!(error = %err, "upgrade socket: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (reply, sockets) = oneshot::channel();
                if wanted.send(reply).await.is_err() {
                    return;
                }
                let Ok(sockets) = sockets.await else { return };
                let sent = tokio::task::spawn_blocking(move || {
                    let stream = stream.into_std()?;
                    stream.set_nonblocking(false)?;
                    let fds: Vec<_> = sockets.iter().map(std::os::fd::AsFd::as_fd).collect();
                    handover::send(&stream, &fds).map(|()| fds.len())
                })
                .await
                .unwrap_or_else(|panicked| Err(io::Error::other(panicked)));
                match sent {
                    Ok(count) => info!(
                        sockets = count,
                        "handed the listening sockets to a new process"
                    ),
                    Err(err) => warn!(error = %err, "upgrade socket: hand-over failed"),
                }
            }
        });
        info!(path = %path.display(), "serving the upgrade socket");
        Ok(HandoverSocket {
            path: path.to_owned(),
            inode,
            task,
        })
    }
}

impl Drop for HandoverSocket {
    /// Stops serving, and removes the socket file unless a newer process
    /// has put its own there.
    fn drop(&mut self) {
        self.task.abort();
        if std::fs::metadata(&self.path).is_ok_and(|meta| meta.ino() == self.inode) {
            std::fs::remove_file(&self.path).ok();
        }
    }
}
