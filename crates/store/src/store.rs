//! [`Store`]: the handle the broker holds. It queues ops for the writer thread and tells which
//! batches are durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use crate::backend::Control;
use crate::batch::{Batch, Collecting};
use crate::error::StoreError;
use crate::record::{Op, Recovered};
use crate::tables::{self, FILE_NAME};
use crate::writer::Writer;
use crate::{Policy, recover};

/// The batch an op went into. Tickets grow with every batch; `Ticket(0)` is always durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticket(pub u64);

/// Counters for `/metrics`, since open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches committed (one write transaction each).
    pub batches: u64,
    /// Batches whose ops all cancelled each other, made durable without a write transaction or
    /// a sync (not counted in `batches`).
    pub batches_unwritten: u64,
    /// Ops of committed batches that were applied.
    pub ops_written: u64,
    /// Ops of durable batches (committed or unwritten) that coalescing made unnecessary: an
    /// Enqueue and its Dequeue in one batch (two ops), an UpdateEntry folded into its Enqueue, a
    /// PutMessage no entry needed (or already stored). `ops_written + ops_cancelled` is every op
    /// of a durable batch.
    pub ops_cancelled: u64,
    /// Key and value bytes written.
    pub bytes_written: u64,
    /// Failed commit attempts (each is retried).
    pub write_errors: u64,
    /// True from a failed commit until a commit succeeds: nothing becomes durable meanwhile.
    pub failing: bool,
    /// The last write error, kept after recovery.
    pub last_error: Option<String>,
    /// Ops submitted and not yet taken into a batch. The store does not bound them: the broker
    /// does, by acknowledging only durable changes (so each client's Receive Maximum caps what
    /// it can add). Under `interval` and `never`, which acknowledge at once, this grows while
    /// writes fail.
    pub pending_ops: usize,
}

/// Ops waiting for the writer, and the ticket of the batch they will form.
pub(crate) struct Pending {
    /// The batch being collected.
    pub(crate) collecting: Collecting,
    /// The ticket of `collecting`; the batch before it is taken or durable.
    pub(crate) batch: u64,
    /// When the first op of `collecting` arrived.
    pub(crate) since: Option<Instant>,
    /// `close` was called: flush and stop.
    pub(crate) closing: bool,
    /// How many ops were pending, and when, the last time the submitters went idle (see
    /// [`Store::submitters_idle`]); stale once more ops have arrived.
    pub(crate) idle_mark: Option<(u64, Instant)>,
    /// What the writer is doing, so that submitters wake it only when it would otherwise
    /// sleep past the moment a batch becomes due: each wake-up is a thread switch, and on a
    /// busy core one that preempts the submitter.
    pub(crate) writer: WriterState,
}

impl Pending {
    /// Takes the collected ops as the batch of the current ticket, which it returns; later ops
    /// form the next batch.
    pub(crate) fn take_batch(&mut self) -> (Batch, u64) {
        let batch = self.collecting.take();
        let ticket = self.batch;
        self.batch += 1;
        self.since = None;
        self.idle_mark = None;
        (batch, ticket)
    }
}

/// See [`Pending::writer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Taking, committing or publishing a batch; it looks at the pending ops before sleeping.
    Busy,
    /// Sleeping until woken (nothing was pending).
    Idle,
    /// Sleeping until this moment, when the pending ops become due.
    WaitingUntil(Instant),
}

/// What the store handle and the writer thread share.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) path: PathBuf,
    pub(crate) pending: Mutex<Pending>,
    /// Signals the writer (see [`Pending::writer`] for when): the first op arrived while it was
    /// idle, the batch is full, the submitters went idle, or closing.
    pub(crate) wake: Condvar,
    /// The highest durable ticket.
    pub(crate) durable: watch::Sender<u64>,
    pub(crate) stats: Mutex<StoreStats>,
    pub(crate) control: Arc<Control>,
}

impl Shared {
    /// Publishes `ticket` without a transaction: its batch writes nothing (every change was
    /// cancelled by a later one of the same batch, such as a message enqueued for a persistent
    /// session and acknowledged by its subscriber before the batch was taken), so the file
    /// already holds its outcome. The caller makes sure no earlier batch is still being written.
    pub(crate) fn publish_unwritten(&self, batch: &Batch, ticket: u64) {
        {
            let mut stats = lock(&self.stats);
            stats.batches_unwritten += 1;
            stats.ops_cancelled += batch.len();
        }
        self.advance(ticket);
    }

    /// Raises the durable ticket to `ticket` (never lowers it).
    pub(crate) fn advance(&self, ticket: u64) {
        self.durable.send_if_modified(|d| {
            let raise = *d < ticket;
            if raise {
                *d = ticket;
            }
            raise
        });
    }
}

/// Locks, ignoring poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The durable store. Cheap to clone; every clone is the same store. Dropping the last clone
/// closes it (see [`Store::close`]).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    next_message_id: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        close(&self.shared, &self.writer);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.shared.path)
            .field("policy", &self.inner.shared.policy)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates `<dir>/mqtt.redb` (creating `dir` if missing; what it creates, directories
    /// and file, only the broker's user may read: 0700 and 0600), returns what it holds and
    /// starts the writer thread. A file that is not a redb database, is truncated or unreadable,
    /// is another program's redb database, or holds a value that does not decode, is an error
    /// naming the file; it is never replaced. The file is locked while open: a second open of
    /// the same directory fails.
    pub fn open(dir: &Path, policy: Policy) -> Result<(Store, Recovered), StoreError> {
        create_private_dir(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let control = Arc::new(Control::default());
        let db = tables::open_database(&path, &control).map_err(|reason| StoreError::Open {
            path: path.clone(),
            reason,
        })?;
        let state = recover::recover(&db, &path, SystemTime::now())?;
        let shared = Arc::new(Shared {
            policy,
            path,
            pending: Mutex::new(Pending {
                collecting: Collecting::default(),
                batch: 1,
                since: None,
                idle_mark: None,
                writer: WriterState::Busy,
                closing: false,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(0),
            stats: Mutex::new(StoreStats::default()),
            control,
        });
        let writer = Writer::new(Arc::clone(&shared), db, state.refcounts);
        let handle = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(StoreError::Spawn)?;
        let store = Store {
            inner: Arc::new(Inner {
                shared,
                next_message_id: AtomicU64::new(state.next_message_id),
                writer: Mutex::new(Some(handle)),
            }),
        };
        Ok((store, state.recovered))
    }

    /// Queues ops for the next batch and returns its ticket; never waits for I/O (it takes a
    /// lock held only to coalesce the ops with those collected). Ops of one call always land in
    /// the same batch, in order. With no ops it returns the previous batch's ticket. After
    /// [`close`](Self::close) ops are dropped and the ticket never becomes durable.
    ///
    /// When the ops cancel everything collected (the last queued message of a persistent
    /// session acknowledged by its subscriber before the batch commits, say) and the writer is
    /// not busy with an earlier batch, the batch becomes durable here and now: there is nothing
    /// to write, and earlier batches are all durable.
    pub fn submit(&self, ops: impl IntoIterator<Item = Op>) -> Ticket {
        let shared = &self.inner.shared;
        let mut pending = lock(&shared.pending);
        let ticket = pending.batch;
        if pending.closing {
            return Ticket(ticket);
        }
        let before = pending.collecting.submitted();
        let live_before = pending.collecting.live();
        for op in ops {
            pending.collecting.push(op);
        }
        if pending.collecting.submitted() == before {
            return Ticket(ticket - 1);
        }
        if before == 0 {
            pending.since = Some(Instant::now());
        }
        let live = pending.collecting.live();
        if live == 0 && pending.writer != WriterState::Busy {
            let (batch, ticket) = pending.take_batch();
            drop(pending);
            shared.publish_unwritten(&batch, ticket);
            // The cancelled ops are dropped here, after the acknowledgements are released.
            drop(batch);
            return Ticket(ticket);
        }
        let full = match shared.policy {
            Policy::Batch { max_size, .. } => live_before < max_size && live >= max_size,
            _ => false,
        };
        // A busy writer looks at the pending ops before it sleeps; a sleeping one must be woken
        // for the first op (it sleeps without a deadline then) and for a full batch.
        let wake = match pending.writer {
            WriterState::Busy => false,
            WriterState::Idle => true,
            WriterState::WaitingUntil(_) => full,
        };
        drop(pending);
        if wake {
            shared.wake.notify_one();
        }
        if !shared.policy.acks_wait() {
            shared.advance(ticket);
        }
        Ticket(ticket)
    }

    /// Tells the writer that the submitters have run out of work, so the batch collecting under
    /// [`Policy::Batch`] may commit once no more ops arrive for [`IDLE_GRACE`](crate::IDLE_GRACE), instead of
    /// waiting for `max_delay` or `max_size`. The broker calls it when a runtime worker thread
    /// parks (`tokio::runtime::Builder::on_thread_park`): a client with one message in flight
    /// then waits for the grace and the sync, not for `max_delay`, while under load a batch
    /// still collects everything that arrives close together (acknowledgements arriving within
    /// the grace keep cancelling the changes they end). Cheap when nothing is pending.
    ///
    /// Not when every op left to write is the `Enqueue` of an entry whose last `UpdateEntry`
    /// said `delivered` (the packet went to its client without waiting for the store): the
    /// client's acknowledgement will cancel it, and the batch then needs no commit at all, so it
    /// waits for those acknowledgements, or for `max_delay` when they do not come.
    pub fn submitters_idle(&self) {
        let shared = &self.inner.shared;
        let mut pending = lock(&shared.pending);
        let count = pending.collecting.submitted();
        if count == 0 || pending.idle_mark.is_some_and(|(marked, _)| marked == count) {
            return;
        }
        // Everything left to write is a message sent to a connected client, whose
        // acknowledgement will cancel it: the batch waits for those (or for `max_delay`), which
        // spares a commit and, under load, two wake-ups of the writer per batch.
        if pending.collecting.only_awaiting_acks() {
            return;
        }
        let now = Instant::now();
        pending.idle_mark = Some((count, now));
        // Only a writer sleeping past the grace needs waking; a busy one sees the mark.
        let wake = match pending.writer {
            WriterState::WaitingUntil(until) => until > now + crate::IDLE_GRACE,
            WriterState::Busy | WriterState::Idle => false,
        };
        // Unlocked first: on a busy core the woken writer would otherwise spin on the lock
        // this thread holds.
        drop(pending);
        if wake && matches!(shared.policy, Policy::Batch { .. }) {
            shared.wake.notify_one();
        }
    }

    /// [`submit`](Self::submit) for one op.
    pub fn submit_one(&self, op: Op) -> Ticket {
        self.submit([op])
    }

    /// The highest durable ticket. Under [`Policy::Interval`] and [`Policy::Never`] every
    /// submitted ticket counts as durable at once: acknowledgements do not wait.
    pub fn durable(&self) -> Ticket {
        Ticket(*self.inner.shared.durable.borrow())
    }

    /// A receiver of the durable ticket, which changes whenever it advances, for a task to
    /// `select!` on.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.inner.shared.durable.subscribe()
    }

    /// Waits until `ticket` is durable. While writes fail this waits until they succeed again;
    /// a ticket submitted after [`close`](Self::close) never becomes durable.
    pub async fn wait(&self, ticket: Ticket) {
        let mut rx = self.watch();
        // The sender lives as long as `self`: this ends only when the ticket is durable.
        let _ = rx.wait_for(|&d| d >= ticket.0).await;
    }

    /// A fresh message id: above every id stored when the store was opened, never repeated.
    pub fn next_message_id(&self) -> u64 {
        self.inner.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes everything pending, syncs, and stops the writer, blocking until it has (call it
    /// from `spawn_blocking` or after the runtime stops). While writes fail it retries a few
    /// times more, then gives up and logs what was not written. Later calls, and drops, do
    /// nothing.
    pub fn close(&self) {
        close(&self.inner.shared, &self.inner.writer);
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        let pending_ops = lock(&self.inner.shared.pending).collecting.submitted() as usize;
        StoreStats {
            pending_ops,
            ..lock(&self.inner.shared.stats).clone()
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// The policy it runs with.
    pub fn policy(&self) -> Policy {
        self.inner.shared.policy
    }

    #[cfg(test)]
    pub(crate) fn control(&self) -> &Control {
        &self.inner.shared.control
    }
}

fn close(shared: &Shared, writer: &Mutex<Option<JoinHandle<()>>>) {
    lock(&shared.pending).closing = true;
    shared.wake.notify_all();
    if let Some(handle) = lock(writer).take() {
        // A panic in the writer was already reported by the panic hook.
        let _ = handle.join();
    }
}

/// Creates `dir` and its missing parents, each 0700 from its creation: the store holds messages
/// and user names. A directory that already exists is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::record::{SessionExpiry, SessionRecord};

    fn session(client_id: &str) -> Op {
        Op::PutSession(Box::new(SessionRecord {
            client_id: client_id.to_owned(),
            expiry: SessionExpiry::Never,
            disconnected_at: None,
            subscriptions: Vec::new(),
            will: None,
            username: None,
        }))
    }

    #[test]
    fn store_and_ops_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Store>();
        send_sync::<Op>();
    }

    #[tokio::test]
    async fn failed_writes_are_retried_and_never_reported_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Policy::Always).unwrap();
        let first = store.submit_one(session("before"));
        store.wait(first).await;

        // A full disk: every write fails.
        store.control().fail_writes.store(true, Ordering::Relaxed);
        let errors = async |n| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while store.stats().write_errors < n {
                assert!(Instant::now() < deadline, "{:?}", store.stats());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let ticket = store.submit_one(session("during"));
        errors(1).await;
        let later = store.submit_one(session("queued meanwhile"));
        errors(2).await;
        let stats = store.stats();
        assert!(stats.failing);
        assert_eq!(stats.pending_ops, 1, "the next batch waits");
        assert!(stats.last_error.is_some());
        assert_eq!(store.durable(), first, "nothing failed is reported durable");

        // Space returns: the same batch commits, then the next.
        store.control().fail_writes.store(false, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), store.wait(later))
            .await
            .expect("durable once writes succeed");
        assert!(store.durable() >= ticket);
        let stats = store.stats();
        assert!(!stats.failing);
        assert!(stats.last_error.is_some(), "kept for /metrics");
        store.close();

        let (_, recovered) = Store::open(dir.path(), Policy::Always).unwrap();
        let ids: Vec<_> = recovered
            .sessions
            .iter()
            .map(|s| s.record.client_id.as_str())
            .collect();
        assert_eq!(ids, ["before", "during", "queued meanwhile"]);
    }

    #[tokio::test]
    async fn idle_submitters_commit_the_batch_without_waiting_for_its_delay() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::Batch {
            max_delay: Duration::from_secs(30),
            max_size: 1_000_000,
        };
        let (store, _) = Store::open(dir.path(), policy).unwrap();
        let ticket = store.submit_one(session("waiting"));
        // Under `batch` the op waits for its delay...
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.durable() < ticket, "committed before its delay");
        // ...unless the submitters say they are idle: then it commits after the grace.
        store.submitters_idle();
        tokio::time::timeout(Duration::from_secs(10), store.wait(ticket))
            .await
            .expect("committed after the submitters went idle");
        assert_eq!(store.stats().batches, 1);

        // An op arriving after the mark makes it stale: the new op waits again.
        let first = store.submit_one(session("first"));
        store.submitters_idle();
        let second = store.submit_one(session("second"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            store.durable() < first,
            "committed although more ops arrived"
        );
        store.submitters_idle();
        tokio::time::timeout(Duration::from_secs(10), store.wait(second))
            .await
            .expect("committed once idle again");
        assert_eq!(store.stats().batches, 2, "both ops in one batch");
        store.close();
    }

    #[tokio::test]
    async fn a_batch_that_cancels_out_waits_for_the_batch_being_written() {
        use crate::record::{EntryState, MessageRecord, QueueEntry};

        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Policy::Always).unwrap();
        store.control().fail_writes.store(true, Ordering::Relaxed);
        let failing = store.submit_one(session("failing"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.stats().write_errors == 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // While that batch is retried, a pair that cancels out must not report its later
        // ticket durable: that would count the failing batch durable too.
        let message = MessageRecord {
            topic: codec::TopicName::try_from("t").unwrap(),
            payload: bytes::Bytes::from_static(b"m"),
            qos: codec::QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
        };
        let entry = QueueEntry {
            message_id: 1,
            qos: codec::QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            packet_id: None,
            state: EntryState::Queued,
        };
        let client: Arc<str> = Arc::from("s");
        let cancelled = store.submit([
            Op::PutMessage {
                id: 1,
                message: Arc::new(message),
            },
            Op::Enqueue {
                client_id: Arc::clone(&client),
                seq: 1,
                entry,
            },
            Op::Dequeue {
                client_id: client,
                seq: 1,
            },
        ]);
        assert!(cancelled > failing);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.durable() < failing, "{:?}", store.stats());

        store.control().fail_writes.store(false, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), store.wait(cancelled))
            .await
            .expect("durable once the failing batch commits");
        let stats = store.stats();
        assert_eq!((stats.batches, stats.batches_unwritten), (1, 1));
        store.close();
    }

    #[tokio::test]
    async fn close_while_writes_fail_gives_up_without_reporting_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Policy::Always).unwrap();
        store.control().fail_writes.store(true, Ordering::Relaxed);
        let ticket = store.submit_one(session("lost"));
        let start = Instant::now();
        store.close();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(store.durable() < ticket);
        let attempts = crate::writer::ATTEMPTS_WHEN_CLOSING;
        assert!(store.stats().write_errors >= u64::from(attempts));
        store.control().fail_writes.store(false, Ordering::Relaxed);
        let (_, recovered) = Store::open(dir.path(), Policy::Always).unwrap();
        assert!(recovered.sessions.is_empty());
    }
}
