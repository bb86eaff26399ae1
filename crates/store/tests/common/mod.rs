//! Records for the tests, and a look into the database file after the store is closed.

#![allow(dead_code)] // each test binary uses part of it

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codec::{
    MqttString, PacketId, PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName,
};
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use store::{
    EntryState, MessageRecord, Op, QueueEntry, SessionExpiry, SessionRecord, SubscriptionRecord,
    WillRecord,
};

pub fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap()
}

pub fn string(s: &str) -> MqttString {
    MqttString::try_from(s).unwrap()
}

pub fn sub_id(n: u32) -> SubscriptionId {
    SubscriptionId::new(n).unwrap()
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// A time far in the future (2096), exact to the nanosecond.
pub fn later() -> SystemTime {
    UNIX_EPOCH + Duration::new(4_000_000_000, 123_456_789)
}

/// A message with every MQTT 5 PUBLISH property set.
pub fn full_message(t: &str) -> MessageRecord {
    MessageRecord {
        topic: topic(t),
        payload: Bytes::from_static(b"\x00\x01 payload \xff"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(3600),
            topic_alias: NonZeroU16::new(7),
            response_topic: Some(topic("reply/to/me")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02\x03")),
            content_type: Some(string("text/plain; charset=\u{e9}")),
            subscription_identifiers: vec![sub_id(1), sub_id(268_435_455)],
            user_properties: vec![
                (string("k"), string("v1")),
                (string("k"), string("v2")),
                (string("\u{2A6D4}"), string("")),
            ],
        },
        expires_at: Some(later()),
    }
}

/// A QoS 1 message without properties.
pub fn plain_message(t: &str, payload: &[u8]) -> MessageRecord {
    MessageRecord {
        topic: topic(t),
        payload: Bytes::copy_from_slice(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
    }
}

/// A session with subscriptions covering every option, and a will.
pub fn full_session(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.to_owned(),
        expiry: SessionExpiry::After(Duration::new(3600, 5)),
        disconnected_at: Some(UNIX_EPOCH + Duration::new(4_000_000_000, 1)),
        subscriptions: vec![
            SubscriptionRecord {
                filter: TopicFilter::new(string("a/+/c")).unwrap(),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
                id: Some(sub_id(42)),
            },
            SubscriptionRecord {
                filter: TopicFilter::new(string("$share/group/x/#")).unwrap(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendIfNew,
                },
                id: None,
            },
            SubscriptionRecord {
                filter: TopicFilter::new(string("#")).unwrap(),
                options: SubscriptionOptions::default(),
                id: Some(sub_id(268_435_455)),
            },
        ],
        will: Some(WillRecord {
            message: full_message("will/topic"),
            delay: Duration::from_millis(1500),
        }),
        username: Some("alice".to_owned()),
    }
}

/// A session that never expires, without subscriptions or will.
pub fn session(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.to_owned(),
        expiry: SessionExpiry::Never,
        disconnected_at: None,
        subscriptions: Vec::new(),
        will: None,
        username: None,
    }
}

pub fn entry(message_id: u64) -> QueueEntry {
    QueueEntry {
        message_id,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        packet_id: None,
        state: EntryState::Queued,
    }
}

pub fn put_session(s: SessionRecord) -> Op {
    Op::PutSession(Box::new(s))
}

pub fn put_message(id: u64, m: MessageRecord) -> Op {
    Op::PutMessage {
        id,
        message: Arc::new(m),
    }
}

/// One `Arc<str>` per client id, as the broker keeps one per session: the store coalesces the
/// ops of a queue entry only when they share it.
pub fn client(client_id: &str) -> Arc<str> {
    thread_local! {
        static CLIENTS: std::cell::RefCell<std::collections::HashMap<String, Arc<str>>> =
            Default::default();
    }
    CLIENTS.with(|c| {
        c.borrow_mut()
            .entry(client_id.to_owned())
            .or_insert_with(|| Arc::from(client_id))
            .clone()
    })
}

pub fn enqueue(client_id: &str, seq: u64, entry: QueueEntry) -> Op {
    Op::Enqueue {
        client_id: client(client_id),
        seq,
        entry,
    }
}

pub fn update(
    client_id: &str,
    seq: u64,
    packet_id: Option<PacketId>,
    state: EntryState,
    delivered: bool,
) -> Op {
    Op::UpdateEntry {
        client_id: client(client_id),
        seq,
        packet_id,
        state,
        delivered,
    }
}

pub fn dequeue(client_id: &str, seq: u64) -> Op {
    Op::Dequeue {
        client_id: client(client_id),
        seq,
    }
}

/// Rows in a table of the closed store's file.
pub fn rows(dir: &Path, table: &str) -> u64 {
    let db = redb::Database::open(dir.join(store::FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let count = match table {
        "messages" => txn
            .open_table(TableDefinition::<u64, &[u8]>::new("messages"))
            .unwrap()
            .len(),
        "queue" => txn
            .open_table(TableDefinition::<(&str, u64), &[u8]>::new("queue"))
            .unwrap()
            .len(),
        "inbound" => txn
            .open_table(TableDefinition::<(&str, u16), ()>::new("inbound"))
            .unwrap()
            .len(),
        other => txn
            .open_table(TableDefinition::<&str, &[u8]>::new(other))
            .unwrap()
            .len(),
    };
    count.unwrap()
}
