//! One batch of ops: coalesced once, then applied in one write transaction (again after a
//! failure: applying does not change the batch).

use std::sync::Arc;

use redb::{ReadableTable, Table, WriteTransaction};
use tracing::{debug, error, warn};

use crate::fast_hash::FastMap;
use crate::format;
use crate::record::{MessageRecord, Op};
use crate::tables::{INBOUND, MESSAGES, QUEUE, RETAINED, SESSIONS, SUBSCRIPTIONS};

/// The batch being collected. Ops are coalesced as they arrive: an `Enqueue` and a later
/// `Dequeue` of the same entry cancel each other, an `UpdateEntry` after the `Enqueue` of its
/// entry is folded into it, and `PutMessage`s only make their message available. So the
/// submitter knows at once when everything collected cancels out (see [`Collecting::live`]), and
/// the writer takes a batch that needs no more work. Relies on a `seq` never being reused for a
/// live entry of the same client.
#[derive(Default)]
pub(crate) struct Collecting {
    /// The ops to apply, in order; `None` where an `Enqueue` was cancelled.
    ops: Vec<Option<Op>>,
    /// (client id, seq) -> the Enqueue nothing has cancelled yet. The client
    /// id is its allocation's address: comparing and hashing it costs nothing, and as the
    /// Enqueue in `ops` holds the allocation, no other client id can have that address while
    /// the key is here. Ops naming the client through another allocation of the same string
    /// are not matched with it (see `Op::Enqueue`).
    enqueued: FastMap<(usize, u64), Slot>,
    /// The messages of the batch's `PutMessage`s, written when an entry first refers to them.
    messages: FastMap<u64, Arc<MessageRecord>>,
    /// Number of `PutMessage` ops.
    puts: u64,
    /// Ops submitted.
    submitted: u64,
    /// Ops cancelled (not counting `PutMessage`s, decided when applying).
    cancelled: u64,
    /// Ops in `ops` that are not cancelled.
    live: usize,
    /// Slots of `enqueued` that are `awaiting`.
    awaiting: usize,
}

/// An Enqueue in [`Collecting::ops`] that nothing has cancelled yet.
#[derive(Clone, Copy)]
struct Slot {
    /// Its index in `ops`.
    index: usize,
    /// Its last update was `delivered`: an acknowledgement that cancels it may come.
    awaiting: bool,
}

impl Collecting {
    /// Adds an op, coalescing it with those collected.
    pub(crate) fn push(&mut self, op: Op) {
        self.submitted += 1;
        match op {
            Op::PutMessage { id, message } => {
                self.puts += 1;
                self.messages.insert(id, message);
            }
            Op::Enqueue {
                ref client_id, seq, ..
            } => {
                let slot = Slot {
                    index: self.ops.len(),
                    awaiting: false,
                };
                let replaced = self.enqueued.insert((address(client_id), seq), slot);
                if let Some(old) = replaced {
                    // No longer reachable by its acknowledgement (a seq reused while live,
                    // which the broker never does).
                    self.awaiting -= usize::from(old.awaiting);
                }
                self.keep(op);
            }
            Op::UpdateEntry {
                ref client_id,
                seq,
                packet_id,
                state,
                delivered,
            } => match self.enqueued.get_mut(&(address(client_id), seq)) {
                Some(slot) => {
                    self.awaiting -= usize::from(slot.awaiting);
                    self.awaiting += usize::from(delivered);
                    slot.awaiting = delivered;
                    if let Some(Op::Enqueue { entry, .. }) = &mut self.ops[slot.index] {
                        entry.packet_id = packet_id;
                        entry.state = state;
                    }
                    self.cancelled += 1;
                }
                None => self.keep(op),
            },
            Op::Dequeue { ref client_id, seq } => {
                match self.enqueued.remove(&(address(client_id), seq)) {
                    Some(slot) => {
                        self.awaiting -= usize::from(slot.awaiting);
                        self.ops[slot.index] = None;
                        self.live -= 1;
                        self.cancelled += 2;
                    }
                    None => self.keep(op),
                }
            }
            Op::DeleteSession { ref client_id } => {
                // Entries enqueued before it are deleted with the session; no acknowledgement
                // will cancel them now.
                let (ops, awaiting) = (&self.ops, &mut self.awaiting);
                self.enqueued.retain(|_, slot| match &ops[slot.index] {
                    Some(Op::Enqueue { client_id: c, .. }) if **c == **client_id => {
                        *awaiting -= usize::from(slot.awaiting);
                        false
                    }
                    _ => true,
                });
                self.keep(op);
            }
            other => self.keep(other),
        }
    }

    fn keep(&mut self, op: Op) {
        self.ops.push(Some(op));
        self.live += 1;
    }

    /// True when every op left to write is the Enqueue of an entry delivered to its client
    /// without waiting for the store (see `Op::UpdateEntry::delivered`), each of which the
    /// client's acknowledgement will cancel.
    pub(crate) fn only_awaiting_acks(&self) -> bool {
        self.live == self.awaiting
    }

    /// Ops submitted since the batch began.
    pub(crate) fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Ops that applying the batch would apply: 0 when everything collected cancelled out
    /// (or nothing was submitted), so committing it would change nothing in the file.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Takes the collected ops as a batch, leaving an empty collector sized like the last (the
    /// next batch likely holds as many ops: its buffers then do not grow op by op).
    pub(crate) fn take(&mut self) -> Batch {
        let (op_count, message_count) = (self.ops.len(), self.messages.len());
        // Kept with its capacity (the batch does not need it), unless an unusually large batch
        // left it much bigger than the last batch needs.
        let mut enqueued = std::mem::take(&mut self.enqueued);
        enqueued.clear();
        enqueued.shrink_to(op_count);
        let taken = std::mem::replace(
            self,
            Collecting {
                ops: Vec::with_capacity(op_count),
                enqueued,
                messages: FastMap::with_capacity_and_hasher(message_count, Default::default()),
                ..Collecting::default()
            },
        );
        Batch {
            ops: taken.ops,
            messages: taken.messages,
            puts: taken.puts,
            submitted: taken.submitted,
            cancelled: taken.cancelled,
            live: taken.live,
        }
    }
}

/// The address of a client id's allocation (see [`Collecting::enqueued`]).
fn address(client_id: &Arc<str>) -> usize {
    Arc::as_ptr(client_id).cast::<u8>() as usize
}

/// A coalesced batch, taken from [`Collecting`].
pub(crate) struct Batch {
    /// The ops to apply, in order (`None`: cancelled), without `PutMessage`s.
    ops: Vec<Option<Op>>,
    /// The messages of the batch's `PutMessage`s, written when an entry first refers to them.
    messages: FastMap<u64, Arc<MessageRecord>>,
    /// Number of `PutMessage` ops.
    puts: u64,
    /// Ops submitted.
    submitted: u64,
    /// Ops cancelled by coalescing (not counting `PutMessage`s, decided when applying).
    cancelled: u64,
    /// Ops to apply.
    live: usize,
}

/// What applying a batch did, kept only if its transaction commits.
pub(crate) struct Applied {
    /// New reference counts of the messages the batch touched (0: row deleted).
    pub(crate) refcounts: FastMap<u64, u32>,
    /// Ops applied.
    pub(crate) written: u64,
    /// Ops made unnecessary.
    pub(crate) cancelled: u64,
    /// Key and value bytes written.
    pub(crate) bytes: u64,
}

impl Batch {
    /// True when applying the batch would change nothing in the file: every op it kept was
    /// cancelled, and a `PutMessage` is written only with an entry that refers to it.
    pub(crate) fn writes_nothing(&self) -> bool {
        self.live == 0
    }

    /// Number of ops submitted in the batch.
    pub(crate) fn len(&self) -> u64 {
        self.submitted
    }

    /// Applies the batch in `txn`. `refcounts` are the counts as committed; the changes come
    /// back in [`Applied`].
    pub(crate) fn apply(
        &self,
        txn: &WriteTransaction,
        refcounts: &FastMap<u64, u32>,
    ) -> Result<Applied, redb::Error> {
        let mut a = Apply {
            messages: txn.open_table(MESSAGES)?,
            sessions: txn.open_table(SESSIONS)?,
            queue: txn.open_table(QUEUE)?,
            inbound: txn.open_table(INBOUND)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS)?,
            retained: txn.open_table(RETAINED)?,
            base: refcounts,
            changed: FastMap::default(),
            bytes: 0,
            stored: 0,
        };
        for op in self.ops.iter().flatten() {
            a.op(op, &self.messages)?;
        }
        let cancelled = self.cancelled + self.puts.saturating_sub(a.stored);
        Ok(Applied {
            refcounts: a.changed,
            written: self.submitted - cancelled,
            cancelled,
            bytes: a.bytes,
        })
    }
}

/// The tables and reference counts of one transaction.
struct Apply<'t, 'r> {
    messages: Table<'t, u64, &'static [u8]>,
    sessions: Table<'t, &'static str, &'static [u8]>,
    queue: Table<'t, (&'static str, u64), &'static [u8]>,
    inbound: Table<'t, (&'static str, u16), ()>,
    subscriptions: Table<'t, (&'static str, &'static str), &'static [u8]>,
    retained: Table<'t, &'static str, &'static [u8]>,
    base: &'r FastMap<u64, u32>,
    changed: FastMap<u64, u32>,
    bytes: u64,
    /// Message rows written.
    stored: u64,
}

impl Apply<'_, '_> {
    fn op(
        &mut self,
        op: &Op,
        messages: &FastMap<u64, Arc<MessageRecord>>,
    ) -> Result<(), redb::Error> {
        match op {
            // Moved into `Batch::messages` by coalescing.
            Op::PutMessage { .. } => {}
            Op::PutSession(session) => {
                let value = format::encode_session(session);
                self.count(session.client_id.len(), &value);
                self.sessions
                    .insert(session.client_id.as_str(), value.as_slice())?;
            }
            Op::DeleteSession { client_id } => self.delete_session(client_id)?,
            Op::Enqueue {
                client_id,
                seq,
                entry,
            } => {
                let id = entry.message_id;
                let refs = self.refcount(id);
                if refs == 0 {
                    let Some(message) = messages.get(&id) else {
                        error!(%client_id, seq, message_id = id,
                            "store: enqueue of a message that is neither stored nor in the batch; entry not stored");
                        return Ok(());
                    };
                    let value = format::encode_message(message);
                    self.count(8, &value);
                    self.messages.insert(id, value.as_slice())?;
                    self.stored += 1;
                }
                self.changed.insert(id, refs + 1);
                let value = format::encode_entry(entry);
                self.count(client_id.len() + 8, &value);
                let old = self
                    .queue
                    .insert((&**client_id, *seq), value.as_slice())?
                    .map(|old| format::decode_entry(old.value()));
                if let Some(old) = old {
                    self.release_entry(old)?;
                }
            }
            Op::UpdateEntry {
                client_id,
                seq,
                packet_id,
                state,
                ..
            } => {
                let key = (&**client_id, *seq);
                let current = self
                    .queue
                    .get(key)?
                    .map(|row| format::decode_entry(row.value()));
                match current {
                    Some(Ok(mut entry)) => {
                        entry.packet_id = *packet_id;
                        entry.state = *state;
                        let value = format::encode_entry(&entry);
                        self.count(client_id.len() + 8, &value);
                        self.queue.insert(key, value.as_slice())?;
                    }
                    Some(Err(e)) => {
                        warn!(%client_id, seq, error = %e, "store: cannot update an undecodable queue entry")
                    }
                    None => {
                        debug!(%client_id, seq, "store: update of a missing queue entry ignored")
                    }
                }
            }
            Op::Dequeue { client_id, seq } => {
                let old = self
                    .queue
                    .remove((&**client_id, *seq))?
                    .map(|old| format::decode_entry(old.value()));
                if let Some(old) = old {
                    self.release_entry(old)?;
                }
            }
            Op::InboundAdd {
                client_id,
                packet_id,
            } => {
                self.count(client_id.len() + 2, &[]);
                self.inbound.insert((&**client_id, packet_id.get()), ())?;
            }
            Op::InboundRemove {
                client_id,
                packet_id,
            } => {
                self.inbound.remove((&**client_id, packet_id.get()))?;
            }
            Op::PutSubscription {
                client_id,
                subscription,
            } => {
                let value = format::encode_subscription(subscription);
                let filter = subscription.filter.as_str();
                self.count(client_id.len() + filter.len(), &value);
                self.subscriptions
                    .insert((client_id.as_str(), filter), value.as_slice())?;
            }
            Op::DeleteSubscription { client_id, filter } => {
                self.subscriptions
                    .remove((client_id.as_str(), filter.as_str()))?;
            }
            Op::Retain {
                topic,
                message: Some(message),
            } => {
                let value = format::encode_message(message);
                self.count(topic.len(), &value);
                self.retained.insert(topic.as_str(), value.as_slice())?;
            }
            Op::Retain {
                topic,
                message: None,
            } => {
                self.retained.remove(topic.as_str())?;
            }
        }
        Ok(())
    }

    fn count(&mut self, key_len: usize, value: &[u8]) {
        self.bytes += (key_len + value.len()) as u64;
    }

    fn refcount(&self, id: u64) -> u32 {
        self.changed
            .get(&id)
            .or_else(|| self.base.get(&id))
            .copied()
            .unwrap_or(0)
    }

    /// Drops an entry's reference to its message, deleting the message with the last one.
    fn release_entry(
        &mut self,
        entry: Result<crate::record::QueueEntry, format::FormatError>,
    ) -> Result<(), redb::Error> {
        match entry {
            Ok(entry) => self.release(entry.message_id),
            // Its message, if now unused, is dropped at the next start-up.
            Err(e) => {
                warn!(error = %e, "store: removed an undecodable queue entry");
                Ok(())
            }
        }
    }

    fn release(&mut self, id: u64) -> Result<(), redb::Error> {
        let refs = self.refcount(id);
        if refs <= 1 {
            self.changed.insert(id, 0);
            self.messages.remove(id)?;
        } else {
            self.changed.insert(id, refs - 1);
        }
        Ok(())
    }

    fn delete_session(&mut self, client_id: &str) -> Result<(), redb::Error> {
        self.sessions.remove(client_id)?;
        let entries = (client_id, 0)..=(client_id, u64::MAX);
        let mut ids = Vec::new();
        for row in self.queue.range(entries.clone())? {
            let (_, value) = row?;
            match format::decode_entry(value.value()) {
                Ok(entry) => ids.push(entry.message_id),
                Err(e) => warn!(client_id, error = %e, "store: removed an undecodable queue entry"),
            }
        }
        self.queue.retain_in(entries, |_, _| false)?;
        for id in ids {
            self.release(id)?;
        }
        self.inbound
            .retain_in((client_id, 0)..=(client_id, u16::MAX), |_, _| false)?;
        // Every filter of the client: from the empty one to the first key of the next client id.
        let mut gone = Vec::new();
        for row in self.subscriptions.range((client_id, "")..)? {
            let (key, _) = row?;
            let (owner, filter) = key.value();
            if owner != client_id {
                break;
            }
            gone.push(filter.to_owned());
        }
        for filter in &gone {
            self.subscriptions.remove((client_id, filter.as_str()))?;
        }
        Ok(())
    }
}
