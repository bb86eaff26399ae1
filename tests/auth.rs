//! Authentication and authorization with a real users file: CONNACK codes for both versions,
//! per-filter SUBACK results, denied publishes, `%u` rules, and changes taking effect live.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth::{UsersAccess, hash_password};
use bytes::Bytes;
use codec::{
    Disconnect, LastWill, Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid, ReasonCode,
    Subscribe, SubscriptionOptions, TopicFilter, TopicName,
};
use common::{Raw, TestBroker};
use server::{Broker, BrokerOptions};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn users_yaml(alice_read_alerts: bool, alice_active: bool) -> String {
    let hash = hash_password("wonderland").unwrap();
    format!(
        "
users:
  alice: {{ password: '{hash}', roles: [sensors], active: {alice_active} }}
  bob: {{ password: '{hash}', roles: [sensors] }}
  nopass: {{ roles: [sensors] }}
roles:
  sensors:
    permissions:
      - {{ topic: 'devices/%u/#', read: true, insert: true, update: true, delete: true }}
      - {{ topic: 'alerts/#', read: {alice_read_alerts} }}
  anonymous:
    permissions:
      - {{ topic: 'public/#', read: true, insert: true }}
"
    )
}

struct Setup {
    broker: TestBroker,
    access: Arc<UsersAccess>,
    dir: tempfile::TempDir,
}

async fn start(require_authentication: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, users_yaml(true, true)).unwrap();
    let access = Arc::new(UsersAccess::load(&path, require_authentication).unwrap());
    let options = BrokerOptions {
        sys_interval: None,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_broker(Broker::with_access(options, access.clone())).await;
    Setup {
        broker,
        access,
        dir,
    }
}

async fn login(
    setup: &Setup,
    version: ProtocolVersion,
    id: &str,
    user: &str,
    pass: &str,
) -> (Raw, codec::ConnAck) {
    let (user, pass) = (user.to_owned(), pass.to_owned());
    Raw::connect_with(setup.broker.addr, version, id, move |c| {
        c.username = Some(user.as_str().try_into().unwrap());
        c.password = Some(Bytes::from(pass.into_bytes()));
    })
    .await
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

fn subscribe(filters: &[&str]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: filters
            .iter()
            .map(|f| {
                (
                    TopicFilter::try_from(*f).unwrap(),
                    SubscriptionOptions::with_qos(QoS::AtLeastOnce),
                )
            })
            .collect(),
    })
}

async fn suback(raw: &mut Raw, filters: &[&str]) -> Vec<ReasonCode> {
    raw.send(subscribe(filters)).await;
    match raw.recv().await {
        Some(Packet::SubAck(ack)) => ack.reason_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn passwords_are_checked_with_exact_connack_codes_and_the_socket_closes() {
    let setup = start(true).await;
    for version in [V3, V5] {
        let (_ok, ack) = login(&setup, version, "a1", "alice", "wonderland").await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        for (user, pass) in [
            ("alice", "wrong"),
            ("nobody", "wonderland"),
            ("nopass", "x"),
        ] {
            let (mut raw, ack) = login(&setup, version, "a2", user, pass).await;
            // v3 return code 4 / v5 0x86 both decode to BadUserNameOrPassword.
            assert_eq!(
                ack.reason_code,
                ReasonCode::BadUserNameOrPassword,
                "{user} {version:?}"
            );
            assert!(
                raw.expect_close().await.is_empty(),
                "socket closed after refusal"
            );
        }
        // No credentials while authentication is required: not authorized (v3 5, v5 0x87).
        let (mut raw, ack) = Raw::connect_with(setup.broker.addr, version, "anon", |_| {}).await;
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
        assert!(raw.expect_close().await.is_empty());
    }
    setup.broker.stop().await;
}

#[tokio::test]
async fn inactive_user_is_refused() {
    let setup = start(true).await;
    std::fs::write(setup.dir.path().join("users.yaml"), users_yaml(true, false)).unwrap();
    setup.access.reload().unwrap();
    let (mut raw, ack) = login(&setup, V5, "idle", "alice", "wonderland").await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    assert!(raw.expect_close().await.is_empty());
    setup.broker.stop().await;
}

#[tokio::test]
async fn anonymous_clients_get_the_anonymous_role() {
    let setup = start(false).await;
    for version in [V3, V5] {
        let mut anon = Raw::connect(setup.broker.addr, version, "anon").await;
        let codes = suback(&mut anon, &["public/#", "devices/#"]).await;
        assert!(codes[0].is_success());
        assert!(!codes[1].is_success(), "{codes:?}");
        anon.send(publish("public/x", b"hi", QosPid::AtMostOnce, false))
            .await;
        match anon.recv().await {
            Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"hi"),
            other => panic!("{other:?}"),
        }
    }
    setup.broker.stop().await;
}

#[tokio::test]
async fn subscribe_results_are_per_filter_and_user_patterns_apply() {
    let setup = start(true).await;
    let (mut alice, _) = login(&setup, V5, "alice-1", "alice", "wonderland").await;
    let codes = suback(
        &mut alice,
        &["devices/alice/#", "devices/bob/#", "$SYS/#", "alerts/+"],
    )
    .await;
    assert_eq!(
        codes,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized,
            ReasonCode::GrantedQoS1
        ]
    );
    let (mut v3, _) = login(&setup, V3, "alice-3", "alice", "wonderland").await;
    let codes = suback(&mut v3, &["devices/bob/#", "devices/alice/x"]).await;
    // MQTT 3.1.1 failure is 0x80.
    assert_eq!(
        codes,
        [ReasonCode::UnspecifiedError, ReasonCode::GrantedQoS1]
    );
    setup.broker.stop().await;
}

#[tokio::test]
async fn denied_publishes_are_neither_delivered_nor_retained() {
    let setup = start(true).await;
    let (mut bob, _) = login(&setup, V5, "bob", "bob", "wonderland").await;
    suback(&mut bob, &["devices/bob/#"]).await;
    for version in [V3, V5] {
        let (mut alice, _) = login(&setup, version, "alice-pub", "alice", "wonderland").await;
        alice
            .send(publish(
                "devices/bob/cmd",
                b"evil",
                QosPid::AtLeastOnce(PacketId::new(3).unwrap()),
                true,
            ))
            .await;
        match alice.recv().await {
            Some(Packet::PubAck(ack)) => {
                // v5 says no; v3 cannot, so it acknowledges and drops.
                let expected = if version == V5 {
                    ReasonCode::NotAuthorized
                } else {
                    ReasonCode::Success
                };
                assert_eq!(ack.reason_code, expected);
            }
            other => panic!("{other:?}"),
        }
        alice
            .send(publish(
                "devices/bob/cmd",
                b"evil0",
                QosPid::AtMostOnce,
                false,
            ))
            .await;
    }
    bob.expect_silence(Duration::from_millis(300)).await;
    // Nothing was retained either.
    let (mut late, _) = login(&setup, V5, "bob-2", "bob", "wonderland").await;
    suback(&mut late, &["devices/bob/#"]).await;
    late.expect_silence(Duration::from_millis(200)).await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn wildcard_delivery_skips_topics_the_subscriber_may_not_read() {
    let setup = start(false).await;
    let (mut alice, _) = login(&setup, V5, "alice-w", "alice", "wonderland").await;
    // Partly allowed: granted, but only alice's own devices arrive.
    assert!(suback(&mut alice, &["devices/+/t"]).await[0].is_success());
    let (mut bob, _) = login(&setup, V5, "bob-w", "bob", "wonderland").await;
    bob.send(publish(
        "devices/bob/t",
        b"bob's",
        QosPid::AtMostOnce,
        false,
    ))
    .await;
    let (mut alice_pub, _) = login(&setup, V5, "alice-p", "alice", "wonderland").await;
    alice_pub
        .send(publish(
            "devices/alice/t",
            b"alice's",
            QosPid::AtMostOnce,
            false,
        ))
        .await;
    match alice.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"alice's"),
        other => panic!("{other:?}"),
    }
    alice.expect_silence(Duration::from_millis(200)).await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn revoking_read_stops_a_live_subscription() {
    let setup = start(true).await;
    let (mut alice, _) = login(&setup, V5, "alice-r", "alice", "wonderland").await;
    assert!(suback(&mut alice, &["alerts/#"]).await[0].is_success());
    let (mut bob, _) = login(&setup, V5, "bob-r", "bob", "wonderland").await;
    // Let the sensors role publish alerts too, so bob can raise one.
    std::fs::write(
        setup.dir.path().join("users.yaml"),
        users_yaml(true, true).replace(
            "topic: 'alerts/#', read: true",
            "topic: 'alerts/#', read: true, insert: true",
        ),
    )
    .unwrap();
    setup.access.reload().unwrap();
    bob.send(publish("alerts/fire", b"1", QosPid::AtMostOnce, false))
        .await;
    match alice.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"1"),
        other => panic!("{other:?}"),
    }
    // Revoke read on alerts/#; the subscription stays but delivers nothing more.
    std::fs::write(
        setup.dir.path().join("users.yaml"),
        users_yaml(false, true).replace(
            "topic: 'alerts/#', read: false",
            "topic: 'alerts/#', read: false, insert: true",
        ),
    )
    .unwrap();
    setup.access.reload().unwrap();
    bob.send(publish("alerts/fire", b"2", QosPid::AtMostOnce, false))
        .await;
    alice.expect_silence(Duration::from_millis(300)).await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn deactivating_a_user_disconnects_it() {
    let setup = start(true).await;
    let (mut alice, _) = login(&setup, V5, "alice-d", "alice", "wonderland").await;
    let (mut bob, _) = login(&setup, V5, "bob-d", "bob", "wonderland").await;
    std::fs::write(setup.dir.path().join("users.yaml"), users_yaml(true, false)).unwrap();
    setup.access.reload().unwrap();
    assert_eq!(setup.broker.broker.enforce_access(), 1);
    assert_eq!(
        alice.expect_close().await,
        vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::NotAuthorized
        ))]
    );
    bob.send(Packet::PingReq).await;
    assert_eq!(bob.recv().await, Some(Packet::PingResp));
    setup.broker.stop().await;
}

#[tokio::test]
async fn will_on_a_forbidden_topic_refuses_the_connection() {
    let setup = start(true).await;
    let (mut raw, ack) = Raw::connect_with(setup.broker.addr, V5, "will", |c| {
        c.username = Some("alice".try_into().unwrap());
        c.password = Some(Bytes::from_static(b"wonderland"));
        c.will = Some(LastWill {
            topic: TopicName::try_from("devices/bob/status").unwrap(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        });
    })
    .await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    assert!(raw.expect_close().await.is_empty());
    setup.broker.stop().await;
}
