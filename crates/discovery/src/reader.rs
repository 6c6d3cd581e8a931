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
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zookeeper_client::{Client, Error, MultiReadResult, MultiReader};

/// Znodes read per multi-read at most, well under ZooKeeper's 1 MiB
/// packet limit.
pub(crate) const READ_BATCH: usize = 256;

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

/// An ask in the queue, with the answers its first znodes already had.
struct Queued {
    asked: Asked,
    read: Vec<MultiReadResult>,
}

impl Queued {
    fn left(&self) -> usize {
        self.asked.ops.len() - self.read.len()
    }
}

async fn run(
    client: Client,
    mut incoming: mpsc::UnboundedReceiver<Asked>,
    pacer: Arc<Mutex<ReadPacer>>,
) {
    let mut queue: VecDeque<Queued> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match incoming.recv().await {
                Some(asked) => queue.push_back(Queued {
                    asked,
                    read: Vec::new(),
                }),
                None => return,
            }
            // Watchers woken by the same readiness ask together: let them.
            tokio::task::yield_now().await;
        }
        let paced = queue[0].asked.paced;
        if paced == Paced::Yes {
            ready(&pacer).await;
        }
        while let Ok(asked) = incoming.try_recv() {
            queue.push_back(Queued {
                asked,
                read: Vec::new(),
            });
        }
        // A watcher that stopped (its backend removed) needs no answer.
        queue.retain(|q| !q.asked.answer.is_closed());
        if queue.is_empty() {
            continue;
        }
        let plan = plan(queue.iter().map(|q| (q.left(), q.asked.whole)));
        let began = Instant::now();
        let read = read_planned(&client, &queue, &plan).await;
        if paced == Paced::Yes {
            if let Ok(mut pacer) = pacer.lock() {
                pacer.read_took(began.elapsed());
            }
        }
        answer(&mut queue, &plan, read);
    }
}

/// Which znodes of the queued asks (front first, each given as how many it
/// has left to read and whether it must be read whole) go in the next
/// multi-read: per ask, the range of its remaining znodes. Only the last
/// ask planned may be split, and not one to be read whole unless it could
/// never fit.
fn plan(queued: impl Iterator<Item = (usize, bool)>) -> Vec<Range<usize>> {
    let mut room = READ_BATCH;
    let mut plan = Vec::new();
    for (left, whole) in queued {
        if left <= room {
            plan.push(0..left);
            room -= left;
        } else if whole && left <= READ_BATCH && !plan.is_empty() {
            break;
        } else {
            plan.push(0..room);
            room = 0;
        }
        if room == 0 {
            break;
        }
    }
    plan
}

async fn read_planned(
    client: &Client,
    queue: &VecDeque<Queued>,
    plan: &[Range<usize>],
) -> Result<Vec<MultiReadResult>, Error> {
    let mut reader = client.new_multi_reader();
    for (queued, range) in queue.iter().zip(plan) {
        let first = queued.read.len();
        for op in &queued.asked.ops[first + range.start..first + range.end] {
            add(&mut reader, op)?;
        }
    }
    reader.commit().await
}

fn add(reader: &mut MultiReader<'_>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Data(path) => reader.add_get_data(path),
        Op::Children(path) => reader.add_get_children(path),
    }
}

/// Hands the multi-read's answers to the asks planned, and answers those
/// now complete (or every ask planned, with the error).
fn answer(
    queue: &mut VecDeque<Queued>,
    plan: &[Range<usize>],
    read: Result<Vec<MultiReadResult>, Error>,
) {
    match read {
        Ok(results) => {
            let mut results = results.into_iter();
            for (queued, range) in queue.iter_mut().zip(plan) {
                queued.read.extend(results.by_ref().take(range.len()));
            }
            while queue.front().is_some_and(|q| q.left() == 0) {
                if let Some(done) = queue.pop_front() {
                    done.asked.answer.send(Ok(done.read)).ok();
                }
            }
        }
        Err(err) => {
            for queued in queue.drain(..plan.len()) {
                queued.asked.answer.send(Err(err.clone())).ok();
            }
        }
    }
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

    #[test]
    fn reads_are_packed_across_asks_and_only_a_long_one_is_split() {
        let lens = |plan: Vec<Range<usize>>| plan.iter().map(|r| r.len()).collect::<Vec<_>>();
        // Fifty listings of two znodes: one multi-read.
        let listings = std::iter::repeat_n((2, true), 50);
        assert_eq!(lens(plan(listings)), vec![2; 50]);
        // Members of 200 each: the second fills the multi-read, its rest
        // goes in the next.
        let members = std::iter::repeat_n((201, false), 3);
        assert_eq!(lens(plan(members)), vec![201, 55]);
        // A listing that does not fit waits for the next multi-read whole.
        assert_eq!(lens(plan([(255, false), (2, true)].into_iter())), vec![255]);
        // An ask longer than a multi-read is split, even when it is first.
        assert_eq!(lens(plan([(10_001, false)].into_iter())), vec![READ_BATCH]);
        assert_eq!(
            lens(plan([(100, false), (300, true)].into_iter())),
            vec![100, 156]
        );
    }
}
