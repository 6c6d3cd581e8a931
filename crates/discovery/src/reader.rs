//! A session's reads, for every backend it follows, through one queue: the
//! full reads after a (re)connect and the reads of changed members. Reads
//! asked for together go to ZooKeeper packed into multi-reads of
//! `READ_BATCH` znodes: fifty backends' listings in one request, their
//! members 256 to a request across backends. A fleet that re-reads after
//! a leader election then asks the ensemble for far fewer requests, each
//! costing it much less per znode than a single read.
//!
//! The pacing, for reads of changed members: in a stream of them, a
//! multi-read follows the last by at least `READ_SPACING` times what the
//! last one took (at most `MAX_READ_SPACING`). A lone change is read at
//! once, and so is the read right after it (the two halves of one
//! multi-write, seen as two events). Under a deploy's stream of changes,
//! reads slow down as the ensemble does and take more changes each,
//! across backends: a fleet then sends fewer, larger multi-reads instead
//! of one read per change per instance driving it into overload. The
//! changes that come while a watcher waits join its read, so after the
//! answer its events are usually all handled, and it can say it caught
//! up. A full read is not paced: it goes as soon as the reads before it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zookeeper_client::{Client, Error, MultiReadResult, MultiReader};

/// Znodes read per multi-read at most, well under ZooKeeper's 1 MiB
/// packet limit.
pub(crate) const READ_BATCH: usize = 256;

/// Multi-reads a session has in flight at once, for full reads: an
/// instance re-reading fifty backends (some forty multi-reads) then waits
/// for half the round trips, which after a fleet's spread re-read is what
/// sets when its last instance is done. (With four, a thousand instances
/// sharing two cores with the ensemble lost connections to the client's
/// no-answer timeout: the machine did not also run their pings in time.)
const READS_IN_FLIGHT: usize = 2;

const READ_SPACING: u32 = 4;
const MAX_READ_SPACING: Duration = Duration::from_millis(100);

/// Whether a read waits for the pacer (changed members) or goes as soon
/// as the reads before it (a full read).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Paced {
    Yes,
    No,
}

/// One read of a znode.
#[derive(Debug)]
enum Op {
    Data(String),
    Children(String),
}

/// One watcher's read: its znodes, answered together.
struct Asked {
    ops: Vec<Op>,
    paced: Paced,
    /// Read in one multi-read (a snapshot), not split across two.
    whole: bool,
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

    /// Waits until the next paced read may start.
    pub(crate) async fn ready(&self) {
        ready(&self.pacer).await;
    }

    /// `path`'s data and its children's names, as one snapshot.
    pub(crate) async fn list(&self, path: &str) -> Result<Vec<MultiReadResult>, Error> {
        let ops = vec![Op::Data(path.to_owned()), Op::Children(path.to_owned())];
        self.ask(ops, Paced::No, true).await
    }

    /// `path`'s data (for its stat), then each of `children`'s; packed
    /// with other reads, so a long list spans several multi-reads.
    pub(crate) async fn read(
        &self,
        path: &str,
        children: &[String],
        paced: Paced,
    ) -> Result<Vec<MultiReadResult>, Error> {
        let mut ops = Vec::with_capacity(1 + children.len());
        ops.push(Op::Data(path.to_owned()));
        ops.extend(
            children
                .iter()
                .map(|child| Op::Data(format!("{path}/{child}"))),
        );
        self.ask(ops, paced, false).await
    }

    async fn ask(
        &self,
        ops: Vec<Op>,
        paced: Paced,
        whole: bool,
    ) -> Result<Vec<MultiReadResult>, Error> {
        let (answer, answered) = oneshot::channel();
        let asked = Asked {
            ops,
            paced,
            whole,
            answer,
        };
        self.asked.send(asked).map_err(|_| Error::ClientClosed)?;
        answered.await.map_err(|_| Error::ClientClosed)?
    }
}

/// An ask in the queue: how many of its znodes went into multi-reads so
/// far, and the answers that came back.
struct Queued {
    id: u64,
    asked: Asked,
    planned: usize,
    read: Vec<MultiReadResult>,
}

impl Queued {
    fn unplanned(&self) -> usize {
        self.asked.ops.len() - self.planned
    }
}

/// A multi-read sent: how many znodes of which asks it reads.
struct Sent {
    parts: Parts,
    paced: Paced,
    began: Instant,
}

async fn run(
    client: Client,
    mut incoming: mpsc::UnboundedReceiver<Asked>,
    pacer: Arc<Mutex<ReadPacer>>,
) {
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut ids = 0u64;
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    loop {
        let mut held_until = None;
        while in_flight.len() < READS_IN_FLIGHT {
            // A watcher that stopped (its backend removed) needs no answer.
            queue.retain(|q| q.planned > 0 || !q.asked.answer.is_closed());
            let Some(first) = queue.iter().find(|q| q.unplanned() > 0) else {
                break;
            };
            let paced = first.asked.paced;
            // Behind reads in flight only a full multi-read goes: the rest
            // waits for them, to be packed with what comes meanwhile; and a
            // paced read goes alone.
            let unplanned: usize = queue.iter().map(Queued::unplanned).sum();
            if !in_flight.is_empty() && (paced == Paced::Yes || unplanned < READ_BATCH) {
                break;
            }
            if paced == Paced::Yes {
                let next = next_read(&pacer);
                if Instant::now() < next {
                    held_until = Some(next);
                    break;
                }
            }
            let began = Instant::now();
            let mut reader = client.new_multi_reader();
            let (parts, failed) = plan_into(&mut queue, &mut reader);
            let commit = match failed {
                None => Ok(reader.commit()),
                Some(err) => Err(err),
            };
            let sent = Sent {
                parts,
                paced,
                began,
            };
            in_flight.push_back(async move {
                let read = match commit {
                    Ok(commit) => commit.await,
                    Err(err) => Err(err),
                };
                (sent, read)
            });
        }
        if !open && queue.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            Some((sent, read)) = in_flight.next(), if !in_flight.is_empty() => {
                if sent.paced == Paced::Yes {
                    if let Ok(mut pacer) = pacer.lock() {
                        pacer.read_took(sent.began.elapsed());
                    }
                }
                answer(&mut queue, &sent.parts, read);
            }
            asked = incoming.recv(), if open => match asked {
                Some(asked) => {
                    let idle = in_flight.is_empty();
                    queue.push_back(Queued { id: ids, asked, planned: 0, read: Vec::new() });
                    ids += 1;
                    if idle {
                        // Watchers woken by the same readiness ask
                        // together: let them.
                        tokio::task::yield_now().await;
                    }
                    while let Ok(asked) = incoming.try_recv() {
                        queue.push_back(Queued { id: ids, asked, planned: 0, read: Vec::new() });
                        ids += 1;
                    }
                }
                None => open = false,
            },
            () = sleep_until_some(held_until), if held_until.is_some() => {}
            else => return,
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// How many znodes of which asks (by id) a multi-read reads.
type Parts = Vec<(u64, usize)>;

/// Puts the next multi-read's znodes (see [`plan`]) in `reader`, marking
/// them planned: how many of which asks', and an error if one could not
/// be added (a multi-read that is then not sent).
fn plan_into(queue: &mut VecDeque<Queued>, reader: &mut MultiReader<'_>) -> (Parts, Option<Error>) {
    let waiting = queue.iter().filter(|q| q.unplanned() > 0);
    let sizes = plan(waiting.map(|q| (q.unplanned(), q.asked.whole)));
    let mut parts = Vec::with_capacity(sizes.len());
    let mut failed = None;
    for (queued, size) in queue.iter_mut().filter(|q| q.unplanned() > 0).zip(sizes) {
        let first = queued.planned;
        queued.planned += size;
        parts.push((queued.id, size));
        for op in &queued.asked.ops[first..first + size] {
            if let Err(err) = add(reader, op) {
                failed.get_or_insert(err);
            }
        }
    }
    (parts, failed)
}

/// Which znodes of the queued asks (front first, each given as how many it
/// has left to read and whether it must be read whole) go in the next
/// multi-read: per ask, how many of its remaining znodes. Only the last
/// ask planned may be split, and not one to be read whole unless it could
/// never fit.
fn plan(queued: impl Iterator<Item = (usize, bool)>) -> Vec<usize> {
    let mut room = READ_BATCH;
    let mut plan = Vec::new();
    for (left, whole) in queued {
        if left <= room {
            plan.push(left);
            room -= left;
        } else if whole && left <= READ_BATCH && !plan.is_empty() {
            break;
        } else {
            plan.push(room);
            room = 0;
        }
        if room == 0 {
            break;
        }
    }
    plan
}

fn add(reader: &mut MultiReader<'_>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Data(path) => reader.add_get_data(path),
        Op::Children(path) => reader.add_get_children(path),
    }
}

/// Hands a multi-read's answers to the asks it read for, and answers
/// those now complete; on an error, every ask it read for fails (and
/// what other multi-reads bring them is dropped).
fn answer(
    queue: &mut VecDeque<Queued>,
    parts: &[(u64, usize)],
    read: Result<Vec<MultiReadResult>, Error>,
) {
    match read {
        Ok(results) => {
            let mut results = results.into_iter();
            for &(id, size) in parts {
                let answers = results.by_ref().take(size);
                if let Some(queued) = queue.iter_mut().find(|q| q.id == id) {
                    queued.read.extend(answers);
                } else {
                    answers.for_each(drop);
                }
            }
        }
        Err(err) => {
            let (failed, kept): (VecDeque<Queued>, VecDeque<Queued>) = queue
                .drain(..)
                .partition(|queued| parts.iter().any(|&(id, _)| id == queued.id));
            *queue = kept;
            for queued in failed {
                queued.asked.answer.send(Err(err.clone())).ok();
            }
        }
    }
    while queue
        .front()
        .is_some_and(|q| q.read.len() == q.asked.ops.len())
    {
        if let Some(done) = queue.pop_front() {
            done.asked.answer.send(Ok(done.read)).ok();
        }
    }
}

/// When `pacer` lets the next paced read start.
fn next_read(pacer: &Mutex<ReadPacer>) -> Instant {
    pacer.lock().map_or_else(|_| Instant::now(), |p| p.next)
}

/// Waits until `pacer` lets the next read start.
async fn ready(pacer: &Mutex<ReadPacer>) {
    let next = next_read(pacer);
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

    #[test]
    fn reads_are_packed_across_asks_and_only_a_long_one_is_split() {
        // Fifty listings of two znodes: one multi-read.
        let listings = std::iter::repeat_n((2, true), 50);
        assert_eq!((plan(listings)), vec![2; 50]);
        // Members of 200 each: the second fills the multi-read, its rest
        // goes in the next.
        let members = std::iter::repeat_n((201, false), 3);
        assert_eq!((plan(members)), vec![201, 55]);
        // A listing that does not fit waits for the next multi-read whole.
        assert_eq!((plan([(255, false), (2, true)].into_iter())), vec![255]);
        // An ask longer than a multi-read is split, even when it is first.
        assert_eq!((plan([(10_001, false)].into_iter())), vec![READ_BATCH]);
        assert_eq!(
            (plan([(100, false), (300, true)].into_iter())),
            vec![100, 156]
        );
    }
}
