//! One backend's watcher: a persistent recursive watch on its path, a full
//! read after every (re)connect, and one read per changed child.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
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
use crate::resync::{self, KnownChildren, Resync};
use crate::{Change, Decoded, Listed, Update, WatchSpec, RETRY_DELAY};

/// Watches a session adds at once. An instance adds one per backend
/// before each full read; fifty at once from every instance that re-reads
/// at the same moment made the fleet's request rate spike (2.1–2.3 × the
/// cold start's mean after a leader's death, 1.1–1.5 × four at a time).
const WATCH_ADDS_AT_ONCE: usize = 4;

/// What a session's watchers share.
pub(crate) struct Shared {
    pub client: Client,
    pub updates: mpsc::Sender<Update>,
    pub metrics: Metrics,
    /// Every read of the session's, packed and paced.
    pub reader: Reader,
    /// When the session's backends read again after a reconnect.
    pub resync: Resync,
    /// Children each of the instance's backends had at its last full read.
    pub known: KnownChildren,
    watch_adds: Semaphore,
}

impl Shared {
    pub fn new(
        client: Client,
        updates: mpsc::Sender<Update>,
        metrics: Metrics,
        reader: Reader,
        known: KnownChildren,
    ) -> Self {
        Shared {
            client,
            updates,
            metrics,
            reader,
            resync: Resync::default(),
            known,
            watch_adds: Semaphore::new(WATCH_ADDS_AT_ONCE),
        }
    }
}

/// Whether `event` is a session's last (expired, closed, auth failed).
fn ends_session(event: &WatchedEvent) -> bool {
    event.event_type == EventType::Session && event.session_state.is_terminated()
}

/// Whether `event` says the session is connected again.
fn reconnected(event: &WatchedEvent) -> bool {
    event.event_type == EventType::Session
        && matches!(
            event.session_state,
            SessionState::SyncConnected | SessionState::ConnectedReadOnly
        )
}

/// Errors after which this session can do nothing more.
fn session_over(err: &Error) -> bool {
    matches!(
        err,
        Error::SessionExpired | Error::ClientClosed | Error::AuthFailed | Error::SessionMoved
    )
}

struct Watcher {
    spec: WatchSpec,
    shared: Arc<Shared>,
    /// Invalid children already logged, with the version logged, so each bad
    /// version is logged once however often it is re-read.
    logged: HashMap<String, i64>,
    /// The newest zxid whose changes were all sent.
    zxid: i64,
}

/// What a batch of events asks of the watcher.
enum Next {
    /// Read these children again.
    Read(Vec<String>),
    /// Read everything again (the backend's own znode changed).
    ReadAll,
    /// The session is connected again: watch anew and read everything.
    Resync,
    /// Nothing to read (a disconnection, say).
    Nothing,
    /// The session ended.
    Over,
}

/// Runs until the session ends or the task is aborted.
pub(crate) async fn watch_backend(spec: WatchSpec, shared: Arc<Shared>) {
    let path = spec.config.path.clone();
    let mut this = Watcher {
        spec,
        shared,
        logged: HashMap::new(),
        zxid: 0,
    };
    // Watch first, read second: a change between the two shows up as an event.
    let Some(mut events) = this.add_watch().await else {
        return;
    };
    // An event taken while checking whether any were left: the next batch's first.
    let mut carried: Option<WatchedEvent>;
    let mut renew = false;
    'sync: loop {
        carried = None;
        // A full read reads what every queued event reports; a reconnect
        // among them means the watch must be added again first.
        match this.skip_queued(&mut events) {
            Some(again) => renew |= again,
            None => return,
        }
        if std::mem::take(&mut renew) {
            // The old watcher drops after the new one exists, so its
            // removal leaves the path watched.
            match this.add_watch().await {
                Some(renewed) => events = renewed,
                None => return,
            }
        }
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
                warn!(backend = %this.spec.backend, %path, error = %err, "cannot read members; reading again after the resync wait");
                this.wait_to_resync(true).await;
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
            this.shared.reader.ready().await;
            let mut batch = vec![first];
            // After a session's last event the watcher has nothing more to
            // give (the client panics if asked): stop there.
            while batch.len() < READ_BATCH && !batch.last().is_some_and(ends_session) {
                match events.changed().now_or_never() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            let touched = match this.next(&batch) {
                Next::Read(touched) => touched,
                Next::Nothing => continue,
                Next::ReadAll => continue 'sync,
                Next::Resync => {
                    // Events may have been lost while disconnected: watch
                    // anew and read everything again, when the session's
                    // backends do. Watching anew also covers clients that
                    // do not re-register persistent watches on reconnect
                    // (zookeeper-client 0.11 re-sends only one-shot watches).
                    this.wait_to_resync(false).await;
                    renew = true;
                    continue 'sync;
                }
                Next::Over => return,
            };
            // Read each touched child's latest state: whatever happened in
            // between, what is there now is the truth.
            let (changes, zxid) = match this.read_children(&touched, Paced::Yes).await {
                Ok(read) => read,
                Err(err) if session_over(&err) => return,
                Err(_) => {
                    this.wait_to_resync(true).await;
                    continue 'sync;
                }
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
    /// What `batch` asks for.
    fn next(&self, batch: &[WatchedEvent]) -> Next {
        let path = &self.spec.config.path;
        self.shared
            .metrics
            .zookeeper_watch_events
            .inc_by(batch.len() as u64);
        let mut touched: Vec<String> = Vec::new();
        for event in batch {
            if ends_session(event) {
                return Next::Over;
            }
            if reconnected(event) {
                return Next::Resync;
            }
            match direct_child(path, &event.path) {
                Some(child) if !touched.iter().any(|t| t == child) => {
                    touched.push(child.to_owned())
                }
                Some(_) => {}
                // The backend's own znode appeared or vanished.
                None if event.path == *path => return Next::ReadAll,
                None => {}
            }
        }
        if touched.is_empty() {
            Next::Nothing
        } else {
            Next::Read(touched)
        }
    }

    /// Takes the events queued now, before a full read that will read
    /// what they report: whether one of them was a reconnect; `None` if
    /// the session ended.
    fn skip_queued(&self, events: &mut PersistentWatcher) -> Option<bool> {
        let mut again = false;
        while let Some(event) = events.changed().now_or_never() {
            self.shared.metrics.zookeeper_watch_events.inc();
            if ends_session(&event) {
                return None;
            }
            again |= reconnected(&event);
        }
        Some(again)
    }

    /// Waits until the session's backends read again: after a reconnect,
    /// or a failed read (mostly a lost connection, which the session is
    /// getting back). A fleet that loses its connections at once reads
    /// again spread over the wait, by what the whole instance will read,
    /// and each instance's backends together; and a failed read is tried
    /// again no sooner than `RETRY_DELAY`.
    async fn wait_to_resync(&self, failed: bool) {
        let at = self.shared.resync.at(resync::children(&self.shared.known));
        let at = if failed {
            at.max(Instant::now() + RETRY_DELAY)
        } else {
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Adds the persistent recursive watch, retrying until it holds; `None`
    /// once the session is over.
    async fn add_watch(&self) -> Option<PersistentWatcher> {
        let path = &self.spec.config.path;
        loop {
            let turn = self.shared.watch_adds.acquire().await;
            let watched = self
                .shared
                .client
                .watch(path, AddWatchMode::PersistentRecursive)
                .await;
            drop(turn);
            match watched {
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
        self.shared.updates.send(update).await.is_ok()
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
        let mut results = self
            .shared
            .reader
            .read(&path, children, paced)
            .await?
            .into_iter();
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
        let mut results = self
            .shared
            .reader
            .list(&self.spec.config.path)
            .await?
            .into_iter();
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
        if let Ok(mut known) = self.shared.known.lock() {
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
