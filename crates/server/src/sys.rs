//! `$SYS/broker/...` topics in the style of mosquitto, published as retained messages every
//! `sys_interval`. Who may read them is up to the access policy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use codec::{QoS, TopicName};

use crate::broker::Shared;
use crate::message::Message;

/// Publishes one round of `$SYS` topics.
pub(crate) fn publish(shared: &Shared) {
    let stats = shared.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let values = [
        (
            "$SYS/broker/version",
            format!("harper-mqtt {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", shared.uptime().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected",
            load(&stats.clients_connected),
        ),
        (
            "$SYS/broker/clients/total",
            shared.sessions().len().to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            load(&stats.messages_received),
        ),
        ("$SYS/broker/messages/sent", load(&stats.messages_sent)),
        (
            "$SYS/broker/messages/dropped",
            load(&stats.messages_dropped),
        ),
        ("$SYS/broker/bytes/received", load(&stats.bytes_received)),
        ("$SYS/broker/bytes/sent", load(&stats.bytes_sent)),
        (
            "$SYS/broker/subscriptions/count",
            shared.index_read().len().to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            shared.retained().len().to_string(),
        ),
    ];
    for (topic, value) in values {
        let Ok(topic) = TopicName::try_from(topic) else {
            continue;
        };
        let message = Message::new(topic, Bytes::from(value), QoS::AtMostOnce, true);
        // `$SYS` topics are not counted against the retained quota: this cannot be refused.
        let _ = shared.publish(&Arc::new(message));
    }
}
