//! An application message as the broker routes it, and one delivery of it to one session.

use std::sync::Arc;
use std::time::Instant;

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
    /// The message's id and record in the durable store, once a persistent session queued it.
    pub stored: std::sync::OnceLock<(u64, Arc<store::MessageRecord>)>,
}

impl Message {
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
            stored: std::sync::OnceLock::new(),
        }
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
}
