//! A session (§4.1): what the broker remembers of one client id across its connections. A
//! session outlives its connections when it is persistent.
//!
//! [`Session`] is shared by the registry, the subscription index and the attached connection; its
//! mutable part, [`SessionState`] (`state.rs`), is behind one lock and changed only through its
//! methods, the QoS 1/2 flows included. When a session starts, is taken over and ends is decided
//! in `crate::lifecycle`.

mod flows;
mod state;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use codec::QoS;
use tokio::sync::Notify;

pub(crate) use flows::{Awaiting, InboundQos2, Owner, PubRecOutcome};
pub(crate) use state::{SessionState, Subscription};

use crate::message::Delivery;
use crate::persist::Persist;

/// Why a connection is told to go away by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Another connection with the same client identifier took the session over.
    TakenOver,
    /// The connection's user was removed or deactivated.
    AccessRevoked,
    /// The connection's client certificate was revoked since it connected.
    CertificateRevoked,
    /// The broker is shutting down.
    Shutdown,
}

/// How long a session lives after its connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Ends with the connection (clean session, or Session Expiry Interval 0).
    OnClose,
    /// Ends this long after the connection closes.
    After(Duration),
    /// Never ends (v3 persistent sessions, v5 interval 0xFFFFFFFF).
    Never,
}

impl Expiry {
    /// The expiry of a Session Expiry Interval of `secs` (CONNECT or DISCONNECT), under the
    /// broker's `cap`. The second value is true when the cap cut it down (a v5 CONNACK then
    /// tells the client the interval granted).
    pub fn from_interval(secs: u32, cap: Option<Duration>) -> (Self, bool) {
        let asked = match secs {
            0 => Expiry::OnClose,
            u32::MAX => Expiry::Never,
            secs => Expiry::After(Duration::from_secs(u64::from(secs))),
        };
        let Some(cap) = cap else {
            return (asked, false);
        };
        match asked {
            Expiry::Never => (Expiry::After(cap), true),
            Expiry::After(d) if d > cap => (Expiry::After(cap), true),
            other => (other, false),
        }
    }

    /// The stored form; `None` for a session that ends with its connection (never stored).
    pub fn stored(self) -> Option<store::SessionExpiry> {
        match self {
            Expiry::OnClose => None,
            Expiry::After(d) => Some(store::SessionExpiry::After(d)),
            Expiry::Never => Some(store::SessionExpiry::Never),
        }
    }
}

impl From<store::SessionExpiry> for Expiry {
    fn from(expiry: store::SessionExpiry) -> Self {
        match expiry {
            store::SessionExpiry::After(d) => Expiry::After(d),
            store::SessionExpiry::Never => Expiry::Never,
        }
    }
}

/// A session, shared by the registry, the subscription index and its connection.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique for the broker's lifetime; tells apart two sessions with one client identifier.
    pub id: u64,
    pub client_id: Arc<str>,
    /// Who the session belongs to: the user name its first connection authenticated as, or
    /// `None` for anonymous. Only the same identity may attach to it (see `lifecycle::attach`).
    pub owner: Option<Arc<str>>,
    state: Mutex<SessionState>,
    /// Woken when the queue gains a message.
    pub wake: Wake,
    /// When the connected client must have sent something by.
    pub keep_alive: crate::keep_alive::Deadline,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Woken when a congested queue has drained below its low-water mark.
    pub space: Notify,
}

/// Wakes the connection of a session. A wake-up given while the connection is busy is kept
/// until it next waits, as with `Notify::notify_one`, but the waiting side polls this directly
/// instead of storing a `Notified` future (64 bytes in every idle connection's task).
#[derive(Debug, Default)]
pub(crate) struct Wake {
    waker: AtomicWaker,
    pending: AtomicBool,
}

impl Wake {
    pub fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Registers `waker` without taking a pending wake-up, for a connection waiting on something
    /// else that still wants to be [`nudge`](Self::nudge)d.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Wakes the connection to look at something other than its queue (its keep-alive
    /// deadline); unlike `notify`, this wakes it even when a queue wake-up is already pending.
    pub fn nudge(&self) {
        self.waker.wake();
    }

    /// Forgets the waiting connection's waker: a tokio waker keeps its task's memory alive, and
    /// the connection has ended.
    pub fn clear(&self) {
        drop(self.waker.take());
    }

    /// Ready once `notify` was called since the last time this returned ready.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A notify between the check above and the registration found no waker to wake.
        if self.pending.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// What happened to a message offered to a session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued; `congested` when the queue is past its high-water mark while its client is
    /// connected, so the publisher should give the client time to catch up.
    Queued { congested: bool },
    /// The queue was full and this message was dropped. A full queue does not slow publishers
    /// (see `Session::enqueue`).
    Dropped,
    /// A QoS 0 message for a session whose client is offline: not kept.
    Offline,
}

impl Session {
    /// An anonymous client's session.
    pub fn new(client_id: Arc<str>, expiry: Expiry) -> Arc<Self> {
        Self::owned_by(client_id, expiry, None)
    }

    /// A session that belongs to `owner` (`None`: anonymous).
    pub fn owned_by(client_id: Arc<str>, expiry: Expiry, owner: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            client_id,
            owner,
            state: Mutex::new(SessionState::new(expiry)),
            wake: Wake::default(),
            keep_alive: crate::keep_alive::Deadline::default(),
            dropped: AtomicU64::new(0),
            space: Notify::new(),
        })
    }

    /// The identity the session belongs to.
    pub fn owner_identity(&self) -> auth::Identity {
        auth::Identity {
            user: self.owner.clone(),
        }
    }

    /// Locks the state. A poisoned lock means a task panicked while holding it; the state is
    /// plain data that stays consistent between statements, so carry on.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a delivery to the queue under `limits` (see `BrokerOptions::max_queued_messages`
    /// for the policy, which applies at either limit) and wakes the connection. A QoS 1/2
    /// delivery to a persistent session is also stored; the ticket of that change is returned
    /// (0 when nothing was stored).
    pub fn enqueue(
        &self,
        mut delivery: Delivery,
        limits: QueueLimits,
        persist: &Persist,
    ) -> (Enqueued, u64) {
        let mut state = self.lock();
        if delivery.qos == QoS::AtMostOnce && !state.is_connected() {
            return (Enqueued::Offline, 0);
        }
        let size = delivery.message.size();
        if size > limits.bytes {
            // It would never fit: dropped without emptying the queue for it.
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return (Enqueued::Dropped, 0);
        }
        while state.queue.len() >= limits.messages
            || state.queued_bytes.saturating_add(size) > limits.bytes
        {
            let evicted = if delivery.qos > QoS::AtMostOnce {
                state.queue.iter().position(|d| d.qos == QoS::AtMostOnce)
            } else {
                None
            };
            match evicted {
                Some(i) => {
                    state.remove_queued(i);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    // A full queue no longer slows its publishers: a client this far behind,
                    // possibly stuck, must not throttle everyone feeding it. It loses messages
                    // under the queue policy instead.
                    drop(state);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return (Enqueued::Dropped, 0);
                }
            }
        }
        let mut ticket = 0;
        if delivery.qos > QoS::AtMostOnce && state.stored {
            // Stored under the session lock, so the entry is in the store's op stream before
            // anything the connection submits about it.
            state.next_seq += 1;
            delivery.seq = state.next_seq;
            ticket = persist.entry_queued(&self.client_id, &delivery);
        }
        let was_empty = state.queue.is_empty();
        state.push_queued(delivery);
        let connected = state.is_connected();
        let congested = connected && state.queue.len() >= high_water(limits.messages);
        if congested {
            state.congested = true;
        }
        drop(state);
        if was_empty && connected {
            self.wake.notify();
        }
        (Enqueued::Queued { congested }, ticket)
    }
}

/// What a session's queue holds at most (see [`Session::enqueue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueLimits {
    /// Messages.
    pub messages: usize,
    /// Bytes of topic and payload ([`Message::size`](crate::message::Message::size)).
    pub bytes: usize,
}

impl QueueLimits {
    /// `messages` messages, bytes unlimited.
    #[cfg(test)]
    pub const fn messages(messages: usize) -> Self {
        Self {
            messages,
            bytes: usize::MAX,
        }
    }
}

/// Queue length from which a connected client counts as congested: half the queue limit, at
/// most 1000.
pub(crate) fn high_water(max_queued: usize) -> usize {
    (max_queued / 2).clamp(1, 1000)
}

/// Queue length below which a congested client counts as caught up.
pub(crate) fn low_water(max_queued: usize) -> usize {
    high_water(max_queued) / 2
}
