//! Inbound PUBLISH (§3.3) and PUBREL (§3.6): topic aliases, the publish permission, the inbound
//! QoS 1/2 acknowledgements (held until what the message stored is durable), and the pause of a
//! publisher whose subscriber falls behind.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use codec::{Packet, PubAck, PubComp, PubRec, PubRel, Publish, QosPid, ReasonCode, TopicName};
use tracing::{debug, info};

use super::Connection;
use super::violation::Violation;
use crate::broker::QuotaExceeded;
use crate::escape::{Escaped, User};
use crate::lifecycle::publish_action;
use crate::message::Message;
use crate::session::{InboundQos2, Session};

/// Levels a topic name or filter may have at most (as EMQX's default `max_topic_levels`). Each
/// level of a subscription or retained topic is a node in a trie; without a limit one packet of
/// 64 KB of `/` would build tens of thousands of them.
pub(crate) const MAX_TOPIC_LEVELS: usize = 128;

pub(super) fn too_many_levels(topic: &str) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() >= MAX_TOPIC_LEVELS
}

/// The longest a publisher waits for a congested subscriber before reading on.
const CONGESTION_WAIT: Duration = Duration::from_millis(5);

/// Waits, at most `CONGESTION_WAIT`, until a congested subscriber's queue has drained below its
/// low-water mark. Publishers then read no faster than their subscribers take: TCP flow control
/// slows them instead of the broker dropping QoS 0 messages or queueing without end. A subscriber
/// that stays behind costs each publisher at most this wait per batch of packets read; its queue
/// limit applies as before.
pub(super) async fn wait_for_space(session: &Session) {
    let space = session.space.notified();
    tokio::pin!(space);
    space.as_mut().enable();
    if session.lock().is_congested() {
        let _ = tokio::time::timeout(CONGESTION_WAIT, space).await;
    }
}

impl Connection {
    pub(super) fn on_publish(&mut self, mut p: Publish) -> Result<(), Violation> {
        let stats = self.shared.stats();
        stats.messages_received.fetch_add(1, Ordering::Relaxed);
        stats.received_by_qos[p.qos.qos() as usize].fetch_add(1, Ordering::Relaxed);
        // A topic alias the client sets now (§3.3.2.3.4); recorded below, once allowed.
        let mut sets_alias = None;
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias.get() > self.shared.options().max_topic_alias {
                return Err(Violation::TopicAliasTooHigh);
            }
            if p.topic.is_empty() {
                match self.aliases().inbound.get(&alias.get()) {
                    Some(topic) => p.topic = topic.clone(),
                    None => return Err(Violation::UnknownTopicAlias),
                }
            } else {
                sets_alias = Some(alias.get());
            }
        }
        if too_many_levels(p.topic.as_str()) {
            return Err(Violation::TooManyTopicLevels);
        }

        let v5 = self.version.is_v5();
        let action = publish_action(p.retain, p.payload.is_empty());
        let mut reason = ReasonCode::Success;
        let allowed = self.shared.access().may_publish(
            &self.identity,
            &self.client_id,
            p.topic.as_str(),
            action,
        );
        if let Some(alias) = sets_alias {
            let inbound = &mut self.aliases().inbound;
            if allowed {
                // A copy of its own: the decoded topic shares the whole read buffer.
                let topic =
                    TopicName::try_from(p.topic.as_str()).unwrap_or_else(|_| p.topic.clone());
                inbound.insert(alias, topic);
            } else {
                // Not to a topic it may not publish to; nor may the alias keep its old topic,
                // which the client no longer means.
                inbound.remove(&alias);
            }
        }
        if !allowed {
            info!(user = %User(self.identity.user.as_deref()), topic = %Escaped(p.topic.as_str()), "publish not authorized");
            reason = ReasonCode::NotAuthorized;
        } else if p.properties.payload_format_indicator == Some(codec::PayloadFormat::Utf8)
            && std::str::from_utf8(&p.payload).is_err()
        {
            reason = ReasonCode::PayloadFormatInvalid;
        }
        let accepted = reason == ReasonCode::Success;

        match p.qos {
            QosPid::AtMostOnce => {
                if accepted && self.accept_publish(p).is_err() {
                    debug!("retained QoS 0 message over the retained quota; dropped");
                }
            }
            QosPid::AtLeastOnce(id) => {
                let mut ticket = 0;
                if accepted {
                    match self.accept_publish(p) {
                        Ok((delivered, t)) => {
                            ticket = t;
                            if delivered == 0 && v5 {
                                reason = ReasonCode::NoMatchingSubscribers;
                            }
                        }
                        Err(QuotaExceeded) => reason = ReasonCode::QuotaExceeded,
                    }
                }
                let mut ack = PubAck::new(id);
                // MQTT 3 has no failure PUBACK; refusing there means acknowledging and dropping.
                if v5 {
                    ack.reason_code = reason;
                }
                self.send_when(ticket, Packet::PubAck(ack));
            }
            QosPid::ExactlyOnce(id) => {
                let receive_maximum = usize::from(self.shared.options().receive_maximum.get());
                let inbound = self.session.lock().inbound_publish(
                    id,
                    accepted,
                    receive_maximum,
                    self.owner(),
                );
                let mut ticket = match inbound {
                    Err(_) => return Err(Violation::ReceiveMaximumExceeded),
                    Ok(InboundQos2::Duplicate { ticket }) => ticket,
                    Ok(InboundQos2::New { ticket }) => ticket,
                };
                // [MQTT-4.3.3-9]: a repeated PUBLISH before PUBREL is not delivered again.
                if matches!(inbound, Ok(InboundQos2::New { .. })) && accepted {
                    match self.accept_publish(p) {
                        Ok((delivered, t)) => {
                            ticket = ticket.max(t);
                            if delivered == 0 && v5 {
                                reason = ReasonCode::NoMatchingSubscribers;
                            }
                            self.session.lock().inbound_routed(id, ticket);
                        }
                        Err(QuotaExceeded) => {
                            // Not taken: the id is not kept either (and the PUBREC waits until
                            // that is on disk), so the client may reuse it.
                            reason = ReasonCode::QuotaExceeded;
                            let released = self.session.lock().inbound_release(id, self.owner());
                            ticket = ticket.max(released.unwrap_or(0));
                        }
                    }
                }
                let mut rec = PubRec::new(id);
                if v5 {
                    rec.reason_code = reason;
                }
                self.send_when(ticket, Packet::PubRec(rec));
            }
        }
        Ok(())
    }

    /// Stores (if retained) and routes an accepted PUBLISH; returns how many sessions got it and
    /// the ticket of what that put in the durable store, or that the retained quota refused it.
    fn accept_publish(&mut self, p: Publish) -> Result<(usize, u64), QuotaExceeded> {
        let message = Message::new(p.topic, p.payload, p.qos.qos(), p.retain)
            .with_properties(p.properties)
            .published_by(self.session.id);
        let Ok(routed) = self.shared.publish(&Arc::new(message)) else {
            return Err(QuotaExceeded);
        };
        if let Some(session) = routed.congested
            && !Arc::ptr_eq(&session, &self.session)
        {
            self.congested = Some(session);
        }
        Ok((routed.delivered, routed.ticket))
    }

    /// PUBREL: the inbound QoS 2 id is released; PUBCOMP once that is durable (0x92 for an id
    /// that was not awaiting PUBREL).
    pub(super) fn on_pubrel(&mut self, r: PubRel) {
        let released = self
            .session
            .lock()
            .inbound_release(r.packet_id, self.owner());
        let mut comp = PubComp::new(r.packet_id);
        if released.is_none() {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send_when(released.unwrap_or(0), Packet::PubComp(comp));
    }
}
