//! The writer thread: takes the pending ops as one batch when the policy says so, commits it in
//! one write transaction (none when it writes nothing), then publishes its ticket as durable.
//! Failed commits are retried with backoff, and nothing is reported durable until its batch has
//! committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tracing::{error, info};

use crate::Policy;
use crate::batch::Batch;
use crate::fast_hash::FastMap;
use crate::store::{Shared, WriterState, lock};
use crate::tables;

/// The first wait after a failed commit; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a batch still waits for more ops after the submitters went idle (see
/// [`crate::Store::submitters_idle`]): about the time a subscriber on the same machine takes
/// to acknowledge what it was just sent.
pub const IDLE_GRACE: Duration = Duration::from_micros(200);
/// Attempts made for a batch after `close` before giving it up.
pub(crate) const ATTEMPTS_WHEN_CLOSING: u32 = 3;

/// The writer's state; it runs on its own thread because redb blocks.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// `None` after a failure: redb refuses every operation after an I/O error until the
    /// database is opened again.
    db: Option<Database>,
    /// Message id -> queue entries referring to it, as committed.
    refcounts: FastMap<u64, u32>,
    /// When the last batch committed (for [`Policy::Interval`]).
    last_commit: Instant,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, db: Database, refcounts: FastMap<u64, u32>) -> Self {
        Self {
            shared,
            db: Some(db),
            refcounts,
            last_commit: Instant::now(),
        }
    }

    /// Runs until `close`, then flushes and syncs.
    pub(crate) fn run(mut self) {
        if self.shared.policy == Policy::Never {
            self.shared.control.set_skip_sync(true);
        }
        while let Some((batch, ticket, closing)) = self.next_batch() {
            if batch.writes_nothing() {
                self.shared.publish_unwritten(&batch, ticket);
            } else if !self.commit(&batch, ticket, closing) {
                break;
            }
        }
        // Nothing is pending. Closing the database (dropping `self`) syncs the file, which
        // covers what `never` left unsynced, and marks the shutdown clean.
        self.shared.control.set_skip_sync(false);
    }

    /// Waits until the policy says the pending ops form a batch, and takes them with their
    /// ticket; `None` once closing with nothing pending.
    fn next_batch(&mut self) -> Option<(Batch, u64, bool)> {
        let shared = Arc::clone(&self.shared);
        let mut pending = lock(&shared.pending);
        // Under `batch`, with nothing pending the writer first sleeps `max_delay` before it
        // sleeps until woken: an op arriving meanwhile is due no sooner than the end of that
        // sleep, so the submitter need not wake it (on a busy core that wake-up would preempt
        // the submitter once per batch).
        let mut lingered = false;
        loop {
            let now = Instant::now();
            let due = if pending.collecting.submitted() == 0 {
                if pending.closing {
                    return None;
                }
                match shared.policy {
                    Policy::Batch { max_delay, .. } if !lingered && !max_delay.is_zero() => {
                        lingered = true;
                        Some(now + max_delay)
                    }
                    _ => None,
                }
            } else if pending.closing || pending.collecting.live() == 0 {
                // Everything collected cancels out (the submitter found the writer busy with an
                // earlier batch): nothing to write or wait for.
                Some(now)
            } else {
                match shared.policy {
                    Policy::Always | Policy::Never => Some(now),
                    Policy::Batch {
                        max_delay,
                        max_size,
                    } => {
                        let since = pending.since.unwrap_or(now);
                        let mut due = if pending.collecting.live() >= max_size {
                            now
                        } else {
                            since + max_delay
                        };
                        // The submitters went idle and nothing arrived since.
                        if let Some((count, at)) = pending.idle_mark
                            && count == pending.collecting.submitted()
                        {
                            due = due.min(at + IDLE_GRACE);
                        }
                        Some(due)
                    }
                    Policy::Interval(every) => Some(self.last_commit + every),
                }
            };
            pending.writer = match due {
                Some(due) if due <= now => WriterState::Busy,
                Some(due) => WriterState::WaitingUntil(due),
                None => WriterState::Idle,
            };
            pending = match due {
                Some(due) if due <= now => {
                    let (batch, ticket) = pending.take_batch();
                    return Some((batch, ticket, pending.closing));
                }
                Some(due) => shared
                    .wake
                    .wait_timeout(pending, due - now)
                    .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard),
                None => shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
            pending.writer = WriterState::Busy;
        }
    }

    /// Commits `batch` as `ticket`, retrying until it succeeds, then publishes the ticket. When
    /// closing it gives up after a few attempts and returns false: the writer then stops, as a
    /// later ticket published would count this one durable too.
    fn commit(&mut self, batch: &Batch, ticket: u64, closing: bool) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_commit(batch) {
                Ok(applied) => {
                    for (id, refs) in applied.refcounts {
                        if refs == 0 {
                            self.refcounts.remove(&id);
                        } else {
                            self.refcounts.insert(id, refs);
                        }
                    }
                    self.last_commit = Instant::now();
                    {
                        let mut stats = lock(&self.shared.stats);
                        if stats.failing {
                            info!(path = %self.shared.path.display(), "store: writes succeed again");
                        }
                        stats.failing = false;
                        stats.batches += 1;
                        stats.ops_written += applied.written;
                        stats.ops_cancelled += applied.cancelled;
                        stats.bytes_written += applied.bytes;
                    }
                    self.shared.advance(ticket);
                    return true;
                }
                Err(e) => {
                    // redb refuses everything after an I/O error: open the file again next time.
                    self.db = None;
                    error!(path = %self.shared.path.display(), error = %e, ops = batch.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "store: commit failed; nothing more is acknowledged until it succeeds");
                    {
                        let mut stats = lock(&self.shared.stats);
                        stats.failing = true;
                        stats.write_errors += 1;
                        stats.last_error = Some(e);
                    }
                    // `close` may have come while this batch was failing.
                    let closing = closing || lock(&self.shared.pending).closing;
                    if closing && attempts >= ATTEMPTS_WHEN_CLOSING {
                        let pending = lock(&self.shared.pending).collecting.submitted();
                        error!(path = %self.shared.path.display(), ops = batch.len() + pending,
                            "store: closing while writes fail; ops not written");
                        return false;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn try_commit(&mut self, batch: &Batch) -> Result<crate::batch::Applied, String> {
        if self.db.is_none() {
            let db = tables::open_database(&self.shared.path, &self.shared.control)
                .map_err(|e| format!("reopening: {e}"))?;
            self.db = Some(db);
        }
        let db = self
            .db
            .as_ref()
            .expect("the database was opened just above");
        let mut txn = db.begin_write().map_err(|e| e.to_string())?;
        // `Immediate` is redb's default; `never` turns the sync off in the backend instead.
        txn.set_durability(Durability::Immediate)
            .map_err(|e| e.to_string())?;
        let applied = batch
            .apply(&txn, &self.refcounts)
            .map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(applied)
    }
}
