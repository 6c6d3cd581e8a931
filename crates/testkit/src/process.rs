//! A zkgate process started from its binary with a configuration file in a
//! temporary directory, for end-to-end tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::http_get;
use crate::ports::free_addr;
use crate::wait::wait_until;

/// A running zkgate; killed on drop.
pub struct Zkgate {
    /// The admin listener.
    pub admin: SocketAddr,
    dir: TempDir,
    process: Option<Child>,
}

impl Zkgate {
    /// Starts `binary` with `config` (YAML without an `admin:` section: one on
    /// a free port is added) and waits until `/ready` answers 200.
    pub async fn start(binary: &str, config: &str) -> Self {
        Self::start_until(binary, config, "/ready", &[]).await
    }

    /// Like [`Zkgate::start`], with these environment variables set (say,
    /// `ZKGATE_WORKERS=1`, for a test about what one worker thread keeps).
    pub async fn start_with_env(binary: &str, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_until(binary, config, "/ready", env).await
    }

    /// Like [`Zkgate::start`], but only waits for `/healthz` (the process is
    /// up; it may not be ready).
    pub async fn start_alive(binary: &str, config: &str) -> Self {
        Self::start_until(binary, config, "/healthz", &[]).await
    }

    /// Like [`Zkgate::start_alive`], with these environment variables set.
    pub async fn start_alive_with_env(binary: &str, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_until(binary, config, "/healthz", env).await
    }

    async fn start_until(binary: &str, config: &str, probe: &str, env: &[(&str, &str)]) -> Self {
        let mut zkgate = Self::spawn_with_env(binary, config, env);
        zkgate.wait_for(probe).await;
        zkgate
    }

    /// Starts `binary` as [`Zkgate::start_with_env`] does, without waiting
    /// for anything: for a test about what happens while it starts.
    pub fn spawn_with_env(binary: &str, config: &str, env: &[(&str, &str)]) -> Self {
        let admin = free_addr();
        let dir = tempfile::Builder::new()
            .prefix("zkgate-run-")
            .tempdir()
            .expect("temp dir");
        let mut zkgate = Zkgate {
            admin,
            dir,
            process: None,
        };
        std::fs::write(zkgate.config_path(), zkgate.with_admin(config)).expect("write config");
        let log = std::fs::File::create(zkgate.log_path()).expect("log file");
        let child = Command::new(binary)
            .arg("run")
            .arg("-c")
            .arg(zkgate.config_path())
            .env("ZKGATE_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start zkgate");
        zkgate.process = Some(child);
        zkgate
    }

    /// Waits until `/ready` answers 200; panics if zkgate exits first.
    pub async fn wait_ready(&mut self) {
        self.wait_for("/ready").await
    }

    fn with_admin(&self, config: &str) -> String {
        format!("admin:\n  bind: {}\n{config}", self.admin)
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("zkgate.yaml")
    }

    /// zkgate's log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("zkgate.log")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn wait_for(&mut self, probe: &str) {
        let admin = self.admin;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(reply) = http_get(admin, probe).await {
                if reply.status == 200 {
                    return;
                }
            }
            if let Some(status) = self
                .process
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten())
            {
                panic!(
                    "zkgate exited with {status} before it was ready; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "zkgate not ready after 20s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the signal `name` (`HUP`, `USR2`, …).
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// Writes a new configuration (an `admin:` section is added) and sends
    /// SIGHUP; returns once zkgate logged the outcome.
    pub async fn reload(&self, config: &str) {
        let before = self.reload_outcomes();
        self.send_reload(config);
        wait_until(
            "zkgate to finish the reload",
            Duration::from_secs(10),
            || async { (self.reload_outcomes() > before).then_some(()) },
        )
        .await;
    }

    /// Writes a new configuration (an `admin:` section is added) and sends
    /// SIGHUP, without waiting for the outcome.
    pub fn send_reload(&self, config: &str) {
        std::fs::write(self.config_path(), self.with_admin(config)).expect("write config");
        self.signal("HUP");
    }

    fn reload_outcomes(&self) -> usize {
        let log = self.log();
        log.matches("reload refused").count() + log.matches("configuration reloaded").count()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .await
            .expect("scrape /metrics")
            .text()
    }

    /// The value of one metric series, like `zkgate_routing_table_generation`
    /// or `zkgate_frontend_requests_total{frontend="web"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines().find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.process
            .take()
            .expect("zkgate is running")
            .wait()
            .expect("wait for zkgate")
    }

    /// Waits, up to `within`, for the process to exit by itself.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.process.as_mut().expect("zkgate is running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for zkgate") {
                self.process = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "zkgate still running after {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("zkgate is running").id()
    }
}

impl Drop for Zkgate {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Sends the signal `name` (`TERM`, `INT`, …) to the running process `pid`.
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}
