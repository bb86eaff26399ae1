//! Bounded state per user (issue #16): subscriptions stored one row each, and the limits on
//! subscriptions per client, queued bytes, retained messages and session expiry, as a client
//! sees them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use bytes::Bytes;
use codec::{
    Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, QosPid, ReasonCode, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName,
};
use common::{Raw, TestBroker, metric};
use server::{Broker, BrokerOptions};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn options() -> BrokerOptions {
    BrokerOptions {
        sys_interval: None,
        ..BrokerOptions::default()
    }
}

async fn persistent(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    id: &str,
) -> (Raw, codec::ConnAck) {
    Raw::connect_with(addr, version, id, |c| {
        c.clean_start = false;
        if version.is_v5() {
            c.properties.session_expiry_interval = Some(3600);
        }
    })
    .await
}

fn subscribe(filters: &[String], id: u16) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(id).unwrap(),
        properties: Default::default(),
        filters: filters
            .iter()
            .map(|f| {
                (
                    TopicFilter::try_from(f.as_str()).unwrap(),
                    SubscriptionOptions::with_qos(QoS::AtLeastOnce),
                )
            })
            .collect(),
    })
}

async fn suback(raw: &mut Raw, filters: &[String], id: u16) -> Vec<ReasonCode> {
    raw.send(subscribe(filters, id)).await;
    match raw.recv().await {
        Some(Packet::SubAck(ack)) => ack.reason_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn publish(topic: &str, payload: Vec<u8>, id: u16, retain: bool) -> Packet {
    let mut p = Publish::new(TopicName::try_from(topic).unwrap(), Bytes::from(payload));
    p.qos = QosPid::AtLeastOnce(PacketId::new(id).unwrap());
    p.retain = retain;
    Packet::Publish(p)
}

async fn puback(raw: &mut Raw, packet: Packet) -> ReasonCode {
    raw.send(packet).await;
    match raw.recv().await {
        Some(Packet::PubAck(a)) => a.reason_code,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn each_subscribe_writes_its_own_subscription_not_the_whole_session() {
    let data = tempfile::tempdir().unwrap();
    let (store, recovered) = store::Store::open(data.path(), store::Policy::default()).unwrap();
    let broker = Broker::builder(options()).store(store, recovered).build();
    let b = TestBroker::with_broker(broker).await;
    let (mut raw, _) = persistent(b.addr, V5, "many").await;
    for i in 0..1_500u16 {
        let filter = format!("sensors/building-{i}/floor/+/room/+/temperature");
        assert!(suback(&mut raw, &[filter], i % 60_000 + 1).await[0].is_success());
    }
    let written = metric(&b.broker, "mqtt_store_bytes_written_total");
    // One row per SUBSCRIBE: about 60 bytes each. Rewriting the whole session each time wrote
    // 1,500 × 750 × 60 bytes, about 68 MB.
    println!("1,500 SUBSCRIBEs wrote {written} bytes");
    assert!(written < 1_000_000, "{written} bytes written");
    b.stop().await;
    // And they are all back after a restart.
    let (store, recovered) = store::Store::open(data.path(), store::Policy::default()).unwrap();
    assert_eq!(recovered.sessions[0].subscriptions.len(), 1_500);
    store.close();
}

#[tokio::test]
async fn subscriptions_past_the_limit_are_refused_with_quota_exceeded() {
    let b = TestBroker::with_options(BrokerOptions {
        max_subscriptions_per_client: NonZeroU32::new(3),
        ..options()
    })
    .await;
    for version in [V5, V3] {
        let mut raw = Raw::connect(b.addr, version, "subs").await;
        let filters: Vec<String> = (0..5).map(|i| format!("t/{i}")).collect();
        let codes = suback(&mut raw, &filters, 1).await;
        let refused = if version.is_v5() {
            ReasonCode::QuotaExceeded
        } else {
            // MQTT 3 carries every failure as 0x80.
            ReasonCode::UnspecifiedError
        };
        assert_eq!(
            codes,
            [
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS1,
                refused,
                refused
            ],
            "{version:?}"
        );
        // Subscribing again to one it holds is no new subscription.
        assert!(suback(&mut raw, &filters[..1], 2).await[0].is_success());
    }
    b.stop().await;
}

#[tokio::test]
async fn a_queue_holds_at_most_its_bytes() {
    let b = TestBroker::with_options(BrokerOptions {
        max_queued_bytes: NonZeroU64::new(1_000),
        ..options()
    })
    .await;
    let (mut sub, _) = persistent(b.addr, V5, "slow").await;
    assert!(suback(&mut sub, &["q/#".to_owned()], 1).await[0].is_success());
    // Offline for sure before anything is published: what follows is queued, not sent.
    sub.send(Packet::Disconnect(codec::Disconnect::new(
        ReasonCode::Success,
    )))
    .await;
    assert!(sub.expect_close().await.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut publisher = Raw::connect(b.addr, V5, "pub").await;
    for i in 1..=5 {
        puback(&mut publisher, publish("q/x", vec![b'x'; 300], i, false)).await;
    }
    // 300 bytes of payload and 3 of topic each: three fit in 1,000 bytes.
    let (mut sub, _) = persistent(b.addr, V5, "slow").await;
    for _ in 0..3 {
        match sub.recv().await {
            Some(Packet::Publish(p)) => {
                if let QosPid::AtLeastOnce(id) = p.qos {
                    sub.send(Packet::PubAck(PubAck::new(id))).await;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    sub.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(metric(&b.broker, "mqtt_messages_dropped_total"), 2);
    b.stop().await;
}

#[tokio::test]
async fn retained_messages_past_their_limits_are_refused() {
    let b = TestBroker::with_options(BrokerOptions {
        max_retained_messages: NonZeroU32::new(2),
        max_retained_bytes: NonZeroU64::new(1_000),
        ..options()
    })
    .await;
    let mut raw = Raw::connect(b.addr, V5, "retainer").await;
    assert_eq!(
        puback(&mut raw, publish("r/1", vec![b'a'; 10], 1, true)).await,
        ReasonCode::NoMatchingSubscribers
    );
    assert_eq!(
        puback(&mut raw, publish("r/2", vec![b'b'; 10], 2, true)).await,
        ReasonCode::NoMatchingSubscribers
    );
    // A third topic: over the count.
    assert_eq!(
        puback(&mut raw, publish("r/3", vec![b'c'; 10], 3, true)).await,
        ReasonCode::QuotaExceeded
    );
    // Replacing one is fine; growing it past the bytes is not.
    assert_eq!(
        puback(&mut raw, publish("r/1", vec![b'A'; 500], 4, true)).await,
        ReasonCode::NoMatchingSubscribers
    );
    assert_eq!(
        puback(&mut raw, publish("r/2", vec![b'B'; 600], 5, true)).await,
        ReasonCode::QuotaExceeded
    );
    // Clearing one makes room.
    assert_eq!(
        puback(&mut raw, publish("r/2", Vec::new(), 6, true)).await,
        ReasonCode::NoMatchingSubscribers
    );
    assert_eq!(
        puback(&mut raw, publish("r/3", vec![b'c'; 10], 7, true)).await,
        ReasonCode::NoMatchingSubscribers
    );
    // What a subscriber finds: the kept ones only.
    let mut sub = Raw::connect(b.addr, V5, "reader").await;
    assert!(suback(&mut sub, &["r/#".to_owned()], 1).await[0].is_success());
    let mut got = Vec::new();
    for _ in 0..2 {
        match sub.recv().await {
            Some(Packet::Publish(p)) => got.push((p.topic.as_str().to_owned(), p.payload.len())),
            other => panic!("{other:?}"),
        }
    }
    got.sort();
    assert_eq!(got, [("r/1".to_owned(), 500), ("r/3".to_owned(), 10)]);
    assert_eq!(metric(&b.broker, "mqtt_retained_refused_total"), 2);
    b.stop().await;
}

#[tokio::test]
async fn sessions_expire_within_a_day_by_default() {
    let b = TestBroker::with_options(options()).await;
    let (_raw, ack) = Raw::connect_with(b.addr, V5, "forever", |c| {
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(u32::MAX);
    })
    .await;
    assert_eq!(ack.properties.session_expiry_interval, Some(86_400));
    b.stop().await;
}
