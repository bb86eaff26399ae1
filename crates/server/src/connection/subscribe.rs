//! SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10): each filter checked and authorized on its own, the
//! session and the index updated, the SUBACK held until a persistent session's new record is
//! durable, then the retained messages the subscription asks for.

use std::time::Instant;

use codec::{
    Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, TopicFilter, UnsubAck, Unsubscribe,
};
use tracing::info;

use super::Connection;
use super::MAX_TOPIC_LEVELS;
use super::publish::too_many_levels;
use crate::escape::{Escaped, User};
use crate::message::Delivery;
use crate::session::Subscription;

impl Connection {
    pub(super) fn on_subscribe(&mut self, s: Subscribe) {
        let sub_id = s.properties.subscription_identifier;
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut added = Vec::new();
        // What the SUBACK waits for: the new subscriptions of a persistent session on disk.
        let mut ticket = 0;
        for (filter, options) in s.filters {
            if too_many_levels(filter.filter()) {
                info!(filter = %Escaped(filter.filter()), "topic filter has more than {MAX_TOPIC_LEVELS} levels");
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            // A copy of its own: kept for the session's life, it must not keep the whole read
            // buffer it was decoded from alive.
            let Ok(filter) = TopicFilter::try_from(filter.as_str()) else {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            if !self
                .shared
                .access()
                .may_subscribe(&self.identity, &self.client_id, filter.filter())
            {
                info!(user = %User(self.identity.user.as_deref()), filter = %Escaped(filter.as_str()), "subscribe not authorized");
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            let subscription = Subscription {
                filter: filter.clone(),
                options,
                id: sub_id,
            };
            let quota = self.shared.options().max_subscriptions_per_client;
            let added_now = {
                let mut state = self.session.lock();
                let over = quota.is_some_and(|max| {
                    !state.is_subscribed(filter.as_str())
                        && state.subscription_count() >= max.get() as usize
                });
                (!over).then(|| {
                    let existed = state.subscribe(subscription.clone());
                    (
                        existed,
                        state.store_subscription(self.owner(), &subscription),
                    )
                })
            };
            let Some((existed, stored)) = added_now else {
                info!(filter = %Escaped(filter.as_str()), "subscriptions per client at their limit; refused");
                reasons.push(ReasonCode::QuotaExceeded);
                continue;
            };
            ticket = ticket.max(stored);
            added.push(subscription);
            reasons.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages are never sent for shared subscriptions (§4.8.2).
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained.push((filter, options));
            }
        }
        self.shared
            .index_subscriptions(&self.session, &added, &self.identity);
        self.send_when(
            ticket,
            Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                properties: Default::default(),
                reason_codes: reasons,
            }),
        );
        let now = Instant::now();
        let revision = self.shared.access().revision();
        for (filter, options) in retained {
            for message in self.shared.retained().matching(&filter, now) {
                if !self.shared.access().may_read(
                    &self.identity,
                    &self.client_id,
                    message.topic.as_str(),
                ) {
                    continue;
                }
                // [MQTT-3.3.1-9]: retained messages sent on subscribe keep RETAIN.
                let qos = message.qos.min(options.qos);
                let ids = sub_id.into_iter().collect();
                let delivery = Delivery::new(message, qos, true, ids, revision);
                self.shared.deliver(&self.session, delivery);
            }
        }
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut removed = Vec::new();
        let mut ticket = 0;
        {
            let mut state = self.session.lock();
            for filter in &u.filters {
                if state.unsubscribe(filter.as_str()) {
                    ticket = ticket.max(state.forget_subscription(self.owner(), filter.as_str()));
                    removed.push(filter);
                    reasons.push(ReasonCode::Success);
                } else {
                    reasons.push(ReasonCode::NoSubscriptionExisted);
                }
            }
        }
        self.shared.unindex(&self.session, removed);
        self.send_when(
            ticket,
            Packet::UnsubAck(UnsubAck {
                packet_id: u.packet_id,
                properties: Default::default(),
                reason_codes: if self.version.is_v5() {
                    reasons
                } else {
                    Vec::new()
                },
            }),
        );
    }
}
