//! Where the configuration comes from: the file (re-read at SIGHUP) and the
//! optional ZooKeeper config node, whose sections are merged into it.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;
use zkgate_config::Config;
use zkgate_discovery::NodeText;
use zkgate_tls::TlsMaterial;

/// The configuration's sources, as last read.
pub(crate) struct Sources {
    path: PathBuf,
    /// The file's text as last read.
    file_text: String,
    /// The config node's text, when one is configured and exists.
    node_text: Option<String>,
    node_watch: Option<JoinHandle<()>>,
    node_tx: mpsc::Sender<NodeText>,
    node_updates: mpsc::Receiver<NodeText>,
}

impl Sources {
    /// The file at `path`, whose text was read at start.
    pub(crate) fn new(path: PathBuf, file_text: String) -> Self {
        let (node_tx, node_updates) = mpsc::channel(16);
        Sources {
            path,
            file_text,
            node_text: None,
            node_watch: None,
            node_tx,
            node_updates,
        }
    }

    /// The configuration file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again, on a thread of its own (it may be a pipe); on
    /// failure the text last read stays.
    pub(crate) async fn reread_file(&mut self) -> Result<(), String> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || zkgate_config::files::read_config(&path))
            .await
            .unwrap_or_else(|err| Err(format!("cannot read the file: {err}")));
        self.file_text = read.map_err(|why| format!("{}: {why}", self.path.display()))?;
        Ok(())
    }

    /// The config node's next text (new, changed, or gone).
    pub(crate) async fn node_changed(&mut self) -> NodeText {
        match self.node_updates.recv().await {
            Some(text) => text,
            // This holds a sender itself: the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// Takes the config node's new text.
    pub(crate) fn set_node_text(&mut self, text: NodeText) {
        self.node_text = text;
    }

    /// The configuration the file and the config node (when there is one,
    /// as `running` names it) make, with its TLS material loaded from disk
    /// (so renewed certificates take effect); or every error, to log. The
    /// parse and the file reads run on a thread of their own: with one
    /// worker, the control plane shares the thread that serves requests.
    pub(crate) async fn load(&self, running: &Config) -> Result<(Config, TlsMaterial), String> {
        let node = running
            .zookeeper
            .as_ref()
            .and_then(|zk| zk.config_node.clone());
        let path = self.path.display().to_string();
        let (file_text, node_text) = (self.file_text.clone(), self.node_text.clone());
        tokio::task::spawn_blocking(move || load(&path, &file_text, node, node_text))
            .await
            .unwrap_or_else(|err| Err(format!("loading the configuration failed: {err}")))
    }

    /// What the status page calls the configuration's source.
    pub(crate) fn describe(&self, config: &Config) -> String {
        match config
            .zookeeper
            .as_ref()
            .and_then(|zk| zk.config_node.as_ref())
        {
            Some(node) => format!("{} + zookeeper:{node}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// Starts, restarts or stops watching `config`'s `zookeeper.config_node`;
    /// `previous` is the configuration it replaced, if any. Returns whether
    /// the watch changed.
    pub(crate) fn follow_node(&mut self, config: &Config, previous: Option<&Config>) -> bool {
        let node_of = |config: &Config| {
            let zk = config.zookeeper.as_ref()?;
            Some((zk.clone(), zk.config_node.clone()?))
        };
        let wanted = node_of(config);
        if previous.map(node_of) == Some(wanted.clone()) {
            return false;
        }
        if let Some(task) = self.node_watch.take() {
            task.abort();
        }
        if let Some((zookeeper, node)) = wanted {
            info!(%node, "following the config node");
            self.node_watch = Some(zkgate_discovery::watch_config_node(
                zookeeper,
                node,
                self.node_tx.clone(),
            ));
        } else {
            self.node_text = None;
        }
        true
    }
}

fn load(
    path: &str,
    file_text: &str,
    node: Option<String>,
    node_text: Option<String>,
) -> Result<(Config, TlsMaterial), String> {
    let origin = match (&node, &node_text) {
        (Some(node), Some(_)) => format!("zookeeper:{node}"),
        _ => path.to_owned(),
    };
    let parsed = match (&node, &node_text) {
        (Some(_), Some(text)) => zkgate_config::parse_with_node(file_text, text, &origin),
        _ => zkgate_config::parse(file_text, &origin),
    };
    parsed
        .and_then(|config| {
            let tls = TlsMaterial::load(&config, &origin)?;
            Ok((config, tls))
        })
        .map_err(|errors| errors.to_string())
}
