//! The broker's side of the durable store (`store` crate): the [`Storage`] an embedder plugs in,
//! and [`Persist`], the one place that turns a change of persistent state into `store::Op`s.
//!
//! The broker keeps all state in memory. A change that must survive a crash (a persistent
//! session, its subscriptions, the QoS 1/2 messages queued or in flight for it, inbound QoS 2
//! ids, retained messages) is also handed to a verb of [`Persist`], which submits it and returns
//! the ticket of the batch it goes into; whatever acknowledges the change to a client (CONNACK,
//! SUBACK, PUBACK, PUBREC, PUBCOMP, and outbound QoS 2 PUBLISH/PUBREL) is held by the connection
//! until that ticket is durable. Without a store every verb does nothing and returns ticket 0,
//! which is always durable.

use std::sync::Arc;

use codec::{PacketId, TopicName};
use store::{EntryState, MessageRecord, Op, QueueEntry, SessionRecord, Store, SubscriptionRecord};

use crate::message::{Delivery, Message};

/// Where the broker keeps what must survive a restart: a log of changes ([`store::Op`]) with
/// tickets. [`store::Store`] (redb, group commit) is the implementation the binary uses; another
/// engine plugs in by implementing this and handing the broker what it recovered
/// ([`BrokerBuilder::storage`](crate::BrokerBuilder::storage)).
pub trait Storage: Send + Sync + 'static {
    /// Queues changes for the next batch; returns the ticket of that batch. Must not block on
    /// I/O: the broker calls it while holding a session lock.
    fn submit(&self, ops: &mut dyn Iterator<Item = Op>) -> u64;
    /// The highest ticket whose changes are durable.
    fn durable(&self) -> u64;
    /// Changes whenever [`Storage::durable`] advances.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;
    /// A message id never used before, also across restarts.
    fn next_message_id(&self) -> u64;
    /// Makes everything submitted durable and stops; blocking.
    fn close(&self);
    /// Counters for `/metrics`.
    fn stats(&self) -> store::StoreStats;
}

impl Storage for Store {
    fn submit(&self, ops: &mut dyn Iterator<Item = Op>) -> u64 {
        Store::submit(self, ops).0
    }

    fn durable(&self) -> u64 {
        Store::durable(self).0
    }

    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        Store::watch(self)
    }

    fn next_message_id(&self) -> u64 {
        Store::next_message_id(self)
    }

    fn close(&self) {
        Store::close(self);
    }

    fn stats(&self) -> store::StoreStats {
        Store::stats(self)
    }
}

/// Where a stored queue entry stands: queued, or sent under a packet id and awaiting `state`.
pub(crate) type Flight = Option<(PacketId, EntryState)>;

/// The durable storage, when the broker has one, behind one verb per kind of change.
///
/// Every op of one queue entry names its client through the session's own `Arc<str>` (the store
/// matches them by that allocation; see `store::Op::Enqueue`).
#[derive(Clone, Default)]
pub(crate) struct Persist {
    store: Option<Arc<dyn Storage>>,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("on", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Persist {
    pub fn new(store: Arc<dyn Storage>) -> Self {
        Self { store: Some(store) }
    }

    /// No store: every verb does nothing.
    #[cfg(test)]
    pub const fn none() -> Self {
        Self { store: None }
    }

    /// Whether there is a store at all.
    pub fn is_on(&self) -> bool {
        self.store.is_some()
    }

    fn submit<const N: usize>(&self, ops: [Op; N]) -> u64 {
        self.store
            .as_ref()
            .map_or(0, |s| s.submit(&mut ops.into_iter()))
    }

    fn submit_all(&self, ops: Vec<Op>) -> u64 {
        self.store
            .as_ref()
            .map_or(0, |s| s.submit(&mut ops.into_iter()))
    }

    /// The store's form of `message`, built once per message and shared by every entry, with the
    /// message's id in the store.
    fn message(store: &dyn Storage, message: &Message) -> (u64, Arc<MessageRecord>) {
        message
            .stored
            .get_or_init(|| (store.next_message_id(), Arc::new(message.record())))
            .clone()
    }

    /// The ops that put one entry (and its message) into a session's queue.
    fn entry_ops(
        store: &dyn Storage,
        client_id: &Arc<str>,
        delivery: &Delivery,
        flight: Flight,
    ) -> [Op; 2] {
        let (id, message) = Self::message(store, &delivery.message);
        [
            Op::PutMessage { id, message },
            Op::Enqueue {
                client_id: client_id.clone(),
                seq: delivery.seq,
                entry: QueueEntry {
                    message_id: id,
                    qos: delivery.qos,
                    retain: delivery.retain,
                    subscription_ids: delivery.subscription_ids.clone(),
                    packet_id: flight.map(|(packet_id, _)| packet_id),
                    state: flight.map_or(EntryState::Queued, |(_, state)| state),
                },
            },
        ]
    }

    /// A QoS 1/2 delivery joined a stored session's queue at `delivery.seq`.
    pub fn entry_queued(&self, client_id: &Arc<str>, delivery: &Delivery) -> u64 {
        let Some(store) = &self.store else { return 0 };
        let ops = Self::entry_ops(&**store, client_id, delivery, None);
        store.submit(&mut ops.into_iter())
    }

    /// A session became persistent: `record`, with every subscription, entry and inbound QoS 2
    /// id it already holds, in one submit.
    pub fn session_adopted<'a>(
        &self,
        record: SessionRecord,
        client_id: &Arc<str>,
        subscriptions: impl Iterator<Item = SubscriptionRecord>,
        entries: impl Iterator<Item = (&'a Delivery, Flight)>,
        inbound_qos2: impl Iterator<Item = PacketId>,
    ) -> u64 {
        let Some(store) = &self.store else { return 0 };
        let mut ops = vec![Op::PutSession(Box::new(record))];
        ops.extend(subscriptions.map(|subscription| Op::PutSubscription {
            client_id: client_id.to_string(),
            subscription,
        }));
        for (delivery, flight) in entries {
            ops.extend(Self::entry_ops(&**store, client_id, delivery, flight));
        }
        ops.extend(inbound_qos2.map(|packet_id| Op::InboundAdd {
            client_id: client_id.clone(),
            packet_id,
        }));
        self.submit_all(ops)
    }

    /// A stored entry went out under `packet_id` and now awaits `state` (PUBACK, PUBREC or
    /// PUBCOMP). `delivered`: the packet reached the client without waiting for this change
    /// (see `store::Op::UpdateEntry`).
    pub fn entry_sent(
        &self,
        client_id: &Arc<str>,
        seq: u64,
        packet_id: PacketId,
        state: EntryState,
        delivered: bool,
    ) -> u64 {
        self.submit([Op::UpdateEntry {
            client_id: client_id.clone(),
            seq,
            packet_id: Some(packet_id),
            state,
            delivered,
        }])
    }

    /// A stored entry left the queue: delivered, expired or dropped.
    pub fn dequeued(&self, client_id: &Arc<str>, seq: u64) {
        self.submit([Op::Dequeue {
            client_id: client_id.clone(),
            seq,
        }]);
    }

    /// An inbound QoS 2 packet id was received (PUBREC to follow).
    pub fn inbound_added(&self, client_id: &Arc<str>, packet_id: PacketId) -> u64 {
        self.submit([Op::InboundAdd {
            client_id: client_id.clone(),
            packet_id,
        }])
    }

    /// An inbound QoS 2 packet id was released (PUBCOMP to follow).
    pub fn inbound_released(&self, client_id: &Arc<str>, packet_id: PacketId) -> u64 {
        self.submit([Op::InboundRemove {
            client_id: client_id.clone(),
            packet_id,
        }])
    }

    /// A persistent session's record (expiry, subscriptions, will, owner) changed.
    pub fn session_stored(&self, record: SessionRecord) -> u64 {
        self.submit([Op::PutSession(Box::new(record))])
    }

    /// Several session records at once (recovery rewrites those left marked connected).
    pub fn sessions_stored(&self, records: Vec<SessionRecord>) -> u64 {
        if records.is_empty() {
            return 0;
        }
        self.submit_all(
            records
                .into_iter()
                .map(|r| Op::PutSession(Box::new(r)))
                .collect(),
        )
    }

    /// A stored session gained (or changed) a subscription.
    pub fn subscription_stored(&self, client_id: &str, subscription: SubscriptionRecord) -> u64 {
        self.submit([Op::PutSubscription {
            client_id: client_id.to_owned(),
            subscription,
        }])
    }

    /// A stored session lost its subscription to `filter`.
    pub fn subscription_forgotten(&self, client_id: &str, filter: &str) -> u64 {
        self.submit([Op::DeleteSubscription {
            client_id: client_id.to_owned(),
            filter: filter.to_owned(),
        }])
    }

    /// Several subscriptions of one session at once (recovery moves those of a format-1 record
    /// into rows of their own).
    pub fn subscriptions_stored(
        &self,
        client_id: &str,
        subscriptions: impl Iterator<Item = SubscriptionRecord>,
    ) -> u64 {
        let ops: Vec<Op> = subscriptions
            .map(|subscription| Op::PutSubscription {
                client_id: client_id.to_owned(),
                subscription,
            })
            .collect();
        if ops.is_empty() {
            return 0;
        }
        self.submit_all(ops)
    }

    /// A session left the store with its queue, inbound ids and subscriptions.
    pub fn session_forgotten(&self, client_id: &str) -> u64 {
        self.submit([Op::DeleteSession {
            client_id: client_id.to_owned(),
        }])
    }

    /// The retained message of `topic` became `message` (`None`: cleared).
    pub fn retained_set(&self, topic: &TopicName, message: Option<&Message>) -> u64 {
        self.submit([Op::Retain {
            topic: topic.clone(),
            message: message.map(|m| Arc::new(m.record())),
        }])
    }

    /// The highest durable ticket (`u64::MAX` without a store: everything is).
    pub fn durable(&self) -> u64 {
        self.store.as_ref().map_or(u64::MAX, |s| s.durable())
    }

    /// Tells when [`Persist::durable`] advances; `None` without a store.
    pub fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.store.as_ref().map(|s| s.watch())
    }

    /// The store's counters; `None` without a store.
    pub fn stats(&self) -> Option<store::StoreStats> {
        self.store.as_ref().map(|s| s.stats())
    }

    /// Makes everything submitted so far durable (blocking; run it off the async workers).
    pub fn close(&self) {
        if let Some(store) = &self.store {
            store.close();
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A [`Storage`] that records what it is given and makes everything durable at once, for
    //! unit tests of the session and lifecycle without a disk.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Default)]
    pub(crate) struct Recorder {
        ops: Mutex<Vec<Op>>,
        tickets: AtomicU64,
        ids: AtomicU64,
    }

    impl Recorder {
        /// What was submitted since the last call, each op as its debug name and client id.
        pub fn take(&self) -> Vec<String> {
            let ops = std::mem::take(&mut *self.ops.lock().unwrap_or_else(|p| p.into_inner()));
            ops.iter().map(describe).collect()
        }
    }

    fn describe(op: &Op) -> String {
        match op {
            Op::PutMessage { id, .. } => format!("PutMessage {id}"),
            Op::PutSession(r) => format!("PutSession {}", r.client_id),
            Op::DeleteSession { client_id } => format!("DeleteSession {client_id}"),
            Op::Enqueue { seq, entry, .. } => {
                format!(
                    "Enqueue {seq} {:?} {:?}",
                    entry.state,
                    entry.packet_id.map(|p| p.get())
                )
            }
            Op::UpdateEntry {
                seq,
                packet_id,
                state,
                delivered,
                ..
            } => format!(
                "UpdateEntry {seq} {state:?} {:?} delivered={delivered}",
                packet_id.map(|p| p.get())
            ),
            Op::Dequeue { seq, .. } => format!("Dequeue {seq}"),
            Op::InboundAdd { packet_id, .. } => format!("InboundAdd {}", packet_id.get()),
            Op::InboundRemove { packet_id, .. } => format!("InboundRemove {}", packet_id.get()),
            Op::Retain { topic, message } => format!("Retain {topic} {}", message.is_some()),
            Op::PutSubscription {
                client_id,
                subscription,
            } => format!("PutSubscription {client_id} {}", subscription.filter),
            Op::DeleteSubscription { client_id, filter } => {
                format!("DeleteSubscription {client_id} {filter}")
            }
        }
    }

    impl Storage for Recorder {
        fn submit(&self, ops: &mut dyn Iterator<Item = Op>) -> u64 {
            self.ops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(ops);
            self.tickets.fetch_add(1, Ordering::Relaxed) + 1
        }
        fn durable(&self) -> u64 {
            self.tickets.load(Ordering::Relaxed)
        }
        fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
            tokio::sync::watch::channel(0).1
        }
        fn next_message_id(&self) -> u64 {
            self.ids.fetch_add(1, Ordering::Relaxed) + 1
        }
        fn close(&self) {}
        fn stats(&self) -> store::StoreStats {
            store::StoreStats::default()
        }
    }
}
