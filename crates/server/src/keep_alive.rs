//! Keep alive (§3.1.2.10): a client silent for one and a half times its keep-alive interval is
//! disconnected.
//!
//! One sweeper per broker (`Shared::ensure_keep_alive_sweeper`) checks every session's deadline
//! twice a second, instead of a timer in each connection: a tokio `Sleep` costs an idle
//! connection 112 bytes (plus its allocation), a [`Deadline`] in the session 16. The sweeper
//! does not close anything itself: it marks the deadline due and wakes the connection, which
//! first reads whatever its client sent and only then checks the deadline. A client whose packets were waiting unread, because its connection
//! was busy writing, is so not taken for silent. A silent client is closed at most one sweep
//! interval after its deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bits of the deadline word that hold the time; the 16 above them hold the owner's generation.
const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// The time of a deadline nobody watches: no connection, or one that stopped reading while the
/// durable store catches up (its client is not the one being silent).
const NOT_WATCHED: u64 = TIME_MASK;

/// A session's keep-alive deadline, in `Shared::clock_ms` time, with the generation of the
/// connection that owns it: a connection moves the deadline only while it carries its
/// generation, so one that was taken over cannot move its successor's.
#[derive(Debug)]
pub(crate) struct Deadline {
    word: AtomicU64,
    /// Set by the sweeper when the deadline passed; taken by the connection, which checks.
    due: AtomicBool,
}

impl Default for Deadline {
    fn default() -> Self {
        Self {
            word: AtomicU64::new(NOT_WATCHED),
            due: AtomicBool::new(false),
        }
    }
}

fn pack(generation: u64, at_ms: u64) -> u64 {
    ((generation & 0xFFFF) << TIME_BITS) | at_ms.min(NOT_WATCHED)
}

impl Deadline {
    /// A newly attached connection's deadline; called under the session lock, before the
    /// connection's eviction channel is set.
    pub fn start(&self, generation: u64, at_ms: u64) {
        self.word.store(pack(generation, at_ms), Ordering::Release);
        self.due.store(false, Ordering::Release);
    }

    /// Moves the deadline of connection `generation` to `at_ms`, unless another connection
    /// owns it now.
    pub fn moved(&self, generation: u64, at_ms: u64) {
        let wanted = pack(generation, at_ms);
        let mut current = self.word.load(Ordering::Relaxed);
        while current >> TIME_BITS == generation & 0xFFFF {
            match self.word.compare_exchange_weak(
                current,
                wanted,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Stops watching connection `generation` (it closed, or stopped reading).
    pub fn stop(&self, generation: u64) {
        self.moved(generation, NOT_WATCHED);
    }

    /// Takes the sweeper's mark; true when it was set and the deadline of connection
    /// `generation` has indeed passed.
    pub fn take_overdue(&self, generation: u64, now_ms: u64) -> bool {
        // A load first: this runs on every wait of every connection, the mark rarely.
        if !self.due.load(Ordering::Relaxed) || !self.due.swap(false, Ordering::AcqRel) {
            return false;
        }
        let word = self.word.load(Ordering::Acquire);
        word >> TIME_BITS == generation & 0xFFFF && word & TIME_MASK <= now_ms
    }

    /// For the sweeper: marks the deadline due if it has passed; true when the mark is new.
    pub fn mark_if_passed(&self, now_ms: u64) -> bool {
        let at = self.word.load(Ordering::Acquire) & TIME_MASK;
        at != NOT_WATCHED && at <= now_ms && !self.due.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_moves_the_deadline() {
        let d = Deadline::default();
        d.start(7, 1_000);
        d.moved(6, 50_000);
        assert!(d.mark_if_passed(1_000), "the old owner's move was ignored");
        assert!(d.take_overdue(7, 1_000));
        d.moved(7, 5_000);
        assert!(!d.mark_if_passed(4_999));
        assert!(d.mark_if_passed(5_000));
        assert!(!d.mark_if_passed(5_000), "marked once");
        // Marked, but the owner heard from its client since: not overdue.
        d.moved(7, 9_000);
        assert!(!d.take_overdue(7, 6_000));
        // Taken over: the new owner's deadline, not the old one's.
        d.start(8, 20_000);
        d.stop(7);
        assert!(!d.mark_if_passed(19_999));
        d.stop(8);
        assert!(!d.mark_if_passed(u64::MAX - 1), "not watched");
        // Generations wrap at 16 bits and times saturate.
        d.start(0x1_0008, u64::MAX);
        assert!(!d.mark_if_passed(u64::MAX - 1));
    }
}
