//! What the broker sends: messages taken from the session's queue within the in-flight window
//! (as PUBLISH packets, with topic aliases and the client's maximum packet size), the resend of
//! what was in flight when a session resumes, and the client's acknowledgements of them
//! (PUBACK, PUBREC, PUBCOMP).

use std::sync::atomic::Ordering;
use std::time::Instant;

use codec::{Packet, PacketId, PubRec, PubRel, Publish, PublishProperties, QoS, QosPid, TopicName};
use tracing::{debug, warn};

use super::{Aliases, ClientLimits, Connection, HELD_LIMIT};
use crate::escape::Escaped;
use crate::message::Delivery;
use crate::session::{Awaiting, Owner, PubRecOutcome, SessionState};

/// Bytes encoded into the write buffer before it is written out, so a long queue does not
/// build one huge buffer.
const WRITE_CHUNK: usize = 64 * 1024;
/// Room past `WRITE_CHUNK` for the packet that crosses it.
const WRITE_SLACK: usize = 4 * 1024;

impl Connection {
    /// Moves queued messages into the write buffer, within the in-flight window. Returns true
    /// when it stopped only because the write buffer is full.
    pub(super) fn drain_queue(&mut self) -> bool {
        let now = Instant::now();
        let window = usize::from(
            self.client
                .receive_maximum
                .min(self.shared.options().max_inflight.get()),
        );
        let session = self.session.clone();
        let mut state = session.lock();
        if state.generation() != self.generation {
            return false;
        }
        let more = self.drain_locked(&mut state, now, window);
        let low_water = crate::session::low_water(self.shared.options().max_queued_messages);
        if state.relieve_congestion(low_water) {
            drop(state);
            session.space.notify_waiters();
        }
        more
    }

    fn drain_locked(&mut self, state: &mut SessionState, now: Instant, window: usize) -> bool {
        let Connection {
            shared,
            client_id,
            identity,
            generation,
            version,
            client,
            aliases,
            wbuf,
            held,
            ..
        } = self;
        let owner = Owner {
            client_id,
            generation: *generation,
            persist: shared.persist(),
        };
        // A delivery routed under these rules needs no second look (see `Delivery::checked`).
        let revision = shared.access().revision();
        // A long queue fills the write buffer: size it once rather than by doubling.
        if state.queued() > 32 && wbuf.capacity() < WRITE_CHUNK {
            wbuf.reserve(WRITE_CHUNK + WRITE_SLACK);
        }
        while state.has_queued() {
            if wbuf.len() >= WRITE_CHUNK {
                return true;
            }
            if held.len() >= HELD_LIMIT {
                break;
            }
            let Some((delivery, id)) = state.next_to_send(window, now, owner) else {
                break;
            };
            if !may_still_read(shared, identity, client_id, &delivery, revision) {
                shared
                    .stats()
                    .messages_unauthorized
                    .fetch_add(1, Ordering::Relaxed);
                state.not_sent(&delivery, owner);
                continue;
            }
            let mut publish = build_publish(*version, &delivery, id, now);
            // Recovered from the store, it may have been sent before the restart.
            publish.dup = delivery.redelivery && id.is_some();
            // [MQTT-3.1.2-24]: never send a packet larger than the client accepts; drop it as
            // if delivered.
            if too_big(&publish, *version, client.max_packet_size) {
                debug!(topic = %Escaped(publish.topic.as_str()), "message larger than the client's maximum packet size; dropped");
                shared
                    .stats()
                    .messages_dropped
                    .fetch_add(1, Ordering::Relaxed);
                state.not_sent(&delivery, owner);
                continue;
            }
            apply_outbound_alias(aliases, client, *version, &mut publish);
            let qos = delivery.qos;
            let ticket = state.sent(delivery, id, held.is_empty(), owner);
            if held.is_empty() && ticket == 0 {
                if let Err(e) = publish.encode(wbuf, version.is_v5()) {
                    warn!(error = %e, "could not encode a PUBLISH");
                    continue;
                }
            } else {
                held.push_back((ticket, Packet::Publish(publish)));
            }
            let stats = shared.stats();
            stats.messages_sent.fetch_add(1, Ordering::Relaxed);
            stats.sent_by_qos[qos as usize].fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    /// Sends again, with DUP, what the session had in flight when its last connection ended
    /// [MQTT-4.4.0-1].
    pub(super) fn resend_in_flight(&mut self) {
        let now = Instant::now();
        let mut state = self.session.lock();
        // What the client may no longer read is not sent again.
        let shared = &self.shared;
        let revision = shared.access().revision();
        let readable =
            |d: &Delivery| may_still_read(shared, &self.identity, &self.client_id, d, revision);
        let dropped = state.drop_in_flight(readable, self.owner());
        self.shared
            .stats()
            .messages_unauthorized
            .fetch_add(dropped as u64, Ordering::Relaxed);
        let packets: Vec<Packet> = state
            .in_flight()
            .map(|o| match o.state {
                Awaiting::PubAck | Awaiting::PubRec => {
                    let mut p = build_publish(self.version, &o.delivery, Some(o.packet_id), now);
                    p.dup = true;
                    Packet::Publish(p)
                }
                Awaiting::PubComp => Packet::PubRel(PubRel::new(o.packet_id)),
            })
            .collect();
        drop(state);
        for p in packets {
            self.send(p);
        }
    }

    /// PUBACK or PUBCOMP: the flow of `id` ends if it awaited that.
    pub(super) fn on_acknowledged(&mut self, id: PacketId, expected: Awaiting) {
        self.session.lock().acknowledged(id, expected, self.owner());
    }

    /// PUBREC: PUBREL follows once the new state is durable; a failure PUBREC ends the flow; an
    /// unknown id is answered with PUBREL 0x92.
    pub(super) fn on_pubrec(&mut self, rec: PubRec) {
        let success = rec.reason_code.is_success();
        let outcome = self
            .session
            .lock()
            .pubrec(rec.packet_id, success, self.owner());
        match outcome {
            PubRecOutcome::Release { ticket } => {
                self.send_when(ticket, Packet::PubRel(PubRel::new(rec.packet_id)));
            }
            PubRecOutcome::Unknown => {
                let mut rel = PubRel::new(rec.packet_id);
                rel.reason_code = codec::ReasonCode::PacketIdentifierNotFound;
                self.send(Packet::PubRel(rel));
            }
            PubRecOutcome::Ended | PubRecOutcome::Ignored => {}
        }
    }
}

/// Whether the client may still read a delivery: checked again only when the access rules
/// moved past `revision`, the one they are at now, since it was routed (or it was recovered
/// from the store, never checked).
fn may_still_read(
    shared: &crate::broker::Shared,
    identity: &auth::Identity,
    client_id: &str,
    delivery: &Delivery,
    revision: u64,
) -> bool {
    delivery.checked == revision
        || shared
            .access()
            .may_read(identity, client_id, delivery.message.topic.as_str())
}

/// The PUBLISH of a delivery, as this client's protocol version carries it.
fn build_publish(
    version: codec::ProtocolVersion,
    d: &Delivery,
    id: Option<PacketId>,
    now: Instant,
) -> Publish {
    let m = &d.message;
    let mut properties = PublishProperties::default();
    if version.is_v5() {
        properties = m.properties.clone();
        properties.message_expiry_interval = m.remaining_expiry(now);
        properties
            .subscription_identifiers
            .clone_from(&d.subscription_ids);
    }
    Publish {
        dup: false,
        qos: match (d.qos, id) {
            (QoS::AtLeastOnce, Some(id)) => QosPid::AtLeastOnce(id),
            (QoS::ExactlyOnce, Some(id)) => QosPid::ExactlyOnce(id),
            _ => QosPid::AtMostOnce,
        },
        retain: d.retain,
        topic: m.topic.clone(),
        properties,
        payload: m.payload.clone(),
    }
}

/// Whether the PUBLISH is larger than the client's Maximum Packet Size.
fn too_big(publish: &Publish, version: codec::ProtocolVersion, max: u32) -> bool {
    publish
        .encoded_len(version.is_v5())
        .map_or(true, |len| len > max as usize)
}

/// Uses, or assigns, a topic alias when the client accepts them: the first PUBLISH on a topic
/// carries topic and alias, later ones the alias alone.
fn apply_outbound_alias(
    aliases: &mut Option<Box<Aliases>>,
    client: &ClientLimits,
    version: codec::ProtocolVersion,
    publish: &mut Publish,
) {
    if client.topic_alias_max == 0 || !version.is_v5() {
        return;
    }
    let aliases = &mut aliases.get_or_insert_default().outbound;
    if let Some(&alias) = aliases.get(&publish.topic) {
        publish.properties.topic_alias = std::num::NonZeroU16::new(alias);
        publish.topic = TopicName::empty();
        return;
    }
    let next = aliases.len() + 1;
    if next <= usize::from(client.topic_alias_max)
        && let Ok(alias) = u16::try_from(next)
    {
        aliases.insert(publish.topic.clone(), alias);
        publish.properties.topic_alias = std::num::NonZeroU16::new(alias);
    }
}
