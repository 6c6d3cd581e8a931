//! Real ZooKeeper servers from the Debian `zookeeper` package, on free
//! loopback ports with temporary data directories: standalone, or an
//! ensemble whose nodes can be killed and restarted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::free_port;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const INSTALL_HINT: &str =
    "install it with: sudo apt-get install -y zookeeper (./scripts/test.sh does this)";
/// How long a node may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Node {
    id: usize,
    client_port: u16,
    dir: PathBuf,
    process: Option<Child>,
}

/// The JVM of a test's servers: small and quick to start (many tests run
/// at once), not fast.
const TEST_JVM: &[&str] = &["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];
/// The JVM as ZooKeeper's own start script runs it (`zkEnv.sh`: a
/// 1,000 MB heap, the JVM's default collector and compilers), for
/// benchmarks that measure what the ensemble serves.
const SHIPPED_JVM: &[&str] = &["-Xmx1000m"];

/// One or more ZooKeeper servers; all are killed on drop.
pub struct ZooKeeper {
    _root: TempDir,
    jvm: &'static [&'static str],
    nodes: Vec<Node>,
}

impl ZooKeeper {
    /// A single standalone server, serving when this returns.
    pub fn standalone() -> Self {
        Self::start(1, TEST_JVM)
    }

    /// A 3-node ensemble with a leader elected when this returns.
    pub fn ensemble() -> Self {
        Self::start(3, TEST_JVM)
    }

    /// A 3-node ensemble whose JVMs run as ZooKeeper's start script runs
    /// them, rather than trimmed for tests: for benchmarks.
    pub fn ensemble_as_shipped() -> Self {
        Self::start(3, SHIPPED_JVM)
    }

    fn start(size: usize, jvm: &'static [&'static str]) -> Self {
        check_installed();
        let root = tempfile::Builder::new()
            .prefix("zkgate-zk-")
            .tempdir()
            .expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let mut nodes = Vec::new();
        for (i, &(client_port, _, _)) in ports.iter().enumerate() {
            let id = i + 1;
            let dir = root.path().join(format!("node{id}"));
            std::fs::create_dir_all(dir.join("data")).expect("data dir");
            std::fs::write(dir.join("data/myid"), format!("{id}\n")).expect("myid");
            let mut cfg = format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr,stat\n\
                 maxClientCnxns=0\nminSessionTimeout=1000\n",
                dir.join("data").display()
            );
            if size > 1 {
                cfg.push_str("standaloneEnabled=false\n");
                for (j, (_, peer, election)) in ports.iter().enumerate() {
                    cfg.push_str(&format!("server.{}=127.0.0.1:{peer}:{election}\n", j + 1));
                }
            }
            std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
            nodes.push(Node {
                id,
                client_port,
                dir,
                process: None,
            });
        }
        let mut zk = ZooKeeper {
            _root: root,
            jvm,
            nodes,
        };
        for i in 0..size {
            zk.spawn(i);
        }
        for i in 0..size {
            zk.wait_serving(i);
        }
        zk
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = std::fs::File::create(node.dir.join("zookeeper.log")).expect("log file");
        let child = Command::new("java")
            .args(self.jvm)
            .arg("-Dzookeeper.admin.enableServer=false")
            // Data dirs are temporary: no fsync per transaction. A killed
            // node's writes are still in the page cache, so failover tests
            // see what a real crash of the process leaves.
            .arg("-Dzookeeper.forceSync=no")
            .arg("-cp")
            .arg(ZOOKEEPER_JAR)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(node.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start java for ZooKeeper: {err}; {INSTALL_HINT}"));
        node.process = Some(child);
    }

    /// Blocks until node `index` answers `srvr` with a serving mode.
    pub fn wait_serving(&self, index: usize) {
        let node = &self.nodes[index];
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(mode) = four_letter(node.client_port, "srvr").and_then(|s| mode_of(&s)) {
                if mode != "read-only" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper node {} did not start serving within {START_TIMEOUT:?}; its log: {}",
                node.id,
                node.dir.join("zookeeper.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,…`
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client address of node `index`.
    pub fn client_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[index].client_port))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: there is always at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `standalone`, `leader` or `follower` for a serving node, else `None`.
    pub fn mode(&self, index: usize) -> Option<String> {
        four_letter(self.nodes[index].client_port, "srvr").and_then(|s| mode_of(&s))
    }

    /// The process id of node `index`, while it runs (for measuring its CPU).
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes[index].process.as_ref().map(Child::id)
    }

    /// Index of the node whose client port is `port`.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.client_port == port)
    }

    /// Kills node `index` at once (SIGKILL), like a crash.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].process.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts node `index` again with its data; returns once it serves
    /// (for an ensemble node: once it has rejoined a quorum).
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.spawn(index);
        self.wait_serving(index);
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }

    /// Starts every stopped node and waits until all serve.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].process.is_none() {
                self.spawn(i);
            }
        }
        for i in 0..self.nodes.len() {
            self.wait_serving(i);
        }
    }

    /// Where node `index` keeps its log.
    pub fn log_path(&self, index: usize) -> PathBuf {
        self.nodes[index].dir.join("zookeeper.log")
    }

    /// Expires a session the way ZooKeeper's own tests do: a second client
    /// attaches to the same session (id and password) and closes it. Returns
    /// once ZooKeeper refuses the session (closing is asynchronous, and the
    /// session's owner may win the connection back meanwhile, so this
    /// attaches again until it is refused).
    pub async fn expire_session(&self, session: zookeeper_client::SessionInfo) {
        let mut last_error = None;
        for _ in 0..100 {
            let attached = zookeeper_client::Client::connector()
                .with_session(session.clone())
                .with_connection_timeout(Duration::from_millis(500))
                .connect(&self.connect_string())
                .await;
            match attached {
                // Dropping the last handle of a non-detached session closes it on the server.
                Ok(twin) => {
                    drop(twin);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(zookeeper_client::Error::SessionExpired) => return,
                Err(err) => last_error = Some(err),
            }
        }
        panic!("cannot expire the session: {last_error:?}");
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn check_installed() {
    assert!(
        Path::new(ZOOKEEPER_JAR).exists(),
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} is missing): {INSTALL_HINT}"
    );
    let java = Command::new("java")
        .arg("-version")
        .stderr(Stdio::null())
        .status();
    assert!(
        java.is_ok_and(|s| s.success()),
        "java is not installed: install it with: sudo apt-get install -y default-jre-headless"
    );
}

/// Sends a four-letter command and returns the answer.
pub fn four_letter(port: u16, command: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(command.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn mode_of(srvr: &str) -> Option<String> {
    srvr.lines()
        .find_map(|line| line.strip_prefix("Mode: "))
        .map(|mode| mode.trim().to_owned())
}
