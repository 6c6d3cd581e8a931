//! Upgrading in place on SIGUSR2, as nginx does: the running process starts
//! its successor with the same command line (so the binary now at that
//! path), which takes the listening sockets over the upgrade socket, tells
//! systemd it is the service's main process, and once ready (as `/ready`
//! says) asks its predecessor to finish with SIGTERM. A successor that
//! fails to start leaves the running process serving as before.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{error, info, warn};

/// Set by a process in the successor it starts: its own PID.
const UPGRADE_FROM: &str = "ZKGATE_UPGRADE_FROM";

/// This process's place in a chain of upgrades.
#[derive(Default)]
pub struct Succession {
    /// The process that started this one for an upgrade, until asked to finish.
    predecessor: Option<u32>,
    /// Whether the successor this process started is still running.
    successor: Option<Arc<AtomicBool>>,
}

impl Succession {
    /// Reads whether this process was started for an upgrade. Only the
    /// parent is believed: a stale variable never signals another process.
    pub fn from_env() -> Self {
        let parent = std::os::unix::process::parent_id();
        let predecessor = std::env::var(UPGRADE_FROM)
            .ok()
            .and_then(|pid| pid.parse().ok())
            .filter(|&pid| pid == parent && pid > 1);
        Succession {
            predecessor,
            successor: None,
        }
    }

    /// Whether a successor started by this process is running: it is the
    /// service now, and this one only finishes its connections.
    pub fn handed_over(&self) -> bool {
        self.successor
            .as_ref()
            .is_some_and(|running| running.load(Ordering::Acquire))
    }

    /// SIGUSR2: starts the successor, unless one is starting already or
    /// there is no upgrade socket to hand the listeners over.
    pub fn start_successor(&mut self, handover_socket: bool) {
        if !handover_socket {
            warn!("SIGUSR2: an upgrade in place needs --upgrade-socket; ignored");
            return;
        }
        if self.handed_over() {
            warn!("SIGUSR2: a new process is already starting; ignored");
            return;
        }
        let mut args = std::env::args_os();
        let Some(program) = args.next() else {
            error!("SIGUSR2: cannot tell how this process was started; not upgrading");
            return;
        };
        let spawned = tokio::process::Command::new(&program)
            .args(args)
            .env(UPGRADE_FROM, std::process::id().to_string())
            .stdin(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                error!(program = %program.to_string_lossy(), error = %err, "SIGUSR2: cannot start the new process; carrying on");
                return;
            }
        };
        info!(
            pid = child.id().unwrap_or_default(),
            "upgrading: started a new process; this one finishes once it is ready"
        );
        let running = Arc::new(AtomicBool::new(true));
        self.successor = Some(Arc::clone(&running));
        tokio::spawn(async move {
            // Only reached if the successor ends before this process does.
            let status = child.wait().await;
            running.store(false, Ordering::Release);
            match status {
                Ok(status) => {
                    error!(%status, "upgrade failed: the new process exited; this one carries on")
                }
                Err(err) => {
                    error!(error = %err, "upgrade failed: lost the new process; this one carries on")
                }
            }
        });
    }

    /// This process is ready: its predecessor, if any, can finish.
    pub fn ready(&mut self) {
        let Some(pid) = self.predecessor.take() else {
            return;
        };
        let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
            return;
        };
        match rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
            Ok(()) => info!(
                pid = pid.as_raw_nonzero().get(),
                "ready: asked the previous process to finish"
            ),
            Err(err) => warn!(error = %err, "ready, but cannot signal the previous process"),
        }
    }
}
