//! The broker's side of the durable store (`store` crate): what each change of persistent state
//! submits, conversions between the broker's types and the store's records, and rebuilding the
//! broker's state from what the store recovered at start-up.
//!
//! The broker keeps all state in memory. A change that must survive a crash (a persistent
//! session, its subscriptions, the QoS 1/2 messages queued or in flight for it, inbound QoS 2
//! ids, retained messages) is also submitted to the store, which returns the ticket of the batch
//! it goes into; whatever acknowledges the change to a client (CONNACK, SUBACK, PUBACK, PUBREC,
//! PUBCOMP, and outbound QoS 2 PUBLISH/PUBREL) is held by the connection until that ticket is
//! durable. Without a store every ticket is 0, which is always durable.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use store::{
    EntryState, MessageRecord, Op, SessionExpiry, SessionRecord, Store, SubscriptionRecord,
    WillRecord,
};

use crate::message::Message;
use crate::session::{Awaiting, Expiry, SessionState};

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

/// The durable storage, when the broker has one.
#[derive(Clone)]
pub(crate) struct Persist {
    pub store: Arc<dyn Storage>,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist").finish_non_exhaustive()
    }
}

impl Persist {
    pub fn submit<const N: usize>(&self, ops: [Op; N]) -> u64 {
        self.store.submit(&mut ops.into_iter())
    }

    pub fn submit_all(&self, ops: Vec<Op>) -> u64 {
        self.store.submit(&mut ops.into_iter())
    }

    /// The store's form of `message`, built once per message and shared by every entry, with the
    /// message's id in the store.
    pub fn stored(&self, message: &Message) -> (u64, Arc<MessageRecord>) {
        message
            .stored
            .get_or_init(|| (self.store.next_message_id(), Arc::new(record_of(message))))
            .clone()
    }
}

/// Wall-clock time of a monotonic instant (for expiry times that must survive a restart).
pub(crate) fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now()
            .checked_sub(now - at)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// The monotonic instant of a wall-clock time (already passed times map to now); `None` for
/// a time too far ahead to represent, which then never comes.
pub(crate) fn monotonic(at: SystemTime) -> Option<Instant> {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_add(left)
}

pub(crate) fn record_of(message: &Message) -> MessageRecord {
    MessageRecord {
        topic: message.topic.clone(),
        payload: message.payload.clone(),
        qos: message.qos,
        retain: message.retain,
        properties: message.properties.clone(),
        expires_at: message.expires_at.map(wall_clock),
    }
}

/// A message recovered from the store (`id` 0 for a retained one, stored by value). The
/// publishing session is not kept, so No Local does not apply to it.
pub(crate) fn message_of(id: u64, record: &Arc<MessageRecord>) -> Message {
    let message = Message {
        topic: record.topic.clone(),
        payload: record.payload.clone(),
        qos: record.qos,
        retain: record.retain,
        properties: record.properties.clone(),
        expires_at: record.expires_at.and_then(monotonic),
        origin: 0,
        stored: std::sync::OnceLock::new(),
    };
    if id != 0 {
        let _ = message.stored.set((id, record.clone()));
    }
    message
}

/// The store's state of an entry that is queued (`None`) or waiting for `awaiting`.
fn entry_state(awaiting: Option<Awaiting>) -> EntryState {
    match awaiting {
        None => EntryState::Queued,
        Some(Awaiting::PubAck) => EntryState::AwaitingPubAck,
        Some(Awaiting::PubRec) => EntryState::AwaitingPubRec,
        Some(Awaiting::PubComp) => EntryState::AwaitingPubComp,
    }
}

/// The inverse of [`entry_state`].
fn awaiting_of(state: EntryState) -> Option<Awaiting> {
    match state {
        EntryState::Queued => None,
        EntryState::AwaitingPubAck => Some(Awaiting::PubAck),
        EntryState::AwaitingPubRec => Some(Awaiting::PubRec),
        EntryState::AwaitingPubComp => Some(Awaiting::PubComp),
    }
}

pub(crate) fn expiry_of(expiry: SessionExpiry) -> Expiry {
    match expiry {
        SessionExpiry::After(d) => Expiry::After(d),
        SessionExpiry::Never => Expiry::Never,
    }
}

/// The stored form of a session, or `None` for a session that is not persistent.
pub(crate) fn session_record(
    client_id: &str,
    state: &SessionState,
    disconnected_at: Option<SystemTime>,
    will: Option<WillRecord>,
    username: Option<&str>,
) -> Option<SessionRecord> {
    let expiry = match state.expiry {
        Expiry::OnClose => return None,
        Expiry::After(d) => SessionExpiry::After(d),
        Expiry::Never => SessionExpiry::Never,
    };
    let mut subscriptions: Vec<SubscriptionRecord> = state
        .subscriptions
        .values()
        .map(|s| SubscriptionRecord {
            filter: s.filter.clone(),
            options: s.options,
            id: s.id,
        })
        .collect();
    subscriptions.sort_by(|a, b| a.filter.filter().cmp(b.filter.filter()));
    Some(SessionRecord {
        client_id: client_id.to_owned(),
        expiry,
        disconnected_at,
        subscriptions,
        will,
        username: username.map(str::to_owned),
    })
}

/// The changes that store what a session already holds when it becomes persistent: its queued
/// and in-flight QoS 1/2 messages and its inbound QoS 2 ids.
pub(crate) fn adopt(
    persist: &Persist,
    client_id: &Arc<str>,
    state: &mut SessionState,
    ops: &mut Vec<Op>,
) {
    let SessionState {
        queue,
        outbound,
        next_seq,
        inbound_qos2,
        ..
    } = state;
    let queued = queue
        .iter_mut()
        .filter(|d| d.qos > codec::QoS::AtMostOnce)
        .map(|d| (d, None));
    let in_flight = outbound
        .iter_mut()
        .map(|o| (&mut o.delivery, Some((o.packet_id, o.state))));
    for (delivery, flight) in queued.chain(in_flight) {
        *next_seq += 1;
        delivery.seq = *next_seq;
        let (id, message) = persist.stored(&delivery.message);
        ops.push(Op::PutMessage { id, message });
        ops.push(Op::Enqueue {
            client_id: client_id.clone(),
            seq: delivery.seq,
            entry: store::QueueEntry {
                message_id: id,
                qos: delivery.qos,
                retain: delivery.retain,
                subscription_ids: delivery.subscription_ids.clone(),
                packet_id: flight.map(|(packet_id, _)| packet_id),
                state: entry_state(flight.map(|(_, awaiting)| awaiting)),
            },
        });
    }
    for &packet_id in inbound_qos2.keys() {
        ops.push(Op::InboundAdd {
            client_id: client_id.clone(),
            packet_id,
        });
    }
}

/// A recovered session that is offline: when it ends, and the will it still owes.
pub(crate) struct Offline {
    pub session: Arc<crate::session::Session>,
    pub identity: Arc<auth::Identity>,
    /// Time left before the session ends; `None` never.
    pub ends_in: Option<Duration>,
    pub will: Option<WillRecord>,
    /// When the client went away (the restart, for one connected when the broker stopped).
    pub disconnected_at: SystemTime,
}

/// Rebuilds sessions (with their subscriptions in the index, queues, messages in flight and
/// inbound QoS 2 ids) and retained messages from what the store recovered. Sessions whose
/// client was connected when the broker stopped count as disconnected now; their wills are owed.
pub(crate) fn restore(shared: &crate::broker::Shared, recovered: store::Recovered) -> Vec<Offline> {
    use std::collections::HashMap;

    use crate::index::Subscriber;
    use crate::message::Delivery;
    use crate::session::{Outbound, Session, Subscription};

    for record in recovered.retained {
        let message = Arc::new(message_of(0, &Arc::new(record)));
        shared.retained.set(&message.topic.clone(), Some(message));
    }
    let now = SystemTime::now();
    let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
    let mut offline = Vec::new();
    let mut rewrite = Vec::new();
    for recovered in recovered.sessions {
        let record = recovered.record;
        let session = Session::new(
            Arc::from(record.client_id.as_str()),
            expiry_of(record.expiry),
        );
        let identity = Arc::new(auth::Identity {
            user: record.username.as_deref().map(Arc::from),
        });
        {
            let mut state = session.lock();
            state.stored = true;
            state.identity = None;
            for s in &record.subscriptions {
                state.subscriptions.insert(
                    s.filter.as_str().into(),
                    Subscription {
                        filter: s.filter.clone(),
                        options: s.options,
                        id: s.id,
                    },
                );
            }
            for (seq, entry, message) in recovered.queue {
                let message = messages
                    .entry(entry.message_id)
                    .or_insert_with(|| Arc::new(message_of(entry.message_id, &message)))
                    .clone();
                let delivery = Delivery {
                    message,
                    qos: entry.qos,
                    retain: entry.retain,
                    subscription_ids: entry.subscription_ids,
                    seq,
                    redelivery: true,
                };
                state.next_seq = state.next_seq.max(seq);
                match (awaiting_of(entry.state), entry.packet_id) {
                    (Some(awaiting), Some(packet_id)) => state.outbound.push_back(Outbound {
                        packet_id,
                        delivery,
                        state: awaiting,
                    }),
                    _ => state.queue.push_back(delivery),
                }
            }
            state
                .inbound_qos2
                .extend(recovered.inbound_qos2.into_iter().map(|id| (id, 0)));
        }
        {
            let mut index = shared.index_write();
            for s in &record.subscriptions {
                index.insert(
                    &s.filter,
                    Subscriber {
                        session: session.clone(),
                        options: s.options,
                        id: s.id,
                        identity: identity.clone(),
                    },
                );
            }
        }
        shared
            .sessions()
            .insert(session.client_id.clone(), session.clone());
        let disconnected_at = record.disconnected_at.unwrap_or(now);
        let ends_in = match record.expiry {
            SessionExpiry::Never => None,
            // A deadline too far ahead to represent never comes.
            SessionExpiry::After(d) => disconnected_at
                .checked_add(d)
                .map(|end| end.duration_since(now).unwrap_or(Duration::ZERO)),
        };
        if record.disconnected_at.is_none() {
            // Connected when the broker stopped: disconnected from now on.
            let mut record = record.clone();
            record.disconnected_at = Some(now);
            rewrite.push(Op::PutSession(Box::new(record)));
        }
        offline.push(Offline {
            session,
            identity,
            ends_in,
            will: record.will,
            disconnected_at,
        });
    }
    if let Some(persist) = &shared.persist {
        persist.submit_all(rewrite);
    }
    offline
}
