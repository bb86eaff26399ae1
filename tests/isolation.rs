//! Isolation between users (issue #16): a session belongs to the user who made it, every
//! delivery is checked against the rules in force when it is sent, shared subscriptions only
//! hand a message to a member that may read it, and `%c`/`%u` never reach `$` topics.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth::{UsersAccess, hash_password};
use bytes::Bytes;
use codec::{
    Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, QosPid, ReasonCode, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName,
};
use common::{Raw, TestBroker, metric};
use server::{Broker, BrokerOptions};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// alice and bob (role `sensors`), carol (role `outsider`); `alerts_read` decides whether
/// `sensors` may read `alerts/#`. Everyone with a role may publish to `alerts/#`.
fn users_yaml(alerts_read: bool) -> String {
    let hash = hash_password("pw").unwrap();
    format!(
        "
users:
  alice: {{ password: '{hash}', roles: [sensors] }}
  bob: {{ password: '{hash}', roles: [sensors] }}
  carol: {{ password: '{hash}', roles: [outsider] }}
roles:
  sensors:
    permissions:
      - {{ topic: 'devices/%u/#', read: true, insert: true }}
      - {{ topic: 'alerts/#', read: {alerts_read}, insert: true }}
      - {{ topic: '%c/#', read: true, insert: true }}
  outsider:
    permissions:
      - {{ topic: 'alerts/public', read: true }}
      - {{ topic: 'alerts/#', insert: true }}
"
    )
}

struct Setup {
    broker: TestBroker,
    access: Arc<UsersAccess>,
    dir: tempfile::TempDir,
}

async fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, users_yaml(true)).unwrap();
    let access = Arc::new(UsersAccess::load(&path, true).unwrap());
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

impl Setup {
    fn set_alerts_read(&self, read: bool) {
        std::fs::write(self.dir.path().join("users.yaml"), users_yaml(read)).unwrap();
        self.access.reload().unwrap();
    }
}

/// Logs in as `user` with a persistent session (v5: expiry one hour; v3: clean session off).
async fn login(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    id: &str,
    user: &str,
) -> (Raw, codec::ConnAck) {
    let user = user.to_owned();
    Raw::connect_with(addr, version, id, move |c| {
        c.username = Some(user.as_str().try_into().unwrap());
        c.password = Some(Bytes::from_static(b"pw"));
        c.clean_start = false;
        if version.is_v5() {
            c.properties.session_expiry_interval = Some(3600);
        }
    })
    .await
}

fn publish(topic: &str, payload: &'static [u8], id: u16) -> Packet {
    let mut p = Publish::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::from_static(payload),
    );
    p.qos = QosPid::AtLeastOnce(PacketId::new(id).unwrap());
    Packet::Publish(p)
}

async fn subscribe(raw: &mut Raw, filter: &str) -> ReasonCode {
    raw.send(Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from(filter).unwrap(),
            SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        )],
    }))
    .await;
    match raw.recv().await {
        Some(Packet::SubAck(ack)) => ack.reason_codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Publishes QoS 1 messages as `bob` and waits for each PUBACK.
async fn bob_publishes(addr: std::net::SocketAddr, topic: &str, payloads: &[&'static [u8]]) {
    let (mut bob, _) = login(addr, V5, "bob-pub", "bob").await;
    for (i, payload) in payloads.iter().enumerate() {
        bob.send(publish(topic, payload, i as u16 + 1)).await;
        assert!(matches!(bob.recv().await, Some(Packet::PubAck(_))));
    }
}

/// The payloads of the next `n` PUBLISH packets, acknowledging each.
async fn receive(raw: &mut Raw, n: usize) -> Vec<Bytes> {
    let mut got = Vec::new();
    while got.len() < n {
        match raw.recv().await {
            Some(Packet::Publish(p)) => {
                if let QosPid::AtLeastOnce(id) = p.qos {
                    raw.send(Packet::PubAck(PubAck::new(id))).await;
                }
                got.push(p.payload);
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    got
}

/// A broker asking `access`, keeping its state in a store in `data`.
fn broker_with_store(data: &std::path::Path, access: Arc<UsersAccess>) -> Broker {
    let (store, recovered) = store::Store::open(data, store::Policy::default()).unwrap();
    Broker::builder(BrokerOptions {
        sys_interval: None,
        ..BrokerOptions::default()
    })
    .access(access)
    .store(store, recovered)
    .build()
}

#[tokio::test]
async fn another_user_cannot_resume_take_over_or_discard_a_session() {
    let setup = start().await;
    let addr = setup.broker.addr;
    let (mut alice, _) = login(addr, V5, "alice-phone", "alice").await;
    assert!(subscribe(&mut alice, "devices/alice/#").await.is_success());
    alice
        .send(Packet::Disconnect(codec::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    drop(alice);
    // Messages queued for alice's offline session.
    let (mut alice_pub, _) = login(addr, V5, "alice-pub", "alice").await;
    for i in 1..=3 {
        alice_pub
            .send(publish("devices/alice/t", b"secret", i))
            .await;
        assert!(matches!(alice_pub.recv().await, Some(Packet::PubAck(_))));
    }
    // bob, with his own valid password, names alice's client id: refused, both versions, and
    // with Clean Start too (which would discard her session).
    for (version, clean) in [(V5, false), (V3, false), (V5, true)] {
        let (mut bob, ack) = Raw::connect_with(addr, version, "alice-phone", |c| {
            c.username = Some("bob".try_into().unwrap());
            c.password = Some(Bytes::from_static(b"pw"));
            c.clean_start = clean;
        })
        .await;
        // v3 return code 5 and v5 0x87 both decode to NotAuthorized.
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{version:?}");
        assert!(!ack.session_present);
        assert!(bob.expect_close().await.is_empty());
    }
    // alice still finds her session with everything queued for it.
    let (mut alice, ack) = login(addr, V5, "alice-phone", "alice").await;
    assert!(ack.session_present);
    assert_eq!(receive(&mut alice, 3).await.len(), 3);
    // While she is connected, bob's attempt does not disturb her.
    let (_bob, ack) = login(addr, V5, "alice-phone", "bob").await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    alice.send(Packet::PingReq).await;
    assert_eq!(alice.recv().await, Some(Packet::PingResp), "not taken over");
    setup.broker.stop().await;
}

#[tokio::test]
async fn a_removed_users_sessions_end() {
    let setup = start().await;
    let addr = setup.broker.addr;
    let (mut carol, _) = login(addr, V5, "carol-1", "carol").await;
    assert!(subscribe(&mut carol, "alerts/public").await.is_success());
    carol
        .send(Packet::Disconnect(codec::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    assert!(carol.expect_close().await.is_empty());
    let yaml = users_yaml(true).replace("  carol: ", "  carl: ");
    std::fs::write(setup.dir.path().join("users.yaml"), yaml).unwrap();
    setup.access.reload().unwrap();
    setup.broker.broker.enforce_access();
    // Gone: a message for it is queued nowhere, and a new carol gets a fresh session.
    std::fs::write(setup.dir.path().join("users.yaml"), users_yaml(true)).unwrap();
    setup.access.reload().unwrap();
    let (_carol, ack) = login(addr, V5, "carol-1", "carol").await;
    assert!(ack.reason_code.is_success());
    assert!(!ack.session_present, "the removed owner's session ended");
    setup.broker.stop().await;
}

#[tokio::test]
async fn messages_queued_or_in_flight_before_read_was_revoked_are_not_sent() {
    let setup = start().await;
    let addr = setup.broker.addr;
    let (mut alice, _) = login(addr, V5, "alice-q", "alice").await;
    assert!(subscribe(&mut alice, "alerts/#").await.is_success());
    // One message in flight (received, never acknowledged), then offline with two queued.
    bob_publishes(addr, "alerts/fire", &[b"1"]).await;
    match alice.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"1"),
        other => panic!("{other:?}"),
    }
    drop(alice);
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob_publishes(addr, "alerts/fire", &[b"2", b"3"]).await;
    setup.set_alerts_read(false);
    let (mut alice, ack) = login(addr, V5, "alice-q", "alice").await;
    assert!(ack.session_present);
    alice.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&setup.broker.broker, "mqtt_messages_unauthorized_total"),
        3
    );
    // Allowed again: what was dropped stays dropped, new messages flow.
    setup.set_alerts_read(true);
    bob_publishes(addr, "alerts/fire", &[b"4"]).await;
    assert_eq!(receive(&mut alice, 1).await, [Bytes::from_static(b"4")]);
    setup.broker.stop().await;
}

#[tokio::test]
async fn a_recovered_queue_is_checked_against_the_rules_of_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let setup = start().await;
    let users = setup.dir.path().join("users.yaml");
    let with_store = |access: Arc<UsersAccess>| broker_with_store(data.path(), access);
    let first = TestBroker::with_broker(with_store(setup.access.clone())).await;
    let (mut alice, _) = login(first.addr, V5, "alice-s", "alice").await;
    assert!(subscribe(&mut alice, "alerts/#").await.is_success());
    drop(alice);
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob_publishes(first.addr, "alerts/fire", &[b"1", b"2"]).await;
    first.stop().await;
    // Restarted with alerts no longer readable by alice's role.
    std::fs::write(&users, users_yaml(false)).unwrap();
    let access = Arc::new(UsersAccess::load(&users, true).unwrap());
    let second = TestBroker::with_broker(with_store(access)).await;
    let (mut alice, ack) = login(second.addr, V5, "alice-s", "alice").await;
    assert!(ack.session_present, "recovered");
    alice.expect_silence(Duration::from_millis(500)).await;
    // And bob still cannot take the recovered session.
    let (_bob, ack) = login(second.addr, V5, "alice-s", "bob").await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    second.stop().await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn a_stored_session_whose_owner_left_the_users_file_is_dropped_at_start_up() {
    let data = tempfile::tempdir().unwrap();
    let setup = start().await;
    let users = setup.dir.path().join("users.yaml");
    let with_store = |access: Arc<UsersAccess>| broker_with_store(data.path(), access);
    let first = TestBroker::with_broker(with_store(setup.access.clone())).await;
    let (mut carol, _) = login(first.addr, V5, "carol-s", "carol").await;
    assert!(subscribe(&mut carol, "alerts/public").await.is_success());
    drop(carol);
    first.stop().await;
    // Restarted while carol is not in the users file: her session is dropped (store included).
    std::fs::write(&users, users_yaml(true).replace("  carol: ", "  carl: ")).unwrap();
    let second = TestBroker::with_broker(with_store(Arc::new(
        UsersAccess::load(&users, true).unwrap(),
    )))
    .await;
    second.stop().await;
    // Back in the file, carol starts afresh.
    std::fs::write(&users, users_yaml(true)).unwrap();
    let third = TestBroker::with_broker(with_store(Arc::new(
        UsersAccess::load(&users, true).unwrap(),
    )))
    .await;
    let (_carol, ack) = login(third.addr, V5, "carol-s", "carol").await;
    assert!(ack.reason_code.is_success());
    assert!(!ack.session_present, "dropped at the restart without her");
    third.stop().await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn a_shared_group_hands_each_message_to_a_member_that_may_read_it() {
    let setup = start().await;
    let addr = setup.broker.addr;
    let (mut alice, _) = login(addr, V5, "alice-g", "alice").await;
    let (mut carol, _) = login(addr, V5, "carol-g", "carol").await;
    // carol may read alerts/public only, so her subscription to the group's filter is granted.
    assert!(
        subscribe(&mut alice, "$share/g/alerts/#")
            .await
            .is_success()
    );
    assert!(
        subscribe(&mut carol, "$share/g/alerts/#")
            .await
            .is_success()
    );
    bob_publishes(addr, "alerts/secret", &[b"1", b"2", b"3", b"4"]).await;
    assert_eq!(
        receive(&mut alice, 4).await.len(),
        4,
        "none lost to carol's turns"
    );
    carol.expect_silence(Duration::from_millis(300)).await;
    setup.broker.stop().await;
}

#[tokio::test]
async fn a_client_id_starting_with_a_dollar_does_not_open_sys_topics() {
    let setup = start().await;
    // The sensors role has `%c/#`: with client id `$SYS` that must not be `$SYS/#`.
    let (mut alice, ack) = login(setup.broker.addr, V5, "$SYS", "alice").await;
    assert!(ack.reason_code.is_success());
    assert_eq!(
        subscribe(&mut alice, "$SYS/#").await,
        ReasonCode::NotAuthorized
    );
    alice
        .send(publish("$SYS/broker/uptime", b"forged", 9))
        .await;
    match alice.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    setup.broker.stop().await;
}
