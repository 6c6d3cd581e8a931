//! One backend's watcher: a persistent recursive watch on its path, a full
//! read after every (re)connect, and one read per changed child.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};
use zkgate_metrics::Metrics;
use zookeeper_client::{
    AddWatchMode, Client, Error, EventType, MultiReadResult, PersistentWatcher, SessionState,
    WatchedEvent,
};

use crate::directives::Directives;
use crate::format::{self, Child};
use crate::reader::{Paced, Reader, READ_BATCH};
use crate::{Change, Decoded, Listed, Update, WatchSpec, RETRY_DELAY};

/// A re-read after a reconnect waits a random time below this, plus
/// `RESYNC_PER_CHILD` per child the instance's backends had, at most
/// `RESYNC_MAX`: a fleet that reconnects at once (after a leader election,
/// or a partition that expired every session) then reads over a time that
/// grows with what each instance has to read — 20 s for 10,000 members —
/// rather than all in the same second. With one backend, two milliseconds
/// a child keep a thousand instances' re-reads below what the ensemble
/// serves (at one millisecond they were above it, and it was saturated
/// until all had read). Meanwhile the backend serves the members it had.
const RESYNC_SPREAD: Duration = Duration::from_millis(500);
const RESYNC_PER_CHILD: Duration = Duration::from_millis(2);
const RESYNC_MAX: Duration = Duration::from_secs(25);
/// Watchers that see a reconnect within this of the first one to see it
/// take its re-read time.
const SAME_RECONNECT: Duration = Duration::from_secs(1);

/// How many children each backend's last full read found, shared by a
/// discovery's watchers across its sessions.
pub type KnownChildren = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// How long a re-read after a reconnect waits, for `children` to read
/// (also how long a new session after an expired one waits to open).
pub fn resync_wait(children: usize) -> Duration {
    let spread = RESYNC_SPREAD + RESYNC_PER_CHILD * children.min(u32::MAX as usize) as u32;
    spread.min(RESYNC_MAX).mul_f64(fastrand::f64())
}

/// When a session's backends re-read after a reconnect: one random time
/// for all of them, drawn by the first watcher to see the reconnect, so
/// their reads are asked together and packed into few multi-reads.
#[derive(Clone, Default)]
pub(crate) struct Resync(Arc<Mutex<Option<Drawn>>>);

#[derive(Clone, Copy)]
struct Drawn {
    when: Instant,
    at: Instant,
}

impl Resync {
    /// When to re-read after a reconnect seen now, with `children` to read.
    fn at(&self, children: usize) -> Instant {
        let now = Instant::now();
        let Ok(mut drawn) = self.0.lock() else {
            return now + resync_wait(children);
        };
        match *drawn {
            Some(same) if now.duration_since(same.when) < SAME_RECONNECT => same.at,
            _ => {
                let at = now + resync_wait(children);
                *drawn = Some(Drawn { when: now, at });
                at
            }
        }
    }
}

/// Whether `event` is a session's last (expired, closed, auth failed).
fn ends_session(event: &WatchedEvent) -> bool {
    event.event_type == EventType::Session && event.session_state.is_terminated()
}

/// Errors after which this session can do nothing more.
fn session_over(err: &Error) -> bool {
    matches!(
        err,
        Error::SessionExpired | Error::ClientClosed | Error::AuthFailed | Error::SessionMoved
    )
}

struct Watcher {
    client: Client,
    spec: WatchSpec,
    updates: mpsc::Sender<Update>,
    /// Invalid children already logged, with the version logged, so each bad
    /// version is logged once however often it is re-read.
    logged: HashMap<String, i64>,
    /// The newest zxid whose changes were all sent.
    zxid: i64,
    /// Children each of the session's backends had at its last full read.
    known: KnownChildren,
    reader: Reader,
}

/// Runs until the session ends or the task is aborted.
pub async fn watch_backend(
    client: Client,
    spec: WatchSpec,
    updates: mpsc::Sender<Update>,
    metrics: Metrics,
    resync: Resync,
    known: KnownChildren,
    reader: Reader,
) {
    let path = spec.config.path.clone();
    let mut this = Watcher {
        client,
        spec,
        updates,
        logged: HashMap::new(),
        zxid: 0,
        known,
        reader,
    };
    // Watch first, read second: a change between the two shows up as an event.
    let Some(mut events) = this.add_watch().await else {
        return;
    };
    // An event taken while checking whether any were left: the next batch's first.
    let mut carried: Option<WatchedEvent>;
    'sync: loop {
        carried = None;
        match this.read_all().await {
            Ok((directives, members, zxid)) => {
                debug!(backend = %this.spec.backend, members = members.len(), "synced from ZooKeeper");
                if !this.send(Change::Directives(directives)).await
                    || !this.send(Change::Reset(members)).await
                    || !this.caught_up(&mut events, &mut carried, zxid).await
                {
                    return;
                }
            }
            Err(err) if session_over(&err) => return,
            Err(err) => {
                warn!(backend = %this.spec.backend, %path, error = %err, "cannot read members; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
                continue 'sync;
            }
        }
        loop {
            // Take every event already queued, so a burst costs one multi-read
            // and lands at the control plane in one go.
            let first = match carried.take() {
                Some(event) => event,
                None => events.changed().await,
            };
            // Changes that come while the session's reader is not ready
            // join this read.
            this.reader.ready().await;
            let mut batch = vec![first];
            // After a session's last event the watcher has nothing more to
            // give (the client panics if asked): stop there.
            while batch.len() < READ_BATCH && !batch.last().is_some_and(ends_session) {
                match events.changed().now_or_never() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            metrics.zookeeper_watch_events.inc_by(batch.len() as u64);
            let mut touched: Vec<String> = Vec::new();
            for event in &batch {
                if event.event_type == EventType::Session {
                    match event.session_state {
                        // Events may have been lost while disconnected: watch anew and
                        // read everything again. Watching anew also covers clients
                        // that do not re-register persistent watches on reconnect
                        // (zookeeper-client 0.11 re-sends only one-shot watches).
                        SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                            // A whole fleet reconnects at once after a leader
                            // election: spread the re-reads, and the watches
                            // added before them. Changes made meanwhile are
                            // found by the re-read.
                            let at = resync.at(this.instance_children());
                            tokio::time::sleep_until(at).await;
                            let Some(renewed) = this.add_watch().await else {
                                return;
                            };
                            // The old watcher drops after the new one exists, so
                            // its removal leaves the path watched.
                            events = renewed;
                            continue 'sync;
                        }
                        state if state.is_terminated() => return,
                        _ => continue,
                    }
                }
                match direct_child(&path, &event.path) {
                    Some(child) if !touched.iter().any(|t| t == child) => {
                        touched.push(child.to_owned())
                    }
                    Some(_) => {}
                    // The backend's own znode appeared or vanished.
                    None if event.path == path => continue 'sync,
                    None => {}
                }
            }
            // Only session events (a disconnection, say): nothing to read.
            if touched.is_empty() {
                continue;
            }
            // Read each touched child's latest state: whatever happened in
            // between, what is there now is the truth.
            let (changes, zxid) = match this.read_children(&touched, Paced::Yes).await {
                Ok(read) => read,
                Err(err) if session_over(&err) => return,
                Err(_) => continue 'sync,
            };
            for change in changes {
                if !this.send(change).await {
                    return;
                }
            }
            if !this.caught_up(&mut events, &mut carried, zxid).await {
                return;
            }
        }
    }
}

/// `path/child` → `child`; deeper descendants and other paths → `None`.
fn direct_child<'a>(path: &str, event_path: &'a str) -> Option<&'a str> {
    let child = event_path.strip_prefix(path)?.strip_prefix('/')?;
    (!child.is_empty() && !child.contains('/')).then_some(child)
}

impl Watcher {
    /// What this instance's backends had at their last full reads: after a
    /// reconnect every backend re-reads, so the re-reads are spread by what
    /// the whole instance will read, not by this backend's share of it.
    fn instance_children(&self) -> usize {
        self.known.lock().map_or(0, |known| known.values().sum())
    }

    /// Adds the persistent recursive watch, retrying until it holds; `None`
    /// once the session is over.
    async fn add_watch(&self) -> Option<PersistentWatcher> {
        let path = &self.spec.config.path;
        loop {
            match self
                .client
                .watch(path, AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(events) => return Some(events),
                Err(err) if session_over(&err) => return None,
                Err(err) => {
                    warn!(backend = %self.spec.backend, %path, error = %err, "cannot watch; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// After a read that saw the backend as of `zxid`: if no event is
    /// queued, every change up to `zxid` has been sent (ZooKeeper delivers
    /// a watch event before any answer that reflects a later state), and
    /// the control plane is told so; else the queued event is `carried` to
    /// the next batch. False once the control plane is gone.
    async fn caught_up(
        &mut self,
        events: &mut PersistentWatcher,
        carried: &mut Option<WatchedEvent>,
        zxid: i64,
    ) -> bool {
        self.zxid = self.zxid.max(zxid);
        match events.changed().now_or_never() {
            Some(event) => {
                *carried = Some(event);
                true
            }
            None => self.send(Change::CaughtUp(self.zxid)).await,
        }
    }

    async fn send(&self, change: Change) -> bool {
        let update = Update {
            backend: self.spec.backend.clone(),
            change,
        };
        self.updates.send(update).await.is_ok()
    }

    fn decode(&mut self, child: &str, data: &[u8], version: i64) -> Option<Decoded> {
        let config = &self.spec.config;
        match format::decode(config.format, config.endpoint.as_deref(), child, data) {
            Ok(Child::Member(member)) => {
                self.logged.remove(child);
                Some(Ok(member))
            }
            Ok(Child::NotAMember) => None,
            Err(why) => {
                if self.logged.get(child) != Some(&version) {
                    warn!(
                        backend = %self.spec.backend,
                        znode = %format!("{}/{child}", config.path),
                        format = config.format.as_str(),
                        "skipping member: {why}"
                    );
                    self.logged.insert(child.to_owned(), version);
                }
                Some(Err(why))
            }
        }
    }

    /// Reads `children` and turns each into a change; with the newest zxid
    /// the reads saw (the path's own stat is read with them: its `pzxid` is
    /// the last child created or deleted).
    async fn read_children(
        &mut self,
        children: &[String],
        paced: Paced,
    ) -> Result<(Vec<Change>, i64), Error> {
        let path = self.spec.config.path.clone();
        let mut changes = Vec::with_capacity(children.len());
        let mut zxid = 0;
        let mut results = self.reader.read(&path, children, paced).await?.into_iter();
        // The path's stat; if the path is gone, its event follows, and a full read.
        if let Some(MultiReadResult::Data { stat, .. }) = results.next() {
            zxid = zxid.max(stat.pzxid).max(stat.mzxid);
        }
        for (child, result) in children.iter().zip(results) {
            let change = match result {
                MultiReadResult::Data { data, stat } => {
                    zxid = zxid.max(stat.mzxid);
                    match self.decode(child, &data, stat.mzxid) {
                        Some(decoded) => Change::Upsert(Listed {
                            name: child.clone(),
                            decoded,
                            zxid: stat.mzxid,
                        }),
                        None => Change::Remove(child.clone()),
                    }
                }
                MultiReadResult::Error { err: Error::NoNode } => Change::Remove(child.clone()),
                MultiReadResult::Error { err } => return Err(err),
                _ => continue,
            };
            changes.push(change);
        }
        Ok((changes, zxid))
    }

    /// Reads the path's directives, then lists and reads every child. A
    /// missing path is an empty backend.
    async fn read_all(&mut self) -> Result<(Directives, Vec<Listed>, i64), Error> {
        // The path's data (directives, and in its stat the last child
        // created or deleted) and its children, as one snapshot, packed
        // with the session's other backends' listings.
        let mut results = self.reader.list(&self.spec.config.path).await?.into_iter();
        let (directives, stat) = match results.next() {
            Some(MultiReadResult::Data { data, stat }) => {
                (Directives::parse(&data, stat.mzxid), stat)
            }
            Some(MultiReadResult::Error { err: Error::NoNode }) => {
                return Ok((Directives::default(), Vec::new(), 0))
            }
            Some(MultiReadResult::Error { err }) => return Err(err),
            _ => {
                return Err(Error::UnexpectedError(
                    "no answer for the path's data".into(),
                ))
            }
        };
        let children = match results.next() {
            Some(MultiReadResult::Children { children }) => children,
            // Deleted between the two reads cannot be: they are one snapshot.
            Some(MultiReadResult::Error { err }) => return Err(err),
            _ => {
                return Err(Error::UnexpectedError(
                    "no answer for the path's children".into(),
                ))
            }
        };
        if let Ok(mut known) = self.known.lock() {
            known.insert(Arc::clone(&self.spec.backend), children.len());
        }
        let (read, zxid) = self.read_children(&children, Paced::No).await?;
        let zxid = zxid.max(stat.pzxid).max(directives.zxid);
        let members = read
            .into_iter()
            .filter_map(|change| match change {
                Change::Upsert(listed) => Some(listed),
                // Deleted since the listing (its event follows), or not a member.
                _ => None,
            })
            .collect();
        Ok((directives, members, zxid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_direct_children_of_the_backend_path_count() {
        assert_eq!(
            direct_child("/services/web", "/services/web/10.0.0.1:80"),
            Some("10.0.0.1:80")
        );
        assert_eq!(direct_child("/services/web", "/services/web/a/b"), None);
        assert_eq!(direct_child("/services/web", "/services/webx/a"), None);
        assert_eq!(direct_child("/services/web", "/services/web"), None);
    }
}
