//! Unit tests of one connection over an in-memory stream, on tokio's paused clock where time
//! matters: what the client reads when it breaks a rule or goes silent.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use codec::{
    Connect, MqttString, Packet, PacketId, ProtocolVersion, Publish, QosPid, ReasonCode,
    SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::{Broker, BrokerOptions};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A raw MQTT 5 client on one end of an in-memory stream; the broker serves the other end.
struct Client {
    io: DuplexStream,
    buf: BytesMut,
}

impl Client {
    /// Connects to a fresh broker with `options`, as client `c1` with `keep_alive` seconds.
    async fn connect(options: BrokerOptions, keep_alive: u16) -> Self {
        let broker = Broker::new(options);
        let (io, server_side) = tokio::io::duplex(64 * 1024);
        let peer = "127.0.0.1:50000".parse().unwrap();
        tokio::spawn(async move { broker.serve_connection(server_side, peer).await });
        let mut client = Self {
            io,
            buf: BytesMut::new(),
        };
        let connect = Connect::new(V5, MqttString::try_from("c1").unwrap(), keep_alive);
        client.send(Packet::Connect(Box::new(connect))).await;
        let Some(Packet::ConnAck(ack)) = client.recv().await else {
            panic!("CONNACK expected");
        };
        assert_eq!(ack.reason_code, ReasonCode::Success);
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(V5, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    /// The next packet; `None` once the broker closed the stream.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = codec::decode(&mut self.buf, V5, u32::MAX).unwrap() {
                return Some(packet);
            }
            if self.io.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    /// Expects a DISCONNECT with `reason`, then the end of the stream.
    async fn expect_disconnect(&mut self, reason: ReasonCode) {
        match self.recv().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason),
            other => panic!("DISCONNECT {reason:?} expected, got {other:?}"),
        }
        assert!(self.recv().await.is_none(), "closed after the DISCONNECT");
    }
}

fn publish(qos: QosPid) -> Packet {
    let mut p = Publish::new(
        TopicName::try_from("t/1").unwrap(),
        Bytes::from_static(b"x"),
    );
    p.qos = qos;
    Packet::Publish(p)
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let mut client = Client::connect(BrokerOptions::default(), 2).await;
    let start = tokio::time::Instant::now();
    client.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    let silent = start.elapsed();
    // 1.5 × 2 s, judged at the next sweep (every 500 ms).
    assert!(
        silent >= Duration::from_secs(3) && silent <= Duration::from_millis(3_600),
        "{silent:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_pings_stays_connected() {
    let mut client = Client::connect(BrokerOptions::default(), 2).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        client.send(Packet::PingReq).await;
        assert!(matches!(client.recv().await, Some(Packet::PingResp)));
    }
}

#[tokio::test]
async fn too_many_qos2_messages_awaiting_pubrel_are_told_0x93() {
    let options = BrokerOptions {
        receive_maximum: std::num::NonZeroU16::new(1).unwrap(),
        ..BrokerOptions::default()
    };
    let mut client = Client::connect(options, 60).await;
    let id = |n| PacketId::new(n).unwrap();
    client.send(publish(QosPid::ExactlyOnce(id(1)))).await;
    assert!(matches!(client.recv().await, Some(Packet::PubRec(r)) if r.packet_id == id(1)));
    client.send(publish(QosPid::ExactlyOnce(id(2)))).await;
    client
        .expect_disconnect(ReasonCode::ReceiveMaximumExceeded)
        .await;
}

#[tokio::test]
async fn a_second_connect_is_a_protocol_error() {
    let mut client = Client::connect(BrokerOptions::default(), 60).await;
    let again = Connect::new(V5, MqttString::try_from("c1").unwrap(), 60);
    client.send(Packet::Connect(Box::new(again))).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn a_qos1_message_to_its_own_subscriber_is_acknowledged_and_delivered() {
    let mut client = Client::connect(BrokerOptions::default(), 60).await;
    let id = |n| PacketId::new(n).unwrap();
    client
        .send(Packet::Subscribe(codec::Subscribe {
            packet_id: id(1),
            properties: Default::default(),
            filters: vec![(
                TopicFilter::try_from("t/#").unwrap(),
                SubscriptionOptions::with_qos(codec::QoS::AtLeastOnce),
            )],
        }))
        .await;
    assert!(matches!(client.recv().await, Some(Packet::SubAck(_))));
    client.send(publish(QosPid::AtLeastOnce(id(7)))).await;
    let mut acked = false;
    let mut delivered = false;
    while !(acked && delivered) {
        match client.recv().await {
            Some(Packet::PubAck(a)) => {
                assert_eq!((a.packet_id, a.reason_code), (id(7), ReasonCode::Success));
                acked = true;
            }
            Some(Packet::Publish(p)) => {
                assert_eq!(p.topic.as_str(), "t/1");
                assert!(matches!(p.qos, QosPid::AtLeastOnce(_)));
                delivered = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
