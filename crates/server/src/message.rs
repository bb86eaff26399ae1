//! An application message as the broker routes it, one delivery of it to one session, and the
//! message's stored form (`store::MessageRecord`).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use codec::{PublishProperties, QoS, SubscriptionId, TopicName};

/// A published message, shared by every session it is delivered to.
#[derive(Debug)]
pub(crate) struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    /// QoS as published.
    pub qos: QoS,
    /// RETAIN as published.
    pub retain: bool,
    /// Properties forwarded unchanged (no topic alias or subscription identifiers, and the
    /// expiry is recomputed at delivery from `expires_at`).
    pub properties: PublishProperties,
    /// When the Message Expiry Interval runs out.
    pub expires_at: Option<Instant>,
    /// The publishing session, for No Local; 0 for messages the broker makes itself.
    pub origin: u64,
    /// The message's id and record in the durable store, once a persistent session queued it
    /// (see `Persist`).
    pub stored: OnceLock<(u64, Arc<store::MessageRecord>)>,
    /// What it counts for in byte limits (see [`Message::size`]).
    size: usize,
}

/// The bytes of the properties a message carries along (what a client can make large).
fn properties_size(p: &PublishProperties) -> usize {
    let strings: usize = p
        .user_properties
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_str().len())
        .sum();
    strings
        + p.response_topic.as_ref().map_or(0, |t| t.len())
        + p.correlation_data.as_ref().map_or(0, |d| d.len())
        + p.content_type.as_ref().map_or(0, |c| c.as_str().len())
}

impl Message {
    /// A message the broker makes itself: no properties, no expiry, no publishing session.
    pub fn new(topic: TopicName, payload: Bytes, qos: QoS, retain: bool) -> Self {
        Self {
            size: topic.len() + payload.len(),
            topic,
            payload,
            qos,
            retain,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: 0,
            stored: OnceLock::new(),
        }
    }

    /// With `properties` forwarded; their Message Expiry Interval, if any, starts now.
    pub fn with_properties(mut self, mut properties: PublishProperties) -> Self {
        self.expires_at = properties
            .message_expiry_interval
            .take()
            .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        self.size = self.topic.len() + self.payload.len() + properties_size(&properties);
        self.properties = properties;
        self
    }

    /// Published by session `origin` (for No Local).
    pub fn published_by(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// A copy whose topic and payload have allocations of their own. A decoded message shares
    /// the read buffer it came from (up to 16 KB); one kept for long, such as a retained message,
    /// should not keep that whole buffer alive.
    pub fn compact(&self) -> Message {
        Message {
            topic: TopicName::try_from(self.topic.as_str()).unwrap_or_else(|_| self.topic.clone()),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at,
            origin: self.origin,
            stored: OnceLock::new(),
            size: self.size,
        }
    }

    /// What the message counts for in byte limits: its topic, payload and the properties it
    /// carries along (user properties, correlation data, response topic, content type).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Seconds left of the Message Expiry Interval, rounded up, for forwarding.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX).max(1)
        })
    }

    /// The stored form (the expiry as wall-clock time, which survives a restart).
    pub fn record(&self) -> store::MessageRecord {
        store::MessageRecord {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at.map(wall_clock),
        }
    }

    /// A message recovered from the store (`id` 0 for a retained one or a will, stored by
    /// value). The publishing session is not kept, so No Local does not apply to it.
    pub fn from_record(id: u64, record: &Arc<store::MessageRecord>) -> Self {
        let message = Self {
            size: record.topic.len() + record.payload.len() + properties_size(&record.properties),
            topic: record.topic.clone(),
            payload: record.payload.clone(),
            qos: record.qos,
            retain: record.retain,
            properties: record.properties.clone(),
            expires_at: record.expires_at.and_then(monotonic),
            origin: 0,
            stored: OnceLock::new(),
        };
        if id != 0 {
            let _ = message.stored.set((id, record.clone()));
        }
        message
    }
}

/// Wall-clock time of a monotonic instant (for expiry times that must survive a restart).
fn wall_clock(at: Instant) -> SystemTime {
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
fn monotonic(at: SystemTime) -> Option<Instant> {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_add(left)
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub message: Arc<Message>,
    /// The lower of the published and the subscription QoS.
    pub qos: QoS,
    /// RETAIN as sent: set for retained messages sent on subscribe, or kept with Retain As
    /// Published.
    pub retain: bool,
    /// Identifiers of the matching subscriptions (v5).
    pub subscription_ids: Vec<SubscriptionId>,
    /// The entry's position in the durable store's queue of the session; 0 when not stored
    /// (QoS 0, a session that is not persistent, or no store).
    pub seq: u64,
    /// Recovered from the store as not yet sent: it may have been sent before the restart, so it
    /// goes out with DUP.
    pub redelivery: bool,
    /// The access rules' revision (`AccessControl::revision`) when the subscriber's right to
    /// read it was checked; [`Delivery::UNCHECKED`] for one recovered from the store. When the
    /// rules changed since, it is checked again before it is sent.
    pub checked: u64,
}

impl Delivery {
    /// The `checked` revision of a delivery whose read right was never checked.
    pub const UNCHECKED: u64 = u64::MAX;

    /// A delivery not (yet) in the store, whose read right was checked under the rules of
    /// `revision`.
    pub fn new(
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        subscription_ids: Vec<SubscriptionId>,
        revision: u64,
    ) -> Self {
        Self {
            message,
            qos,
            retain,
            subscription_ids,
            seq: 0,
            redelivery: false,
            checked: revision,
        }
    }
}
