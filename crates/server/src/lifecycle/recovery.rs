//! Start-up from the durable store: rebuilds retained messages and persistent sessions (their
//! subscriptions in the index, queues, messages in flight and inbound QoS 2 ids) from what
//! `store::Store::open` recovered. Every recovered session is offline; its clock
//! (`offline.rs`) starts when the broker starts serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use store::SessionExpiry;
use tracing::info;

use super::Offline;
use crate::broker::Shared;
use crate::escape::Escaped;
use crate::message::{Delivery, Message};
use crate::session::{Awaiting, Session, Subscription};

/// Rebuilds the broker's state from what the store recovered. Sessions whose client was
/// connected when the broker stopped count as disconnected now, and their wills are owed.
/// Returns the offline sessions, whose clocks are to be started.
pub(crate) fn restore(shared: &Shared, recovered: store::Recovered) -> Vec<Offline> {
    for record in recovered.retained {
        let message = Arc::new(Message::from_record(0, &Arc::new(record)));
        shared.retained().set(&message.topic.clone(), Some(message));
    }
    let now = SystemTime::now();
    let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
    let mut offline = Vec::new();
    let mut rewrite = Vec::new();
    let mut forgotten = Vec::new();
    for recovered in recovered.sessions {
        let mut record = recovered.record;
        let identity = Arc::new(auth::Identity {
            user: record.username.as_deref().map(Arc::from),
        });
        if !shared.access().is_identity_valid(&identity) {
            // Its owner was removed (or deactivated) while the broker was down.
            info!(client_id = %Escaped(&record.client_id), "session's owner is no longer a user; session dropped");
            forgotten.push(record.client_id);
            continue;
        }
        let session = Session::owned_by(
            Arc::from(record.client_id.as_str()),
            record.expiry.into(),
            identity.user.clone(),
        );
        // Format 1 kept subscriptions inside the session record: they move to rows of their
        // own (the record is rewritten without them below).
        let inline = std::mem::take(&mut record.subscriptions);
        if !inline.is_empty() {
            shared
                .persist()
                .subscriptions_stored(&record.client_id, inline.iter().cloned());
        }
        let subscriptions: Vec<Subscription> = inline
            .iter()
            .chain(&recovered.subscriptions)
            .map(|s| Subscription {
                filter: s.filter.clone(),
                options: s.options,
                id: s.id,
            })
            .collect();
        let entries = recovered.queue.into_iter().map(|(seq, entry, message)| {
            let message = messages
                .entry(entry.message_id)
                .or_insert_with(|| Arc::new(Message::from_record(entry.message_id, &message)))
                .clone();
            let mut delivery = Delivery::new(
                message,
                entry.qos,
                entry.retain,
                entry.subscription_ids,
                Delivery::UNCHECKED,
            );
            delivery.seq = seq;
            delivery.redelivery = true;
            let flight = Awaiting::from_stored(entry.state).zip(entry.packet_id);
            (
                delivery,
                flight.map(|(awaiting, packet_id)| (packet_id, awaiting)),
            )
        });
        let generation = {
            let mut state = session.lock();
            state.restore(
                subscriptions.iter().cloned(),
                entries,
                recovered.inbound_qos2,
            );
            state.generation()
        };
        shared.index_subscriptions(&session, &subscriptions, &identity);
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
        let will = record.will.take();
        if record.disconnected_at.is_none() || !inline.is_empty() {
            // Connected when the broker stopped: disconnected from now on (and a format-1
            // record is written again without its subscriptions).
            let mut record = record.clone();
            record.disconnected_at = Some(disconnected_at);
            record.will.clone_from(&will);
            rewrite.push(record);
        }
        offline.push(Offline {
            session,
            generation,
            identity,
            ends_in,
            will: will.map(|w| {
                (
                    Arc::new(Message::from_record(0, &Arc::new(w.message))),
                    w.delay,
                )
            }),
            disconnected_at,
        });
    }
    shared.persist().sessions_stored(rewrite);
    for client_id in forgotten {
        shared.persist().session_forgotten(&client_id);
    }
    offline
}
