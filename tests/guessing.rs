//! Password guessing (issue #16): what a guess costs before it is answered. Guesses from one
//! address take turns and wait out the address's recent attempts before they are hashed, all
//! under the CONNECT deadline: one that cannot be checked in time is answered "server
//! unavailable" (v5 0x88, v3 return code 3).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth::{UsersAccess, hash_password};
use bytes::Bytes;
use codec::{ProtocolVersion, ReasonCode};
use common::{Raw, TestBroker};
use server::{Broker, BrokerOptions};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

async fn start(connect_timeout: Duration) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    let hash = hash_password("right").unwrap();
    std::fs::write(
        &path,
        format!("users:\n  admin: {{ password: '{hash}', roles: [super] }}\n  bob: {{ password: '{hash}', roles: [] }}\nroles:\n  super: {{ superUser: true }}\n"),
    )
    .unwrap();
    let access = Arc::new(UsersAccess::load(&path, true).unwrap());
    let options = BrokerOptions {
        sys_interval: None,
        connect_timeout,
        ..BrokerOptions::default()
    };
    let broker = TestBroker::with_broker(Broker::with_access(options, access)).await;
    (broker, dir)
}

async fn guess(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    user: &str,
    password: &'static str,
) -> ReasonCode {
    let user = user.to_owned();
    let (_raw, ack) = Raw::connect_with(addr, version, "", move |c| {
        c.username = Some(user.as_str().try_into().unwrap());
        c.password = Some(Bytes::from_static(password.as_bytes()));
        c.clean_start = true;
    })
    .await;
    ack.reason_code
}

#[tokio::test]
async fn a_guess_that_cannot_be_checked_before_the_connect_deadline_is_told_so() {
    let (broker, _dir) = start(Duration::from_secs(1)).await;
    // Waits before hashing: 0, 0, 250 ms, 500 ms: all within the 1 s budget.
    for _ in 0..4 {
        assert_eq!(
            guess(broker.addr, V5, "admin", "wrong").await,
            ReasonCode::BadUserNameOrPassword
        );
    }
    // The fifth would wait 1 s, the sixth 2 s: past the deadline, answered at it.
    let started = std::time::Instant::now();
    assert_eq!(
        guess(broker.addr, V5, "admin", "wrong").await,
        ReasonCode::ServerUnavailable
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "at the deadline"
    );
    // v3 return code 3 decodes to the same.
    assert_eq!(
        guess(broker.addr, V3, "admin", "wrong").await,
        ReasonCode::ServerUnavailable
    );
    // Even the right password waits its turn now: the address has guessed too often.
    assert_eq!(
        guess(broker.addr, V5, "admin", "right").await,
        ReasonCode::ServerUnavailable
    );
    broker.stop().await;
}

#[tokio::test]
async fn packets_sent_behind_connect_by_a_client_that_then_closes_are_still_handled() {
    use codec::{Connect, Disconnect, MqttString, Packet, Publish, TopicName};
    use tokio::io::AsyncWriteExt;

    let (broker, _dir) = start(Duration::from_secs(5)).await;
    let (mut sub, ack) = Raw::connect_with(broker.addr, V5, "watcher", |c| {
        c.username = Some("admin".try_into().unwrap());
        c.password = Some(Bytes::from_static(b"right"));
    })
    .await;
    assert!(ack.reason_code.is_success());
    sub.send(Packet::Subscribe(codec::Subscribe {
        packet_id: codec::PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: vec![(
            codec::TopicFilter::try_from("fire/#").unwrap(),
            codec::SubscriptionOptions::default(),
        )],
    }))
    .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    // CONNECT, PUBLISH and DISCONNECT in one write, then the client closes its side while its
    // password is still being checked.
    let mut connect = Connect::new(V5, MqttString::try_from("fire-and-forget").unwrap(), 60);
    connect.username = Some("admin".try_into().unwrap());
    connect.password = Some(Bytes::from_static(b"right"));
    let mut out = bytes::BytesMut::new();
    for packet in [
        Packet::Connect(Box::new(connect)),
        Packet::Publish(Publish::new(
            TopicName::try_from("fire/1").unwrap(),
            Bytes::from_static(b"sent"),
        )),
        Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
    ] {
        packet.encode(V5, &mut out).unwrap();
    }
    let mut stream = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
    stream.write_all(&out).await.unwrap();
    stream.shutdown().await.unwrap();
    match sub.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"sent"),
        other => panic!("{other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn parallel_guesses_from_one_address_take_turns() {
    let (broker, _dir) = start(Duration::from_secs(2)).await;
    let guesses: Vec<_> = (0..8)
        .map(|_| tokio::spawn(guess(broker.addr, V5, "admin", "wrong")))
        .collect();
    let mut answered = 0;
    let mut too_late = 0;
    for g in guesses {
        match g.await.unwrap() {
            ReasonCode::BadUserNameOrPassword => answered += 1,
            ReasonCode::ServerUnavailable => too_late += 1,
            other => panic!("{other:?}"),
        }
    }
    // In turn, each waiting out the ones before it: only the first few fit in 2 s (waits 0,
    // 0, 250 ms, 500 ms, 1 s, ...). In parallel, all eight would be checked.
    assert!(answered >= 2, "{answered} answered");
    assert!(
        too_late >= 3,
        "{too_late} answered 0x88, {answered} checked"
    );
    broker.stop().await;
}
