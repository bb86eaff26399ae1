//! Session state (§4.1): subscriptions, the queue of messages waiting for the client, QoS 1/2
//! messages in flight both ways. A session outlives its connections when it is persistent.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use codec::{PacketId, QoS, SubscriptionId, SubscriptionOptions, TopicFilter};
use tokio::sync::{Notify, oneshot};

use store::{EntryState, Op, QueueEntry};

use crate::message::Delivery;
use crate::persist::Persist;

/// Why a connection is told to go away by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Another connection with the same client identifier took the session over.
    TakenOver,
    /// The connection's user was removed or deactivated.
    AccessRevoked,
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

/// What an outgoing QoS 1/2 message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named for the packets awaited
pub(crate) enum Awaiting {
    /// QoS 1 sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    PubComp,
}

#[derive(Debug)]
pub(crate) struct Outbound {
    pub packet_id: PacketId,
    pub delivery: Delivery,
    pub state: Awaiting,
}

/// One subscription of a session, as the session remembers it.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub filter: TopicFilter,
    pub options: SubscriptionOptions,
    pub id: Option<SubscriptionId>,
}

/// The mutable part of a session. Locked briefly by the owning connection and by publishers
/// adding to the queue.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// Bumped by every connection that attaches; a connection whose generation is stale has
    /// been replaced and must stop touching the queue.
    pub generation: u64,
    /// Set while a connection is attached: the way to evict it.
    pub evict: Option<oneshot::Sender<Eviction>>,
    /// Who the attached connection authenticated as.
    pub identity: Option<Arc<auth::Identity>>,
    pub expiry: Expiry,
    pub subscriptions: HashMap<Box<str>, Subscription>,
    /// Waiting to be sent, oldest first.
    pub queue: VecDeque<Delivery>,
    /// Sent and not yet acknowledged, oldest first.
    pub outbound: VecDeque<Outbound>,
    next_packet_id: u16,
    /// QoS 2 packet identifiers received and not yet released (PUBREC sent, PUBREL awaited),
    /// each with the store ticket its PUBREC waits for (0 for none).
    pub inbound_qos2: HashMap<PacketId, u64>,
    /// The last `Delivery::seq` given out; the next stored entry gets the one after.
    pub next_seq: u64,
    /// The durable store holds this session.
    pub stored: bool,
    /// The queue went past its high-water mark; publishers may be waiting on `Session::space`.
    pub congested: bool,
}

impl SessionState {
    pub fn is_connected(&self) -> bool {
        self.evict.is_some()
    }

    /// The next packet identifier not in flight [MQTT-2.2.1-3]. The window is smaller than
    /// the identifier space, so a free one always exists.
    pub fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let Some(id) = PacketId::new(self.next_packet_id) else {
                continue;
            };
            if !self.outbound.iter().any(|o| o.packet_id == id) {
                return id;
            }
        }
    }

    /// Removes and returns the in-flight entry for `id`, checking the oldest first since
    /// acknowledgements usually come in order.
    pub fn find_outbound(&mut self, id: PacketId) -> Option<usize> {
        self.outbound.iter().position(|o| o.packet_id == id)
    }
}

/// A session, shared by the registry, the subscription index and its connection.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique for the broker's lifetime; tells apart two sessions with one client identifier.
    pub id: u64,
    pub client_id: Arc<str>,
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
    pub fn new(client_id: Arc<str>, expiry: Expiry) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            client_id,
            state: Mutex::new(SessionState {
                generation: 0,
                evict: None,
                identity: None,
                expiry,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                outbound: VecDeque::new(),
                next_packet_id: 0,
                inbound_qos2: HashMap::new(),
                next_seq: 0,
                stored: false,
                congested: false,
            }),
            wake: Wake::default(),
            keep_alive: crate::keep_alive::Deadline::default(),
            dropped: AtomicU64::new(0),
            space: Notify::new(),
        })
    }

    /// Locks the state. A poisoned lock means a task panicked while holding it; the state is
    /// plain data that stays consistent between statements, so carry on.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a delivery to the queue under the limit of `max_queued` (see
    /// `BrokerOptions::max_queued_messages` for the policy) and wakes the connection. A QoS 1/2
    /// delivery to a persistent session is also submitted to the durable store; the ticket of
    /// that change is returned (0 when nothing was stored).
    pub fn enqueue(
        &self,
        mut delivery: Delivery,
        max_queued: usize,
        persist: Option<&Persist>,
    ) -> (Enqueued, u64) {
        let mut state = self.lock();
        if delivery.qos == QoS::AtMostOnce && !state.is_connected() {
            return (Enqueued::Offline, 0);
        }
        if state.queue.len() >= max_queued {
            let evicted = if delivery.qos > QoS::AtMostOnce {
                state.queue.iter().position(|d| d.qos == QoS::AtMostOnce)
            } else {
                None
            };
            match evicted {
                Some(i) => {
                    state.queue.remove(i);
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
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let mut ticket = 0;
        if let Some(persist) = persist
            && delivery.qos > QoS::AtMostOnce
            && state.stored
        {
            // Submitted under the session lock, so the entry is in the store's op stream before
            // anything the connection submits about it.
            state.next_seq += 1;
            delivery.seq = state.next_seq;
            let (id, message) = persist.stored(&delivery.message);
            ticket = persist.submit([
                Op::PutMessage { id, message },
                Op::Enqueue {
                    client_id: self.client_id.clone(),
                    seq: delivery.seq,
                    entry: QueueEntry {
                        message_id: id,
                        qos: delivery.qos,
                        retain: delivery.retain,
                        subscription_ids: delivery.subscription_ids.clone(),
                        packet_id: None,
                        state: EntryState::Queued,
                    },
                },
            ]);
        }
        let was_empty = state.queue.is_empty();
        state.queue.push_back(delivery);
        let connected = state.is_connected();
        let congested = connected && state.queue.len() >= high_water(max_queued);
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

/// Queue length from which a connected client counts as congested: half the queue limit, at
/// most 1000.
pub(crate) fn high_water(max_queued: usize) -> usize {
    (max_queued / 2).clamp(1, 1000)
}

/// Queue length below which a congested client counts as caught up.
pub(crate) fn low_water(max_queued: usize) -> usize {
    high_water(max_queued) / 2
}
