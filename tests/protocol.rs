//! Protocol behaviour checked byte for byte with a raw client, for MQTT 3.1.1 and 5.0.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use codec::{
    Disconnect, LastWill, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, ReasonCode, RetainHandling, Subscribe, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName, Unsubscribe,
};
use common::{Raw, TestBroker, WAIT};
use server::BrokerOptions;

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn publish(topic: &str, payload: &'static [u8], qos: QosPid, retain: bool) -> Packet {
    let mut p = Publish::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::from_static(payload),
    );
    p.qos = qos;
    p.retain = retain;
    Packet::Publish(p)
}

fn subscribe_opts(id: u16, filters: &[(&str, SubscriptionOptions)], sub_id: Option<u32>) -> Packet {
    let mut s = Subscribe {
        packet_id: pid(id),
        properties: Default::default(),
        filters: filters
            .iter()
            .map(|(f, o)| (TopicFilter::try_from(*f).unwrap(), *o))
            .collect(),
    };
    s.properties.subscription_identifier = sub_id.and_then(SubscriptionId::new);
    Packet::Subscribe(s)
}

async fn subscribe(raw: &mut Raw, filter: &str, qos: QoS) {
    raw.send(subscribe_opts(
        1,
        &[(filter, SubscriptionOptions::with_qos(qos))],
        None,
    ))
    .await;
    match raw.recv().await {
        Some(Packet::SubAck(ack)) => assert!(ack.reason_codes[0].is_success(), "{ack:?}"),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn recv_publish(raw: &mut Raw) -> Publish {
    match raw.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

// ---- CONNECT ----

#[tokio::test]
async fn first_packet_must_be_connect() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr, V5).await;
    raw.send(Packet::PingReq).await;
    assert!(raw.expect_close().await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_connect_timeout() {
    let options = BrokerOptions {
        connect_timeout: Duration::from_millis(200),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    let mut silent = Raw::open(broker.addr, V5).await;
    // Another client is served meanwhile.
    let mut other = Raw::connect(broker.addr, V5, "other").await;
    assert!(silent.expect_close().await.is_empty());
    other.send(Packet::PingReq).await;
    assert_eq!(other.recv().await, Some(Packet::PingResp));
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut raw = Raw::connect(broker.addr, version, "twice").await;
        let connect = codec::Connect::new(version, "twice".try_into().unwrap(), 60);
        raw.send(Packet::Connect(Box::new(connect))).await;
        let seen = raw.expect_close().await;
        if version == V5 {
            assert_eq!(
                seen,
                vec![Packet::Disconnect(Disconnect::new(
                    ReasonCode::ProtocolError
                ))]
            );
        } else {
            assert!(seen.is_empty());
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_0x01() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr, V3).await;
    // CONNECT "MQTT" level 6.
    raw.send_bytes(&[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 0])
        .await;
    assert_eq!(raw.stream.peek(&mut [0u8; 4]).await.unwrap(), 4);
    let mut buf = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut buf)
        .await
        .unwrap();
    assert_eq!(buf, [0x20, 0x02, 0x00, 0x01]);
    broker.stop().await;
}

#[tokio::test]
async fn accepts_mqtt_3_1_connect() {
    let broker = TestBroker::start().await;
    let raw = Raw::connect(broker.addr, ProtocolVersion::V3_1, "old-client").await;
    drop(raw);
    broker.stop().await;
}

#[tokio::test]
async fn empty_client_id_is_assigned_in_v5() {
    let broker = TestBroker::start().await;
    let (_raw, ack) = Raw::connect_with(broker.addr, V5, "", |_| {}).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let id = ack
        .properties
        .assigned_client_identifier
        .expect("assigned client identifier");
    assert!(!id.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn empty_client_id_needs_clean_session_in_v3() {
    let broker = TestBroker::start().await;
    let (_raw, ack) = Raw::connect_with(broker.addr, V3, "", |_| {}).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let (mut raw, ack) = Raw::connect_with(broker.addr, V3, "", |c| c.clean_start = false).await;
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(raw.expect_close().await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn takeover_disconnects_old_connection_and_keeps_session() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let id = format!("dup-{version:?}");
        let (mut old, _) = Raw::connect_with(broker.addr, version, &id, |c| {
            c.clean_start = version == V5;
            c.properties.session_expiry_interval = Some(60);
        })
        .await;
        subscribe(&mut old, "take/over", QoS::AtLeastOnce).await;
        let (mut new, ack) = Raw::connect_with(broker.addr, version, &id, |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(60);
        })
        .await;
        assert!(ack.session_present, "{version:?}");
        let expected = if version == V5 {
            vec![Packet::Disconnect(Disconnect::new(
                ReasonCode::SessionTakenOver,
            ))]
        } else {
            Vec::new() // MQTT 3 has no server DISCONNECT: the connection just closes
        };
        assert_eq!(old.expect_close().await, expected);
        // The subscription came along with the session.
        let mut publisher = Raw::connect(broker.addr, V5, "pub").await;
        publisher
            .send(publish("take/over", b"x", QosPid::AtMostOnce, false))
            .await;
        assert_eq!(&recv_publish(&mut new).await.payload[..], b"x");
        new.send(Packet::Disconnect(Disconnect::default())).await;
        new.expect_close().await;
    }
    broker.stop().await;
}

// ---- sessions ----

#[tokio::test]
async fn persistent_session_queues_messages_while_offline() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let id = format!("persist-{version:?}");
        let edit = |c: &mut codec::Connect| {
            c.clean_start = false;
            if c.protocol.is_v5() {
                c.properties.session_expiry_interval = Some(300);
            }
        };
        // v5 starts clean and keeps the session by its expiry interval; v3 needs clean
        // session 0 from the start.
        let (mut sub, ack) = Raw::connect_with(broker.addr, version, &id, |c| {
            edit(c);
            c.clean_start = version == V5;
        })
        .await;
        assert!(!ack.session_present);
        subscribe(&mut sub, "queue/me", QoS::AtLeastOnce).await;
        sub.send(Packet::Disconnect(Disconnect::default())).await;
        assert!(sub.expect_close().await.is_empty());

        let mut publisher = Raw::connect(broker.addr, V5, "queue-pub").await;
        publisher
            .send(publish(
                "queue/me",
                b"offline",
                QosPid::AtLeastOnce(pid(9)),
                false,
            ))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));

        let (mut sub, ack) = Raw::connect_with(broker.addr, version, &id, edit).await;
        assert!(ack.session_present, "{version:?}");
        let p = recv_publish(&mut sub).await;
        assert_eq!(&p.payload[..], b"offline");
        assert_eq!(p.qos.qos(), QoS::AtLeastOnce);
    }
    broker.stop().await;
}

#[tokio::test]
async fn clean_start_discards_the_old_session() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let id = format!("clean-{version:?}");
        let (mut sub, _) = Raw::connect_with(broker.addr, version, &id, |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(300);
        })
        .await;
        subscribe(&mut sub, "gone", QoS::AtLeastOnce).await;
        sub.send(Packet::Disconnect(Disconnect::default())).await;
        sub.expect_close().await;
        let (mut sub, ack) =
            Raw::connect_with(broker.addr, version, &id, |c| c.clean_start = true).await;
        assert!(!ack.session_present);
        let mut publisher = Raw::connect(broker.addr, V5, "clean-pub").await;
        publisher
            .send(publish("gone", b"x", QosPid::AtMostOnce, false))
            .await;
        sub.expect_silence(Duration::from_millis(300)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn unacknowledged_messages_are_resent_on_resume() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let id = format!("resend-{version:?}");
        let edit = |c: &mut codec::Connect| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(300);
        };
        let (mut sub, _) = Raw::connect_with(broker.addr, version, &id, edit).await;
        subscribe(&mut sub, "r/+", QoS::ExactlyOnce).await;
        let mut publisher = Raw::connect(broker.addr, V5, "resend-pub").await;
        publisher
            .send(publish("r/1", b"q1", QosPid::AtLeastOnce(pid(1)), false))
            .await;
        publisher
            .send(publish("r/2", b"q2", QosPid::ExactlyOnce(pid(2)), false))
            .await;
        let q1 = recv_publish(&mut sub).await;
        let q2 = recv_publish(&mut sub).await;
        assert!(!q1.dup && !q2.dup);
        let q2_id = q2.qos.packet_id().unwrap();
        // Acknowledge only the first half of the QoS 2 flow, then drop the connection.
        sub.send(Packet::PubRec(PubRec::new(q2_id))).await;
        assert_eq!(sub.recv().await, Some(Packet::PubRel(PubRel::new(q2_id))));
        drop(sub);

        let (mut sub, ack) = Raw::connect_with(broker.addr, version, &id, edit).await;
        assert!(ack.session_present);
        // [MQTT-4.4.0-1]: the unacknowledged PUBLISH again with DUP, and the PUBREL again.
        let again = recv_publish(&mut sub).await;
        assert!(again.dup, "{version:?}");
        assert_eq!((again.qos, &again.payload[..]), (q1.qos, &b"q1"[..]));
        assert_eq!(sub.recv().await, Some(Packet::PubRel(PubRel::new(q2_id))));
        sub.send(Packet::PubAck(PubAck::new(again.qos.packet_id().unwrap())))
            .await;
        sub.send(Packet::PubComp(PubComp::new(q2_id))).await;
        sub.expect_silence(Duration::from_millis(200)).await;
    }
    broker.stop().await;
}

// ---- keep alive and wills ----

#[tokio::test]
async fn silent_client_is_closed_after_keep_alive_and_will_published() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut watcher = Raw::connect(broker.addr, V5, &format!("watch-{version:?}")).await;
        subscribe(&mut watcher, "will/ka", QoS::AtMostOnce).await;
        let (mut quiet, _) = Raw::connect_with(broker.addr, version, "quiet", |c| {
            c.keep_alive = 1;
            c.will = Some(will("will/ka", b"gone"));
        })
        .await;
        let connected = std::time::Instant::now();
        let p = recv_publish(&mut watcher).await;
        assert_eq!(&p.payload[..], b"gone");
        // One and a half times the keep alive [MQTT-3.1.2-24], not sooner; the upper bound
        // is loose (the broker checks deadlines a few times a second; CI machines are slow).
        let silent = connected.elapsed();
        assert!(
            silent >= Duration::from_millis(1400) && silent < Duration::from_secs(5),
            "closed after {silent:?}"
        );
        let seen = quiet.expect_close().await;
        if version == V5 {
            assert_eq!(
                seen,
                vec![Packet::Disconnect(Disconnect::new(
                    ReasonCode::KeepAliveTimeout
                ))]
            );
        }
    }
    broker.stop().await;
}

/// A client that stops reading and sending (a vanished host resets nothing) while the broker has
/// data for it: the broker's writes stall, and after the keep alive it closes the connection and
/// publishes the will, rather than waiting on the socket for as long as the kernel retries.
#[tokio::test]
async fn a_client_that_neither_reads_nor_sends_is_closed_after_keep_alive() {
    let broker = TestBroker::start().await;
    let mut watcher = Raw::connect(broker.addr, V5, "watch-stuck").await;
    subscribe(&mut watcher, "will/stuck", QoS::AtMostOnce).await;
    let (mut stuck, _) = Raw::connect_with(broker.addr, V5, "stuck", |c| {
        c.keep_alive = 1;
        c.will = Some(will("will/stuck", b"stuck is gone"));
    })
    .await;
    subscribe(&mut stuck, "flood", QoS::AtMostOnce).await;
    // From here `stuck` reads nothing and sends nothing. Linux grows a receive buffer as its
    // reader reads, so a few MB fill both ends' buffers; 42 MB leave no doubt.
    let mut flooder = Raw::connect(broker.addr, V5, "flooder").await;
    let payload = Bytes::from(vec![7u8; 60_000]);
    for _ in 0..700 {
        let p = Publish::new(TopicName::try_from("flood").unwrap(), payload.clone());
        flooder.send(Packet::Publish(p)).await;
    }
    let p = recv_publish(&mut watcher).await;
    assert_eq!(&p.payload[..], b"stuck is gone");
    drop(stuck);
    broker.stop().await;
}

#[tokio::test]
async fn keep_alive_above_maximum_is_lowered_and_announced() {
    let options = BrokerOptions {
        max_keep_alive: NonZeroU16::new(30).unwrap(),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    let (_raw, ack) = Raw::connect_with(broker.addr, V5, "ka", |c| c.keep_alive = 0).await;
    assert_eq!(ack.properties.server_keep_alive, Some(30));
    let (_raw, ack) = Raw::connect_with(broker.addr, V5, "ka2", |c| c.keep_alive = 20).await;
    assert_eq!(ack.properties.server_keep_alive, None);
    broker.stop().await;
}

fn will(topic: &str, payload: &'static [u8]) -> LastWill {
    LastWill {
        topic: TopicName::try_from(topic).unwrap(),
        payload: Bytes::from_static(payload),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    }
}

#[tokio::test]
async fn will_follows_disconnect_reason() {
    let broker = TestBroker::start().await;
    let mut watcher = Raw::connect(broker.addr, V5, "w-watch").await;
    subscribe(&mut watcher, "will/+", QoS::AtMostOnce).await;

    // Abnormal close: the will goes out.
    let (c, _) = Raw::connect_with(broker.addr, V3, "w1", |c| {
        c.will = Some(will("will/a", b"a"))
    })
    .await;
    drop(c);
    assert_eq!(&recv_publish(&mut watcher).await.payload[..], b"a");

    // Normal DISCONNECT: no will.
    let (mut c, _) = Raw::connect_with(broker.addr, V5, "w2", |c| {
        c.will = Some(will("will/b", b"b"))
    })
    .await;
    c.send(Packet::Disconnect(Disconnect::default())).await;
    c.expect_close().await;
    watcher.expect_silence(Duration::from_millis(300)).await;

    // DISCONNECT 0x04: the will goes out.
    let (mut c, _) = Raw::connect_with(broker.addr, V5, "w3", |c| {
        c.will = Some(will("will/c", b"c"))
    })
    .await;
    c.send(Packet::Disconnect(Disconnect::new(
        ReasonCode::DisconnectWithWillMessage,
    )))
    .await;
    c.expect_close().await;
    assert_eq!(&recv_publish(&mut watcher).await.payload[..], b"c");
    broker.stop().await;
}

#[tokio::test]
async fn will_delay_is_cancelled_by_reconnect_and_capped_by_session_expiry() {
    let broker = TestBroker::start().await;
    let mut watcher = Raw::connect(broker.addr, V5, "d-watch").await;
    subscribe(&mut watcher, "delayed/+", QoS::AtMostOnce).await;
    let delayed = |topic: &str| {
        let mut w = will(topic, b"late");
        w.properties.will_delay_interval = Some(1);
        w
    };
    // Reconnect within the delay: no will.
    let (c, _) = Raw::connect_with(broker.addr, V5, "d1", |c| {
        c.will = Some(delayed("delayed/1"));
        c.properties.session_expiry_interval = Some(60);
    })
    .await;
    drop(c);
    let (_c, _) = Raw::connect_with(broker.addr, V5, "d1", |c| {
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(60);
    })
    .await;
    watcher.expect_silence(Duration::from_millis(1500)).await;

    // Session expiry 0 ends the session at once, so the will goes out without waiting.
    let (c, _) = Raw::connect_with(broker.addr, V5, "d2", |c| {
        let mut w = delayed("delayed/2");
        w.properties.will_delay_interval = Some(3600);
        c.will = Some(w);
    })
    .await;
    drop(c);
    let p = watcher
        .recv_within(Duration::from_millis(500))
        .await
        .expect("will sent at once");
    assert!(matches!(p, Some(Packet::Publish(_))));
    broker.stop().await;
}

// ---- QoS flows ----

#[tokio::test]
async fn qos2_inbound_is_delivered_exactly_once() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut sub = Raw::connect(broker.addr, version, &format!("q2s-{version:?}")).await;
        subscribe(&mut sub, "q2", QoS::ExactlyOnce).await;
        let mut publisher = Raw::connect(broker.addr, version, &format!("q2p-{version:?}")).await;
        let packet = publish("q2", b"one", QosPid::ExactlyOnce(pid(5)), false);
        publisher.send(packet.clone()).await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubRec(r)) if r.packet_id == pid(5)));
        // A duplicate before PUBREL.
        let Packet::Publish(mut dup) = packet else {
            unreachable!()
        };
        dup.dup = true;
        publisher.send(Packet::Publish(dup)).await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
        publisher.send(Packet::PubRel(PubRel::new(pid(5)))).await;
        assert!(
            matches!(publisher.recv().await, Some(Packet::PubComp(c)) if c.packet_id == pid(5))
        );

        // The subscriber sees it once, with the full QoS 2 flow.
        let p = recv_publish(&mut sub).await;
        let QosPid::ExactlyOnce(id) = p.qos else {
            panic!("{p:?}")
        };
        sub.send(Packet::PubRec(PubRec::new(id))).await;
        assert_eq!(sub.recv().await, Some(Packet::PubRel(PubRel::new(id))));
        sub.send(Packet::PubComp(PubComp::new(id))).await;
        sub.expect_silence(Duration::from_millis(200)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut sub = Raw::connect(broker.addr, version, "lowq").await;
        subscribe(&mut sub, "lq/#", QoS::AtLeastOnce).await;
        let mut publisher = Raw::connect(broker.addr, V5, "lowq-pub").await;
        publisher
            .send(publish("lq/2", b"a", QosPid::ExactlyOnce(pid(1)), false))
            .await;
        publisher
            .send(publish("lq/0", b"b", QosPid::AtMostOnce, false))
            .await;
        assert_eq!(recv_publish(&mut sub).await.qos.qos(), QoS::AtLeastOnce);
        assert_eq!(recv_publish(&mut sub).await.qos.qos(), QoS::AtMostOnce);
    }
    broker.stop().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_with_all_identifiers() {
    let broker = TestBroker::start().await;
    let mut sub = Raw::connect(broker.addr, V5, "overlap").await;
    sub.send(subscribe_opts(
        1,
        &[("ov/+", SubscriptionOptions::with_qos(QoS::AtMostOnce))],
        Some(1),
    ))
    .await;
    sub.recv().await;
    sub.send(subscribe_opts(
        2,
        &[("ov/#", SubscriptionOptions::with_qos(QoS::AtLeastOnce))],
        Some(2),
    ))
    .await;
    sub.recv().await;
    let mut publisher = Raw::connect(broker.addr, V5, "overlap-pub").await;
    publisher
        .send(publish("ov/x", b"x", QosPid::ExactlyOnce(pid(3)), false))
        .await;
    let p = recv_publish(&mut sub).await;
    assert_eq!(p.qos.qos(), QoS::AtLeastOnce);
    let mut ids: Vec<u32> = p
        .properties
        .subscription_identifiers
        .iter()
        .map(|s| s.get())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    sub.send(Packet::PubAck(PubAck::new(p.qos.packet_id().unwrap())))
        .await;
    sub.expect_silence(Duration::from_millis(300)).await;

    // MQTT 3.1.1 [MQTT-3.3.5-1]: one copy as well.
    let mut v3 = Raw::connect(broker.addr, V3, "overlap3").await;
    subscribe(&mut v3, "ov3/+", QoS::AtMostOnce).await;
    subscribe(&mut v3, "ov3/#", QoS::AtLeastOnce).await;
    publisher
        .send(publish("ov3/y", b"y", QosPid::AtLeastOnce(pid(4)), false))
        .await;
    assert_eq!(recv_publish(&mut v3).await.qos.qos(), QoS::AtLeastOnce);
    v3.expect_silence(Duration::from_millis(300)).await;
    broker.stop().await;
}

#[tokio::test]
async fn inflight_window_holds_and_packet_ids_are_not_reused() {
    let broker = TestBroker::start().await;
    let window = usize::from(BrokerOptions::default().max_inflight.get());
    for version in [V3, V5] {
        let mut sub = Raw::connect(broker.addr, version, "ids").await;
        subscribe(&mut sub, "ids", QoS::AtLeastOnce).await;
        let mut publisher = Raw::connect(broker.addr, V5, "ids-pub").await;
        for i in 1..=(window as u16 + 10) {
            publisher
                .send(publish("ids", b"m", QosPid::AtLeastOnce(pid(i)), false))
                .await;
        }
        let mut in_flight = Vec::new();
        for _ in 0..window {
            let id = recv_publish(&mut sub).await.qos.packet_id().unwrap();
            assert!(
                !in_flight.contains(&id),
                "packet id {id} reused while in flight"
            );
            in_flight.push(id);
        }
        // The window is full: nothing more until an acknowledgement.
        sub.expect_silence(Duration::from_millis(200)).await;
        let acked = in_flight.remove(0);
        sub.send(Packet::PubAck(PubAck::new(acked))).await;
        let next = recv_publish(&mut sub).await.qos.packet_id().unwrap();
        assert!(
            !in_flight.contains(&next),
            "packet id {next} reused while in flight"
        );
    }
    broker.stop().await;
}

// ---- retained ----

#[tokio::test]
async fn retained_messages_are_stored_replaced_and_cleared() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let topic = format!("ret/{version:?}");
        let mut publisher = Raw::connect(broker.addr, version, "ret-pub").await;
        publisher
            .send(publish(&topic, b"first", QosPid::AtMostOnce, true))
            .await;
        publisher
            .send(publish(
                &topic,
                b"second",
                QosPid::AtLeastOnce(pid(1)),
                true,
            ))
            .await;
        publisher.recv().await;
        let mut sub = Raw::connect(broker.addr, version, "ret-sub").await;
        subscribe(&mut sub, "ret/+", QoS::AtLeastOnce).await;
        let p = recv_publish(&mut sub).await;
        assert!(p.retain);
        assert_eq!(&p.payload[..], b"second");
        sub.send(Packet::PubAck(PubAck::new(p.qos.packet_id().unwrap())))
            .await;
        // Clearing with an empty payload; live subscribers still get the message.
        publisher
            .send(publish(&topic, b"", QosPid::AtLeastOnce(pid(2)), true))
            .await;
        publisher.recv().await;
        let live = recv_publish(&mut sub).await;
        assert!(!live.retain);
        sub.send(Packet::PubAck(PubAck::new(live.qos.packet_id().unwrap())))
            .await;
        let mut late = Raw::connect(broker.addr, version, "ret-late").await;
        subscribe(&mut late, "ret/+", QoS::AtLeastOnce).await;
        late.expect_silence(Duration::from_millis(200)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn retain_handling_and_retain_as_published() {
    let broker = TestBroker::start().await;
    let mut publisher = Raw::connect(broker.addr, V5, "rh-pub").await;
    publisher
        .send(publish("rh/t", b"kept", QosPid::AtMostOnce, true))
        .await;
    publisher.send(Packet::PingReq).await;
    publisher.recv().await;

    let mut sub = Raw::connect(broker.addr, V5, "rh-sub").await;
    let never = SubscriptionOptions {
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    sub.send(subscribe_opts(1, &[("rh/t", never)], None)).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    sub.expect_silence(Duration::from_millis(200)).await;

    let if_new = SubscriptionOptions {
        retain_handling: RetainHandling::SendIfNew,
        ..Default::default()
    };
    sub.send(subscribe_opts(2, &[("rh/+", if_new)], None)).await;
    sub.recv().await;
    assert!(recv_publish(&mut sub).await.retain);
    sub.send(subscribe_opts(3, &[("rh/+", if_new)], None)).await;
    sub.recv().await;
    sub.expect_silence(Duration::from_millis(200)).await;

    // Retain As Published keeps RETAIN on live messages; without it RETAIN is cleared.
    let mut rap = Raw::connect(broker.addr, V5, "rh-rap").await;
    let opts = SubscriptionOptions {
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    rap.send(subscribe_opts(1, &[("rh/live", opts)], None))
        .await;
    rap.recv().await;
    let mut plain = Raw::connect(broker.addr, V5, "rh-plain").await;
    let opts = SubscriptionOptions {
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    plain
        .send(subscribe_opts(1, &[("rh/live", opts)], None))
        .await;
    plain.recv().await;
    publisher
        .send(publish("rh/live", b"now", QosPid::AtMostOnce, true))
        .await;
    assert!(recv_publish(&mut rap).await.retain);
    assert!(!recv_publish(&mut plain).await.retain);
    broker.stop().await;
}

#[tokio::test]
async fn retained_message_expires() {
    let broker = TestBroker::start().await;
    let mut publisher = Raw::connect(broker.addr, V5, "exp-pub").await;
    let Packet::Publish(mut p) = publish("exp/t", b"short", QosPid::AtMostOnce, true) else {
        unreachable!()
    };
    p.properties.message_expiry_interval = Some(1);
    publisher.send(Packet::Publish(p)).await;
    publisher.send(Packet::PingReq).await;
    publisher.recv().await;
    let mut early = Raw::connect(broker.addr, V5, "exp-early").await;
    subscribe(&mut early, "exp/t", QoS::AtMostOnce).await;
    let got = recv_publish(&mut early).await;
    assert_eq!(got.properties.message_expiry_interval, Some(1));
    tokio::time::sleep(Duration::from_millis(1100)).await; // let the message's lifetime pass
    let mut late = Raw::connect(broker.addr, V5, "exp-late").await;
    subscribe(&mut late, "exp/t", QoS::AtMostOnce).await;
    late.expect_silence(Duration::from_millis(200)).await;
    broker.stop().await;
}

// ---- wildcards, shared subscriptions, no local ----

#[tokio::test]
async fn wildcards_do_not_match_dollar_topics() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut all = Raw::connect(broker.addr, version, "all").await;
        subscribe(&mut all, "#", QoS::AtMostOnce).await;
        let mut sys = Raw::connect(broker.addr, version, "sys").await;
        subscribe(&mut sys, "$internal/+", QoS::AtMostOnce).await;
        let mut publisher = Raw::connect(broker.addr, version, "dollar-pub").await;
        publisher
            .send(publish("$internal/x", b"d", QosPid::AtMostOnce, false))
            .await;
        publisher
            .send(publish("a/b", b"n", QosPid::AtMostOnce, false))
            .await;
        assert_eq!(&recv_publish(&mut sys).await.payload[..], b"d");
        assert_eq!(&recv_publish(&mut all).await.payload[..], b"n");
        all.expect_silence(Duration::from_millis(200)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn shared_subscription_gives_each_message_to_one_member() {
    let broker = TestBroker::start().await;
    // Shared subscriptions are an MQTT 5 feature that the broker also offers MQTT 3.1.1 clients.
    for version in [V3, V5] {
        let mut a = Raw::connect(broker.addr, version, "share-a").await;
        let mut b = Raw::connect(broker.addr, version, "share-b").await;
        subscribe(&mut a, "$share/g/jobs/+", QoS::AtMostOnce).await;
        subscribe(&mut b, "$share/g/jobs/+", QoS::AtMostOnce).await;
        let mut publisher = Raw::connect(broker.addr, V5, "share-pub").await;
        for _ in 0..10 {
            publisher
                .send(publish("jobs/1", b"j", QosPid::AtMostOnce, false))
                .await;
        }
        let mut count_a = 0;
        let mut count_b = 0;
        for _ in 0..10 {
            tokio::select! {
                Some(Packet::Publish(_)) = a.recv() => count_a += 1,
                Some(Packet::Publish(_)) = b.recv() => count_b += 1,
            }
        }
        assert_eq!(count_a + count_b, 10);
        assert_eq!(count_a, 5, "round-robin between two members");
        a.expect_silence(Duration::from_millis(200)).await;
        b.expect_silence(Duration::from_millis(10)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn no_local_skips_own_messages() {
    let broker = TestBroker::start().await;
    let mut c = Raw::connect(broker.addr, V5, "nl").await;
    let opts = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    c.send(subscribe_opts(1, &[("nl/t", opts)], None)).await;
    c.recv().await;
    c.send(publish("nl/t", b"mine", QosPid::AtMostOnce, false))
        .await;
    c.expect_silence(Duration::from_millis(200)).await;
    let mut other = Raw::connect(broker.addr, V5, "nl-other").await;
    other
        .send(publish("nl/t", b"theirs", QosPid::AtMostOnce, false))
        .await;
    assert_eq!(&recv_publish(&mut c).await.payload[..], b"theirs");
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_reports_each_filter() {
    let broker = TestBroker::start().await;
    for version in [V3, V5] {
        let mut c = Raw::connect(broker.addr, version, "unsub").await;
        subscribe(&mut c, "u/a", QoS::AtMostOnce).await;
        c.send(Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(7),
            properties: Default::default(),
            filters: vec![
                TopicFilter::try_from("u/a").unwrap(),
                TopicFilter::try_from("u/b").unwrap(),
            ],
        }))
        .await;
        match c.recv().await {
            Some(Packet::UnsubAck(ack)) => {
                assert_eq!(ack.packet_id, pid(7));
                // MQTT 3.1.1's UNSUBACK carries no reason codes.
                let expected = if version == V5 {
                    vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
                } else {
                    Vec::new()
                };
                assert_eq!(ack.reason_codes, expected);
            }
            other => panic!("{other:?}"),
        }
        let mut publisher = Raw::connect(broker.addr, V5, "unsub-pub").await;
        publisher
            .send(publish("u/a", b"x", QosPid::AtMostOnce, false))
            .await;
        c.expect_silence(Duration::from_millis(200)).await;
    }
    broker.stop().await;
}

// ---- v5 limits and aliases ----

#[tokio::test]
async fn connack_announces_limits() {
    let broker = TestBroker::start().await;
    let (_c, ack) = Raw::connect_with(broker.addr, V5, "limits", |_| {}).await;
    let defaults = BrokerOptions::default();
    assert_eq!(
        ack.properties.receive_maximum,
        Some(defaults.receive_maximum)
    );
    assert_eq!(
        ack.properties.maximum_packet_size,
        Some(defaults.max_packet_size)
    );
    assert_eq!(
        ack.properties.topic_alias_maximum,
        Some(defaults.max_topic_alias)
    );
    broker.stop().await;
}

#[tokio::test]
async fn inbound_topic_alias_is_honoured_and_bounded() {
    let broker = TestBroker::start().await;
    let mut sub = Raw::connect(broker.addr, V5, "alias-sub").await;
    subscribe(&mut sub, "alias/t", QoS::AtMostOnce).await;
    let mut c = Raw::connect(broker.addr, V5, "alias").await;
    let Packet::Publish(mut first) = publish("alias/t", b"1", QosPid::AtMostOnce, false) else {
        unreachable!()
    };
    first.properties.topic_alias = NonZeroU16::new(3);
    c.send(Packet::Publish(first.clone())).await;
    let mut second = first.clone();
    second.topic = TopicName::empty();
    second.payload = Bytes::from_static(b"2");
    c.send(Packet::Publish(second)).await;
    assert_eq!(recv_publish(&mut sub).await.topic.as_str(), "alias/t");
    let p = recv_publish(&mut sub).await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("alias/t", &b"2"[..]));

    let mut too_high = first;
    too_high.properties.topic_alias = NonZeroU16::new(BrokerOptions::default().max_topic_alias + 1);
    c.send(Packet::Publish(too_high)).await;
    assert_eq!(
        c.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::TopicAliasInvalid
        ))]
    );
    broker.stop().await;
}

#[tokio::test]
async fn outbound_topic_aliases_are_assigned_when_allowed() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = Raw::connect_with(broker.addr, V5, "oalias", |c| {
        c.properties.topic_alias_maximum = Some(4);
    })
    .await;
    subscribe(&mut sub, "oa/#", QoS::AtMostOnce).await;
    let mut publisher = Raw::connect(broker.addr, V5, "oalias-pub").await;
    publisher
        .send(publish(
            "oa/long/topic/name",
            b"1",
            QosPid::AtMostOnce,
            false,
        ))
        .await;
    publisher
        .send(publish(
            "oa/long/topic/name",
            b"2",
            QosPid::AtMostOnce,
            false,
        ))
        .await;
    let first = recv_publish(&mut sub).await;
    assert_eq!(first.topic.as_str(), "oa/long/topic/name");
    let alias = first.properties.topic_alias.expect("alias assigned");
    let second = recv_publish(&mut sub).await;
    assert!(second.topic.is_empty());
    assert_eq!(second.properties.topic_alias, Some(alias));
    broker.stop().await;
}

/// A broker with Receive Maximum 2, and a client `id` that has just sent it a third QoS 2
/// PUBLISH awaiting PUBREL.
async fn past_receive_maximum(id: &str) -> (TestBroker, Raw) {
    let options = BrokerOptions {
        receive_maximum: NonZeroU16::new(2).unwrap(),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    let mut c = Raw::connect(broker.addr, V5, id).await;
    for i in 1..=3 {
        c.send(publish("rm", b"x", QosPid::ExactlyOnce(pid(i)), false))
            .await;
    }
    (broker, c)
}

#[tokio::test]
async fn exceeding_receive_maximum_disconnects_with_0x93() {
    let (broker, mut c) = past_receive_maximum("rmax").await;
    let seen = c.expect_close().await;
    assert_eq!(
        seen.last(),
        Some(&Packet::Disconnect(Disconnect::new(
            ReasonCode::ReceiveMaximumExceeded
        )))
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_client_still_writing_after_its_violation_reads_why_instead_of_a_reset() {
    let (broker, mut c) = past_receive_maximum("keeps-writing").await;
    // The client has not read yet and goes on writing, as a client with its own pace would:
    // the broker reads and discards it while it closes, so no write meets a reset.
    for i in 4..=20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            c.try_send(publish("rm", b"x", QosPid::ExactlyOnce(pid(i)), false))
                .await,
            "write {i} failed"
        );
    }
    let seen = c.expect_close().await;
    assert_eq!(
        seen.last(),
        Some(&Packet::Disconnect(Disconnect::new(
            ReasonCode::ReceiveMaximumExceeded
        ))),
        "{seen:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn oversized_packet_disconnects_with_0x95() {
    let options = BrokerOptions {
        max_packet_size: NonZeroU32::new(128).unwrap(),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    let mut c = Raw::connect(broker.addr, V5, "big").await;
    // Only the fixed header of a 1 MB PUBLISH: refused before the body arrives.
    c.send_bytes(&[0x30, 0x80, 0x80, 0x40]).await;
    assert_eq!(
        c.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::PacketTooLarge
        ))]
    );
    broker.stop().await;
}

#[tokio::test]
async fn messages_above_client_maximum_packet_size_are_dropped() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = Raw::connect_with(broker.addr, V5, "small", |c| {
        c.properties.maximum_packet_size = NonZeroU32::new(64);
    })
    .await;
    subscribe(&mut sub, "sz", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(broker.addr, V5, "small-pub").await;
    publisher
        .send(publish("sz", &[b'x'; 200], QosPid::AtMostOnce, false))
        .await;
    publisher
        .send(publish("sz", b"fits", QosPid::AtMostOnce, false))
        .await;
    assert_eq!(&recv_publish(&mut sub).await.payload[..], b"fits");
    broker.stop().await;
}

#[tokio::test]
async fn malformed_packet_disconnects_with_0x81() {
    let broker = TestBroker::start().await;
    let mut c = Raw::connect(broker.addr, V5, "malformed").await;
    // PUBLISH with a wildcard topic.
    c.send_bytes(&[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#'])
        .await;
    assert_eq!(
        c.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::MalformedPacket
        ))]
    );
    let mut v3 = Raw::connect(broker.addr, V3, "malformed3").await;
    v3.send_bytes(&[0x82, 0x02, 0x00, 0x01]).await; // SUBSCRIBE without filters
    assert!(v3.expect_close().await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn message_properties_are_forwarded_unchanged() {
    let broker = TestBroker::start().await;
    let mut sub = Raw::connect(broker.addr, V5, "props").await;
    subscribe(&mut sub, "req", QoS::AtMostOnce).await;
    let mut c = Raw::connect(broker.addr, V5, "props-pub").await;
    let Packet::Publish(mut p) = publish("req", b"{}", QosPid::AtMostOnce, false) else {
        unreachable!()
    };
    p.properties.payload_format_indicator = Some(codec::PayloadFormat::Utf8);
    p.properties.content_type = Some("application/json".try_into().unwrap());
    p.properties.response_topic = Some(TopicName::try_from("resp/1").unwrap());
    p.properties.correlation_data = Some(Bytes::from_static(b"corr"));
    p.properties.user_properties = vec![("k".try_into().unwrap(), "v".try_into().unwrap())];
    c.send(Packet::Publish(p.clone())).await;
    let got = recv_publish(&mut sub).await;
    assert_eq!(got.properties, p.properties);
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_tells_v5_clients_and_closes() {
    let broker = TestBroker::start().await;
    let mut c5 = Raw::connect(broker.addr, V5, "bye5").await;
    let mut c3 = Raw::connect(broker.addr, V3, "bye3").await;
    let stopping = tokio::spawn(broker.stop());
    assert_eq!(
        c5.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::ServerShuttingDown
        ))]
    );
    assert!(c3.expect_close().await.is_empty());
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn sys_topics_are_published() {
    let options = BrokerOptions {
        sys_interval: Some(Duration::from_millis(100)),
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    let mut c = Raw::connect(broker.addr, V3, "sys-reader").await;
    subscribe(&mut c, "$SYS/broker/clients/connected", QoS::AtMostOnce).await;
    // The retained value may predate this client (the first round runs at start-up); a later
    // round counts it.
    loop {
        let p = recv_publish(&mut c).await;
        let n: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        if n >= 1 {
            break;
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn slow_subscriber_does_not_stall_others() {
    let options = BrokerOptions {
        max_queued_messages: 100,
        shutdown_grace: Duration::from_millis(500),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    // Subscribes, then never reads again: its socket buffers fill and its queue hits the limit.
    let mut slow = Raw::connect(broker.addr, V5, "slow").await;
    subscribe(&mut slow, "bp/#", QoS::AtLeastOnce).await;
    let mut fast = Raw::connect(broker.addr, V5, "fast").await;
    subscribe(&mut fast, "bp/#", QoS::AtMostOnce).await;
    let mut publisher = Raw::connect(broker.addr, V5, "bp-pub").await;
    static PAYLOAD: [u8; 16 * 1024] = [b'p'; 16 * 1024];
    const COUNT: u16 = 1000; // 16 MB, far beyond the slow client's socket buffers
    let sender = tokio::spawn(async move {
        for i in 1..=COUNT {
            publisher
                .send(publish(
                    "bp/t",
                    &PAYLOAD,
                    QosPid::AtLeastOnce(pid(i)),
                    false,
                ))
                .await;
            match publisher.recv().await {
                Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(i)),
                other => panic!("publisher got {other:?} for message {i}"),
            }
        }
    });
    for _ in 0..COUNT {
        let p = recv_publish(&mut fast).await;
        assert_eq!(p.payload.len(), PAYLOAD.len());
    }
    tokio::time::timeout(WAIT, sender).await.unwrap().unwrap();
    drop(slow);
    broker.stop().await;
}

#[tokio::test]
async fn connections_above_the_per_address_rate_are_closed_at_once() {
    let options = BrokerOptions {
        connection_rate_per_ip: std::num::NonZeroU32::new(2),
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_options(options).await;
    // A burst of two is allowed; the third, right after, is closed before it can CONNECT.
    let mut first = Raw::connect(broker.addr, V5, "rate-1").await;
    let _second = Raw::connect(broker.addr, V5, "rate-2").await;
    let mut third = Raw::open(broker.addr, V5).await;
    assert!(third.expect_close().await.is_empty());
    first.send(Packet::PingReq).await;
    assert_eq!(first.recv().await, Some(Packet::PingResp));
    broker.stop().await;
}

#[tokio::test]
async fn topics_and_filters_beyond_128_levels_are_refused() {
    let broker = TestBroker::start().await;
    let deep_filter = vec!["+"; 200].join("/");
    let ok_filter = vec!["+"; 128].join("/");
    for version in [V3, V5] {
        let mut c = Raw::connect(broker.addr, version, "levels").await;
        c.send(subscribe_opts(
            1,
            &[
                (&deep_filter, SubscriptionOptions::with_qos(QoS::AtMostOnce)),
                (&ok_filter, SubscriptionOptions::with_qos(QoS::AtMostOnce)),
            ],
            None,
        ))
        .await;
        match c.recv().await {
            Some(Packet::SubAck(ack)) => {
                assert!(!ack.reason_codes[0].is_success(), "{version:?}: {ack:?}");
                assert!(ack.reason_codes[1].is_success(), "{version:?}: {ack:?}");
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
        // A PUBLISH to a topic that deep closes the connection (v5: DISCONNECT 0x90 first).
        let deep_topic = vec!["l"; 200].join("/");
        c.send(publish(&deep_topic, b"x", QosPid::AtMostOnce, true))
            .await;
        let seen = c.expect_close().await;
        if version == V5 {
            assert!(
                matches!(seen.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::TopicNameInvalid),
                "{seen:?}"
            );
        }
    }
    broker.stop().await;
}

/// A connection served after the broker shut down is told so (DISCONNECT 0x8B) right after its
/// CONNACK, although no other connection is left to hold the shutdown signal.
#[tokio::test]
async fn a_connection_served_after_shutdown_is_told_the_server_is_going_away() {
    let broker = TestBroker::start().await;
    let handle = broker.broker.clone();
    broker.stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        handle.serve_connection(stream, peer).await;
    });
    let (mut late, ack) = Raw::connect_with(addr, V5, "late", |_| {}).await;
    assert!(ack.reason_code.is_success(), "{ack:?}");
    assert_eq!(
        late.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::ServerShuttingDown
        ))]
    );
    tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
}
