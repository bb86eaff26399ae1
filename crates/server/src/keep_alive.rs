//! Keep alive (§3.1.2.10): a client silent for one and a half times its keep-alive interval is
//! disconnected.
//!
//! One sweeper per broker checks every connected session's deadline a few times a second,
//! instead of a timer in each connection: a tokio `Sleep` costs an idle connection 112 bytes
//! (plus its allocation), a deadline in the session 8. A silent client is closed at most one
//! sweep interval after its deadline.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::broker::Shared;
use crate::session::{Eviction, Session};

/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A session deadline meaning "not watched": no connection, or one that stopped reading while
/// the durable store catches up (its client is not the one being silent).
pub(crate) const NOT_WATCHED: u64 = u64::MAX;

/// Starts the broker's sweeper once; it ends when the broker is dropped.
pub(crate) fn ensure_sweeper(shared: &Arc<Shared>) {
    shared.keep_alive_sweeper.call_once(|| {
        tokio::spawn(sweep(Arc::downgrade(shared)));
    });
}

async fn sweep(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = shared.clock_ms();
        let expired: Vec<Arc<Session>> = shared
            .sessions()
            .values()
            .filter(|s| s.keep_alive_deadline.load(Ordering::Acquire) <= now)
            .cloned()
            .collect();
        for session in expired {
            let mut state = session.lock();
            // Checked again under the lock: a connection attaching sets its deadline under it.
            if session.keep_alive_deadline.load(Ordering::Acquire) <= now
                && let Some(tx) = state.evict.take()
            {
                session
                    .keep_alive_deadline
                    .store(NOT_WATCHED, Ordering::Release);
                let _ = tx.send(Eviction::KeepAliveExpired);
            }
        }
    }
}
