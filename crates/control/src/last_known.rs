//! Each ZooKeeper-backed backend's last-known members on disk, under
//! `state_dir`: written after applied changes (at most once a second per
//! backend, atomically: a temporary file, fsync, rename), and read at a
//! start whose ZooKeeper does not answer, so that the proxy comes up
//! serving what it served before instead of 503 (a data centre whose
//! proxies restart before its ensemble). A file that is unreadable,
//! truncated, corrupt, of another version or of another backend or path is
//! ignored with one warning naming it, never trusted and never a crash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zkgate_config::{AdminState, DiscoveryConfig, ServerAddress, ServerConfig};

use crate::member::Member;

/// What the files say they are.
const KIND: &str = "zkgate last-known members";
const VERSION: u32 = 1;
/// A backend's file is written at most this often.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Larger files are not read (10,000 members take about 1 MiB).
const MAX_FILE: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct File {
    kind: String,
    version: u32,
    backend: String,
    path: String,
    format: String,
    written_unix: u64,
    members: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    address: String,
    weight: u32,
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    zxid: i64,
}

/// The file of `backend` under `dir`: its name, made safe for a path.
pub fn file_of(dir: &Path, backend: &str) -> PathBuf {
    let safe: String = backend
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    // Two names that differ only in unsafe characters stay apart.
    let tag = backend
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    dir.join(format!("backend-{safe}-{tag:08x}.json"))
}

/// The members `backend` (watching as `watch` says) last had, if its file
/// holds them; `None`, with one warning naming the file, for a file that
/// cannot be trusted. A missing file is no warning: nothing was written yet.
pub fn read(
    dir: &Path,
    backend: &str,
    watch: &DiscoveryConfig,
) -> Option<BTreeMap<String, Member>> {
    let path = file_of(dir, backend);
    let text = match read_limited(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return None,
        Err(why) => {
            warn!(file = %path.display(), backend, "ignoring the last-known members: {why}");
            return None;
        }
    };
    match parse(&text, backend, watch) {
        Ok(members) => Some(members),
        Err(why) => {
            warn!(file = %path.display(), backend, "ignoring the last-known members: {why}");
            None
        }
    }
}

fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot open it: {err}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("it is larger than {MAX_FILE} bytes"));
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE), &mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(Some(text))
}

fn parse(
    text: &[u8],
    backend: &str,
    watch: &DiscoveryConfig,
) -> Result<BTreeMap<String, Member>, String> {
    let file: File =
        serde_json::from_slice(text).map_err(|e| format!("it does not parse ({e})"))?;
    if file.kind != KIND || file.version != VERSION {
        return Err(format!(
            "it is `{}` version {}, not {KIND} version {VERSION}",
            file.kind, file.version
        ));
    }
    if file.backend != backend || file.path != watch.path || file.format != watch.format.as_str() {
        return Err(format!(
            "it is of backend {} watching {} ({}), not of this one",
            file.backend, file.path, file.format
        ));
    }
    let mut members = BTreeMap::new();
    for entry in file.members {
        let address = ServerAddress::parse(&entry.address)
            .map_err(|e| format!("member {}: {e}", entry.name))?;
        let state = AdminState::parse(&entry.state)
            .ok_or_else(|| format!("member {}: unknown state {}", entry.name, entry.state))?;
        if entry.weight > zkgate_config::defaults::MAX_WEIGHT {
            return Err(format!(
                "member {}: weight {} is out of range",
                entry.name, entry.weight
            ));
        }
        let zone = entry
            .zone
            .as_deref()
            .map(zkgate_config::zone_name)
            .transpose()
            .map_err(|why| format!("member {}: {why}", entry.name))?;
        let server = ServerConfig {
            address,
            weight: entry.weight,
            state,
            zone,
        };
        members.insert(
            entry.name,
            Member {
                server,
                zxid: entry.zxid,
            },
        );
    }
    Ok(members)
}

/// The file's bytes for `members` of `backend`.
fn render(backend: &str, watch: &DiscoveryConfig, members: &BTreeMap<String, Member>) -> Vec<u8> {
    let file = File {
        kind: KIND.into(),
        version: VERSION,
        backend: backend.into(),
        path: watch.path.clone(),
        format: watch.format.as_str().into(),
        written_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        members: members
            .iter()
            .map(|(name, m)| Entry {
                name: name.clone(),
                address: m.server.address.to_string(),
                weight: m.server.weight,
                state: m.server.state.as_str().into(),
                zone: m.server.zone.as_deref().map(str::to_owned),
                zxid: m.zxid,
            })
            .collect(),
    };
    serde_json::to_vec_pretty(&file).expect("plain data serializes")
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a part: a temporary file beside it, fsync, rename, fsync of
/// the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The writer of the files: which backends changed, when each may be
/// written next; the writing itself happens on a thread of its own, in
/// order.
pub struct LastKnown {
    dir: PathBuf,
    pending: BTreeSet<String>,
    written: HashMap<String, Instant>,
    writes: mpsc::UnboundedSender<(PathBuf, Vec<u8>)>,
}

impl LastKnown {
    /// Writes under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        let (writes, mut queue) = mpsc::unbounded_channel::<(PathBuf, Vec<u8>)>();
        tokio::spawn(async move {
            while let Some((path, bytes)) = queue.recv().await {
                let shown = path.display().to_string();
                let written =
                    tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await;
                match written {
                    Ok(Ok(())) => debug!(file = %shown, "last-known members written"),
                    Ok(Err(err)) => {
                        warn!(file = %shown, error = %err, "cannot write the last-known members")
                    }
                    Err(_) => {}
                }
            }
        });
        LastKnown {
            dir,
            pending: BTreeSet::new(),
            written: HashMap::new(),
            writes,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Notes that `backend`'s members changed.
    pub fn changed(&mut self, backend: &str) {
        self.pending.insert(backend.to_owned());
    }

    /// When the next pending backend may be written; `None` if none is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|b| {
                self.written
                    .get(b)
                    .map_or_else(Instant::now, |at| *at + MIN_INTERVAL)
            })
            .min()
    }

    /// Writes every pending backend whose interval passed; `members_of`
    /// gives a backend's watch and members (`None`: no longer watched).
    pub fn write_due<'m>(
        &mut self,
        mut members_of: impl FnMut(&str) -> Option<(&'m DiscoveryConfig, &'m BTreeMap<String, Member>)>,
    ) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|b| {
                self.written
                    .get(*b)
                    .is_none_or(|at| now >= *at + MIN_INTERVAL)
            })
            .cloned()
            .collect();
        for backend in due {
            self.pending.remove(&backend);
            let Some((watch, members)) = members_of(&backend) else {
                continue;
            };
            let bytes = render(&backend, watch, members);
            self.written.insert(backend.clone(), now);
            self.writes.send((file_of(&self.dir, &backend), bytes)).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkgate_config::MemberFormat;

    fn watch() -> DiscoveryConfig {
        DiscoveryConfig {
            path: "/services/web".into(),
            format: MemberFormat::Zkgate,
            endpoint: None,
            on_empty: zkgate_config::OnEmpty::Apply,
            protect: None,
        }
    }

    fn members() -> BTreeMap<String, Member> {
        let server = ServerConfig {
            address: ServerAddress::parse("10.0.0.1:80").unwrap(),
            weight: 7,
            state: AdminState::Drain,
            zone: Some("us-east-1a".into()),
        };
        BTreeMap::from([("10.0.0.1:80".to_owned(), Member { server, zxid: 42 })])
    }

    #[test]
    fn a_written_file_reads_back_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(dir.path(), "web");
        write_atomically(&path, &render("web", &watch(), &members())).unwrap();
        assert_eq!(read(dir.path(), "web", &watch()), Some(members()));
        // Another path, another backend: not this one's.
        let mut other = watch();
        other.path = "/services/api".into();
        assert_eq!(read(dir.path(), "web", &other), None);
        assert_eq!(read(dir.path(), "api", &watch()), None);
        // Truncated, corrupt, of another version, empty.
        let good = std::fs::read_to_string(&path).unwrap();
        for bad in [
            good[..good.len() / 2].to_owned(),
            good.replace(
                "10.0.0.1:80\",\n      \"weight",
                "not an address\",\n      \"weight",
            ),
            good.replace("\"version\": 1", "\"version\": 9"),
            String::new(),
            "\u{0}\u{1}garbage".to_owned(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(read(dir.path(), "web", &watch()), None, "{bad}");
        }
        // A directory where the file should be.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(read(dir.path(), "web", &watch()), None);
    }

    #[test]
    fn backend_names_make_safe_distinct_file_names() {
        let dir = Path::new("/var/lib/zkgate");
        let a = file_of(dir, "../etc/passwd");
        assert_eq!(a.parent(), Some(dir));
        assert_ne!(file_of(dir, "a/b"), file_of(dir, "a_b"));
    }
}
