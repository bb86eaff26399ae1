//! The broker's durable store: persistent sessions, their queues and in-flight state, inbound
//! QoS 2 ids and retained messages, in one [redb](https://www.redb.org) file,
//! `<dir>/mqtt.redb`, written with group commit.
//!
//! The broker keeps its state in memory and submits each change that must survive a crash as
//! an [`Op`]. [`Store::submit`] queues ops and returns the [`Ticket`] of the batch they go into;
//! one writer thread commits each batch in one write transaction, then publishes its ticket as
//! durable ([`Store::durable`], [`Store::watch`], [`Store::wait`]); a batch whose ops all cancel
//! out (see [Coalescing](#coalescing)) is durable without a transaction. The broker sends an
//! acknowledgement (PUBACK, PUBREC, SUBACK, the CONNACK of a persistent session) once the
//! ticket of its change is durable. [`Store::open`] hands back everything stored, as
//! [`Recovered`].
//!
//! ```no_run
//! # async fn example() -> Result<(), store::StoreError> {
//! use store::{Op, Policy, Store};
//!
//! let (store, recovered) = Store::open("/var/lib/mqtt-data".as_ref(), Policy::default())?;
//! let ticket = store.submit_one(Op::DeleteSession { client_id: "sensor-1".into() });
//! store.wait(ticket).await; // now acknowledge
//! # Ok(()) }
//! ```
//!
//! # Policies and what they can lose
//!
//! | [`Policy`] | an acknowledgement waits for | a process crash (`kill -9`) loses | a power loss loses |
//! |---|---|---|---|
//! | `Always` | its batch committed and synced; a batch is whatever was pending when the previous commit ended (or less, when what is pending cancels out and needs no commit) | nothing acknowledged | nothing acknowledged |
//! | `Batch` | the same, a batch collecting up to `max_delay` or `max_size` ops to write | nothing acknowledged | nothing acknowledged |
//! | `Interval(d)` | nothing | up to `d` of acknowledged changes: ops collect in memory and are committed and synced every `d` | the same |
//! | `Never` | nothing | the batch being collected (each is written to the file as soon as the previous write ends, typically well under a millisecond) | whatever the operating system had not yet written back (on Linux up to about 30 s by default); the file can also be left in a state redb refuses to open, which stops start-up naming the file |
//!
//! "Nothing acknowledged" assumes a disk that honours `fsync`. redb has no commit level that
//! writes without syncing (its `Durability::None` keeps a commit in the process's memory), so
//! `Never` commits durably through a file backend whose sync is switched off; `close` syncs.
//!
//! # Messages are stored once
//!
//! [`Op::PutMessage`] makes a message available to the [`Op::Enqueue`]s of its batch. The
//! writer keeps, in memory, how many queue entries refer to each message (rebuilt at open): the
//! row is written when the first entry refers to it and deleted with the last one, so a message
//! sent to many sessions is stored once and one no entry needs is never written.
//!
//! # Coalescing
//!
//! Ops are coalesced as they are submitted, within the batch being collected: an `Enqueue`
//! followed by the `Dequeue` of the same entry cancels both (a subscriber acknowledged before
//! the batch was taken), an `UpdateEntry` after the `Enqueue` of its entry is folded into it, and
//! a `PutMessage` whose entries were all cancelled is never written.
//! [`StoreStats::ops_cancelled`] counts them. The ops of one entry are matched by the allocation
//! of their `Arc<str>` client id, not its text (see [`Op::Enqueue`]). A batch in which everything cancels out needs no
//! write: it becomes durable at once, without a write transaction or a sync, as soon as every
//! earlier batch is ([`StoreStats::batches_unwritten`]). So a persistent session whose client
//! keeps up costs no disk work, and the acknowledgement of a message it has already acknowledged
//! does not wait for a sync. `max_size` of [`Policy::Batch`] counts the ops left to write.
//!
//! # Write errors
//!
//! A failed commit (disk full, I/O error) is logged at error level and retried with the same
//! batch, 100 ms after the failure, doubling up to 2 s; meanwhile nothing becomes durable, later
//! ops wait in memory, and [`StoreStats::failing`] is set. Once a commit succeeds everything
//! proceeds. What failed is never reported durable.
//!
//! # Start-up
//!
//! [`Store::open`] checks the file's format record, then drops sessions disconnected longer
//! than their expiry (with their queues and inbound ids), expired messages and the entries that
//! deliver them, expired retained messages, and rows no session or entry refers to. A file that
//! is not a redb database, is truncated, is another program's, or holds a value that does not
//! decode, fails the open with a [`StoreError`] naming the file; it is never replaced.
//!
//! The byte format of values is described in the `format` module's source.

mod backend;
mod batch;
mod error;
mod fast_hash;
mod format;
mod policy;
mod record;
mod recover;
mod store;
mod tables;
mod writer;

pub use error::StoreError;
pub use policy::Policy;
pub use record::{
    EntryState, MessageRecord, Op, QueueEntry, Recovered, RecoveredSession, SessionExpiry,
    SessionRecord, SubscriptionRecord, WillRecord,
};
pub use store::{Store, StoreStats, Ticket};
pub use tables::FILE_NAME;
pub use writer::IDLE_GRACE;
