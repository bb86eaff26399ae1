//! Wills (§3.1.2.5): the message a will publishes, its stored form, and publishing it under the
//! client's rights at the time it goes out.

use std::sync::Arc;
use std::time::Duration;

use auth::{Identity, PublishAction};
use codec::{LastWill, PublishProperties};
use tracing::debug;

use crate::broker::Shared;
use crate::escape::Escaped;
use crate::message::Message;

/// The message a will publishes, from session `origin` (for No Local).
pub(crate) fn will_message(will: LastWill, origin: u64) -> Message {
    let p = will.properties;
    let properties = PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        message_expiry_interval: p.message_expiry_interval,
        ..Default::default()
    };
    Message::new(will.topic, will.payload, will.qos, will.retain)
        .with_properties(properties)
        .published_by(origin)
}

/// The stored form of a will, with its own Will Delay Interval.
pub(crate) fn will_record(will: &LastWill) -> store::WillRecord {
    let delay = will.properties.will_delay_interval.map_or(0, u64::from);
    store::WillRecord {
        message: will_message(will.clone(), 0).record(),
        delay: Duration::from_secs(delay),
    }
}

/// Publishes a will, if the client may still publish to its topic.
pub(crate) fn publish_will(
    shared: &Shared,
    identity: &Identity,
    client_id: &str,
    message: &Arc<Message>,
) {
    let action = publish_action(message.retain, message.payload.is_empty());
    if !shared
        .access()
        .may_publish(identity, client_id, message.topic.as_str(), action)
    {
        debug!(topic = %Escaped(message.topic.as_str()), "will not authorized");
        return;
    }
    debug!(topic = %Escaped(message.topic.as_str()), "publishing will");
    if shared.publish(message).is_err() {
        debug!(topic = %Escaped(message.topic.as_str()), "retained will over the retained quota; dropped");
    }
}

/// Harper's verb for a PUBLISH: a retained empty payload deletes, other retained messages
/// update, the rest insert.
pub(crate) fn publish_action(retain: bool, empty: bool) -> PublishAction {
    match (retain, empty) {
        (false, _) => PublishAction::Insert,
        (true, false) => PublishAction::Update,
        (true, true) => PublishAction::Delete,
    }
}
