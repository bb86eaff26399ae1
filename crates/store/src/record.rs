//! The records the broker stores and the changes ([`Op`]) it submits: plain data with public
//! fields, which the broker converts to and from its own types.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use codec::{
    PacketId, PublishProperties, QoS, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
};

/// One application message, as received: stored once however many queue entries refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The topic (never empty: the broker resolves topic aliases before storing).
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// MQTT 5 properties, forwarded unchanged.
    pub properties: PublishProperties,
    /// When the message expires (from its Message Expiry Interval), as wall-clock time; `None`
    /// never expires. Times before 1970 are stored as 1970.
    pub expires_at: Option<SystemTime>,
}

impl MessageRecord {
    /// True once `expires_at` is at or before `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// One subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The filter, with any `$share/{group}/` prefix.
    pub filter: TopicFilter,
    /// The subscription options.
    pub options: SubscriptionOptions,
    /// The Subscription Identifier given with it, if any.
    pub id: Option<SubscriptionId>,
}

/// A will message with its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// The message to publish.
    pub message: MessageRecord,
    /// Will Delay Interval.
    pub delay: Duration,
}

/// How long a session outlives its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// This long after the disconnect.
    After(Duration),
    /// Never (Session Expiry Interval 0xFFFFFFFF).
    Never,
}

/// A persistent session (clean sessions are never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The client identifier; the key of the session.
    pub client_id: String,
    /// Session expiry.
    pub expiry: SessionExpiry,
    /// When the client disconnected; `None` while connected.
    pub disconnected_at: Option<SystemTime>,
    /// The subscriptions, in the order the broker gives them.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// The will, if the session has one pending.
    pub will: Option<WillRecord>,
    /// The user name the client authenticated with.
    pub username: Option<String>,
}

impl SessionRecord {
    /// True when the session was disconnected longer than its expiry at `now`. A session still
    /// marked connected never counts as expired.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        match (self.disconnected_at, self.expiry) {
            (Some(at), SessionExpiry::After(expiry)) => at
                .checked_add(expiry)
                .is_some_and(|deadline| deadline < now),
            _ => false,
        }
    }
}

/// Where a queued message stands in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// Not sent yet.
    Queued,
    /// QoS 1, sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2, sent, waiting for PUBREC.
    AwaitingPubRec,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// One message in a session's queue (outbound, QoS 1/2, queued or in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The stored message it delivers.
    pub message_id: u64,
    /// The QoS of this delivery (the lower of the message's and the subscription's).
    pub qos: QoS,
    /// The RETAIN flag of this delivery.
    pub retain: bool,
    /// Subscription Identifiers of the matching subscriptions.
    pub subscription_ids: Vec<SubscriptionId>,
    /// The packet identifier once sent.
    pub packet_id: Option<PacketId>,
    /// Delivery state.
    pub state: EntryState,
}

/// One change to the stored state. A batch applies its ops in order.
#[derive(Debug, Clone)]
pub enum Op {
    /// Makes a message available to the [`Op::Enqueue`]s of the same batch; submit it with them,
    /// in the same [`Store::submit`](crate::Store::submit) call (a batch that would hold only the
    /// message writes nothing and may be closed at once). The row is written
    /// when the first entry refers to it and deleted when the last one goes, so a message is
    /// stored once, a message no entry refers to is never written, and submitting it again with
    /// every batch that enqueues it costs nothing. Ids come from
    /// [`Store::next_message_id`](crate::Store::next_message_id); a message is never changed.
    PutMessage {
        /// The message id.
        id: u64,
        /// The message.
        message: Arc<MessageRecord>,
    },
    /// Inserts or replaces a session. Boxed: a session is several times the size of the other
    /// ops, and every op in the pending buffer would pay for it.
    PutSession(Box<SessionRecord>),
    /// Deletes a session with its queue entries and inbound packet ids.
    DeleteSession {
        /// The session's client id.
        client_id: String,
    },
    /// Adds an entry to a session's queue. `seq` orders the queue and is never reused for the
    /// same client while an entry holds it. The store matches the `UpdateEntry`s and the
    /// `Dequeue` of the entry with it by the allocation of `client_id` (see the crate
    /// documentation): name the client in every op of one entry through clones of one
    /// `Arc<str>`, as the broker does with one per session. An op through another allocation is
    /// not matched with the Enqueue; mixing the two for one entry may apply its updates out of
    /// order. The message must come in a [`Op::PutMessage`] of the same submit call unless an
    /// entry already refers to it.
    Enqueue {
        /// The session's client id.
        client_id: Arc<str>,
        /// Position in the queue.
        seq: u64,
        /// The entry.
        entry: QueueEntry,
    },
    /// Changes the packet id and state of a queue entry; ignored when there is no such entry.
    UpdateEntry {
        /// The session's client id.
        client_id: Arc<str>,
        /// The entry's position.
        seq: u64,
        /// The new packet id.
        packet_id: Option<PacketId>,
        /// The new state.
        state: EntryState,
        /// The packet went to the client without waiting for this change to be durable, so its
        /// acknowledgement may arrive (and cancel the entry) while the batch still collects;
        /// a batch whose only changes to write are such entries waits for those
        /// acknowledgements (up to `max_delay`) rather than committing as soon as the
        /// submitters go idle. False when the packet waits for this change (a QoS 2 PUBLISH or
        /// a PUBREL, whose state must be on disk first) or queues behind packets that wait:
        /// nothing will cancel the entry before the batch commits.
        delivered: bool,
    },
    /// Removes a queue entry (delivery finished or the message was dropped).
    Dequeue {
        /// The session's client id.
        client_id: Arc<str>,
        /// The entry's position.
        seq: u64,
    },
    /// Records an inbound QoS 2 packet id awaiting PUBREL.
    InboundAdd {
        /// The session's client id.
        client_id: Arc<str>,
        /// The packet id.
        packet_id: PacketId,
    },
    /// Forgets an inbound QoS 2 packet id (PUBREL received).
    InboundRemove {
        /// The session's client id.
        client_id: Arc<str>,
        /// The packet id.
        packet_id: PacketId,
    },
    /// Adds or replaces one subscription of a session (by its filter). A session's
    /// subscriptions are rows of their own, so a SUBSCRIBE writes what it changes, not the whole
    /// list.
    PutSubscription {
        /// The session's client id.
        client_id: String,
        /// The subscription.
        subscription: SubscriptionRecord,
    },
    /// Removes one subscription of a session.
    DeleteSubscription {
        /// The session's client id.
        client_id: String,
        /// The filter, with any `$share/{group}/` prefix.
        filter: String,
    },
    /// Sets (`Some`) or clears (`None`) the retained message of a topic.
    Retain {
        /// The topic.
        topic: TopicName,
        /// The retained message, or `None` to clear it.
        message: Option<Arc<MessageRecord>>,
    },
}

/// Everything the store held at open, with expired state already dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// The sessions, by client id. Expired ones (disconnected longer than their expiry) are gone.
    pub sessions: Vec<RecoveredSession>,
    /// The retained messages, by topic. Expired ones are gone.
    pub retained: Vec<MessageRecord>,
}

/// One recovered session with its queue and inbound QoS 2 state.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredSession {
    /// The session. One still marked connected (`disconnected_at: None`) is returned as stored.
    pub record: SessionRecord,
    /// The queue in `seq` order, each entry with its message (shared between sessions).
    /// Queued entries whose message expired are gone; entries already sent stay (their packet
    /// ids are in use until the client finishes the flow).
    pub queue: Vec<(u64, QueueEntry, Arc<MessageRecord>)>,
    /// Inbound QoS 2 packet ids awaiting PUBREL, ascending.
    pub inbound_qos2: Vec<PacketId>,
    /// The subscriptions stored as rows of their own ([`Op::PutSubscription`]), by filter.
    /// Those inside [`SessionRecord::subscriptions`] (how format 1 kept them, or a session
    /// written with them) come on top.
    pub subscriptions: Vec<SubscriptionRecord>,
}
