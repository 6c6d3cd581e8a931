//! A session's reads of changed members, for every backend it follows at
//! once. A watcher waits until the reader is ready, takes every change
//! that came meanwhile, and asks for its path's stat and those children;
//! the reads asked for together go to ZooKeeper in one multi-read.
//!
//! The pacing: in a stream of reads, a multi-read follows the last by at
//! least `READ_SPACING` times what the last one took (at most
//! `MAX_READ_SPACING`). A lone change is read at once, and so is the read
//! right after it (the two halves of one multi-write, seen as two events). Under a deploy's stream
//! of changes, reads slow down as the ensemble does and take more changes
//! each, across backends: a fleet then sends fewer, larger multi-reads,
//! which cost the ensemble far less per member, instead of one read per
//! change per instance driving it into overload. The changes that come
//! while a watcher waits join its read, so after the answer its events are
//! usually all handled, and it can say it caught up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zookeeper_client::{Client, Error, MultiReadResult, MultiReader};

/// Children read per multi-read at most, well under ZooKeeper's 1 MiB
/// packet limit.
pub(crate) const READ_BATCH: usize = 256;

const READ_SPACING: u32 = 4;
const MAX_READ_SPACING: Duration = Duration::from_millis(100);

/// One backend's read: its path's data (for the stat) and up to
/// `READ_BATCH` of its children.
struct Asked {
    path: String,
    children: Vec<String>,
    answer: oneshot::Sender<Result<Vec<MultiReadResult>, Error>>,
}

/// Where a session's watchers ask for reads.
#[derive(Clone)]
pub(crate) struct Reader {
    asked: mpsc::UnboundedSender<Asked>,
    pacer: Arc<Mutex<ReadPacer>>,
}

impl Reader {
    /// A reader on `client`'s session, and the task that reads for it
    /// (run it as long as the session's watchers).
    pub(crate) fn new(client: Client) -> (Reader, impl std::future::Future<Output = ()>) {
        let (asked, queue) = mpsc::unbounded_channel();
        let pacer = Arc::new(Mutex::new(ReadPacer::new()));
        let reading = run(client, queue, Arc::clone(&pacer));
        (Reader { asked, pacer }, reading)
    }

    /// Waits until the next read may start.
    pub(crate) async fn ready(&self) {
        ready(&self.pacer).await;
    }

    /// `path`'s data, then each of `children` (at most `READ_BATCH`), as
    /// one snapshot.
    pub(crate) async fn read(
        &self,
        path: &str,
        children: &[String],
    ) -> Result<Vec<MultiReadResult>, Error> {
        let (answer, answered) = oneshot::channel();
        let asked = Asked {
            path: path.to_owned(),
            children: children.to_vec(),
            answer,
        };
        self.asked.send(asked).map_err(|_| Error::ClientClosed)?;
        answered.await.map_err(|_| Error::ClientClosed)?
    }
}

async fn run(
    client: Client,
    mut queue: mpsc::UnboundedReceiver<Asked>,
    pacer: Arc<Mutex<ReadPacer>>,
) {
    let mut carried: Option<Asked> = None;
    loop {
        let first = match carried.take() {
            Some(asked) => asked,
            None => match queue.recv().await {
                Some(asked) => asked,
                None => return,
            },
        };
        // Watchers woken by the same readiness ask together: let them.
        tokio::task::yield_now().await;
        ready(&pacer).await;
        let mut members = first.children.len();
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            if members + next.children.len() > READ_BATCH {
                carried = Some(next);
                break;
            }
            members += next.children.len();
            batch.push(next);
        }
        let began = Instant::now();
        let read = read_together(&client, &batch).await;
        if let Ok(mut pacer) = pacer.lock() {
            pacer.read_took(began.elapsed());
        }
        match read {
            Ok(results) => {
                let mut results = results.into_iter();
                for asked in batch {
                    let own: Vec<MultiReadResult> =
                        results.by_ref().take(1 + asked.children.len()).collect();
                    asked.answer.send(Ok(own)).ok();
                }
            }
            Err(err) => {
                for asked in batch {
                    asked.answer.send(Err(err.clone())).ok();
                }
            }
        }
    }
}

/// `path`'s data, then each of `children`, in one multi-read, at once
/// (a full read's batches: they take turns by other means).
pub(crate) async fn read_now(
    client: &Client,
    path: &str,
    children: &[String],
) -> Result<Vec<MultiReadResult>, Error> {
    let mut reader = client.new_multi_reader();
    add(&mut reader, path, children)?;
    reader.commit().await
}

async fn read_together(client: &Client, batch: &[Asked]) -> Result<Vec<MultiReadResult>, Error> {
    let mut reader = client.new_multi_reader();
    for asked in batch {
        add(&mut reader, &asked.path, &asked.children)?;
    }
    reader.commit().await
}

fn add(reader: &mut MultiReader<'_>, path: &str, children: &[String]) -> Result<(), Error> {
    reader.add_get_data(path)?;
    for child in children {
        reader.add_get_data(&format!("{path}/{child}"))?;
    }
    Ok(())
}

/// Waits until `pacer` lets the next read start.
async fn ready(pacer: &Mutex<ReadPacer>) {
    let next = pacer.lock().map_or_else(|_| Instant::now(), |p| p.next);
    if Instant::now() < next {
        tokio::time::sleep_until(next).await;
    }
}

/// When the next read may start. Only a stream of reads is spaced: a
/// read that follows a lone one goes at once (the two halves of one
/// multi-write, say, seen as two events).
struct ReadPacer {
    next: Instant,
    /// When the last read ended.
    last_end: Option<Instant>,
}

impl ReadPacer {
    fn new() -> Self {
        ReadPacer {
            next: Instant::now(),
            last_end: None,
        }
    }

    /// A read just ended that took `took`.
    fn read_took(&mut self, took: Duration) {
        let now = Instant::now();
        let spacing = (took * READ_SPACING).min(MAX_READ_SPACING);
        // It began within twice the spacing of the one before (it was held
        // for the spacing, or came that soon): a stream.
        let began = now.checked_sub(took).unwrap_or(now);
        let streaming = self
            .last_end
            .is_some_and(|end| began.saturating_duration_since(end) <= spacing * 2);
        self.next = if streaming { now + spacing } else { now };
        self.last_end = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lone_read_and_the_one_after_it_go_at_once_and_a_stream_is_spaced() {
        let owned = Mutex::new(ReadPacer::new());
        let pacer = &owned;
        let read = move |d: Duration| async move {
            tokio::time::advance(d).await;
            pacer.lock().unwrap().read_took(d);
        };
        let waited = move || async move {
            let before = Instant::now();
            ready(pacer).await;
            before.elapsed()
        };
        assert_eq!(waited().await, Duration::ZERO);
        read(Duration::from_millis(5)).await;
        // The second read of two close together: at once.
        assert_eq!(waited().await, Duration::ZERO);
        read(Duration::from_millis(5)).await;
        // A third: a stream, spaced by four times what the last took.
        assert_eq!(waited().await, Duration::from_millis(20));
        read(Duration::from_millis(5)).await;
        assert_eq!(waited().await, Duration::from_millis(20));

        // Long past: at once again, and the read after it too.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(waited().await, Duration::ZERO);
        read(Duration::from_secs(2)).await;
        assert_eq!(waited().await, Duration::ZERO);
        // A slow ensemble spaces a stream by at most `MAX_READ_SPACING`.
        read(Duration::from_secs(2)).await;
        assert_eq!(waited().await, MAX_READ_SPACING);
    }
}
