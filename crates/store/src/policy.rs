//! [`Policy`]: when batches are committed and synced (the broker maps `mqtt.storage.durability`
//! onto it).

use std::time::Duration;

/// When changes reach the disk; see the crate documentation for what each policy can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Commit and sync as soon as anything is pending (to write: a batch that cancels out is
    /// durable without a sync); what arrives during a commit forms the next batch (one sync per
    /// batch).
    Always,
    /// Group commit: a batch collects until `max_delay` has passed since its first op or it
    /// holds `max_size` ops to write, then is committed and synced.
    Batch {
        /// The longest an op waits for others to join its batch.
        max_delay: Duration,
        /// The most ops to write in one batch (a single submit may exceed it); ops cancelled
        /// within the batch do not count.
        max_size: usize,
    },
    /// Ops collect in memory and are committed and synced every period; they count as durable
    /// when submitted.
    Interval(Duration),
    /// Every batch is written to the file as soon as it is pending but never synced: the
    /// operating system decides when it reaches the disk. Ops count as durable when submitted.
    Never,
}

impl Policy {
    /// True when acknowledgements wait for the batch to be synced (`Always`, `Batch`).
    pub fn acks_wait(&self) -> bool {
        matches!(self, Policy::Always | Policy::Batch { .. })
    }
}

impl Default for Policy {
    /// `Batch`, 2 ms, 1024 ops: group commit, so nothing acknowledged is lost. The broker's
    /// configuration has the same default (`mqtt.storage.durability: batch`).
    fn default() -> Self {
        Policy::Batch {
            max_delay: Duration::from_millis(2),
            max_size: 1024,
        }
    }
}
