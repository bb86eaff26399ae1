//! Decode and encode timings of this codec side by side with `mqttbytes` 0.6 (its `v4` module
//! for MQTT 3.1.1, `v5` for MQTT 5), for PUBLISH (64 B and 4 KiB, QoS 1), SUBSCRIBE (three
//! filters) and CONNECT (will, user name, password).
//!
//! Each case starts from one byte string. Before anything is measured, both codecs decode it and
//! encode their packet back to exactly those bytes, so both do the same work on the same input.
//! Decoding reads a buffer of 64 copies and drops each packet, like a connection's read loop;
//! encoding appends one packet to a cleared buffer.
//!
//! `cargo bench -p codec -- --warm-up-time 1 --measurement-time 3`; results and the table
//! format are in the project notes (`codec-bench.md`).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use codec::{
    Connect, LastWill, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid,
    Subscribe, SubscriptionOptions, TopicFilter, TopicName, decode,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use mqttbytes::{v4, v5};

/// Packets per decode iteration: one read buffer's worth.
const STREAM: usize = 64;

/// Decode limit for both codecs; every case is far below it.
const MAX_PACKET_SIZE: u32 = 1 << 20;

const TOPIC: &str = "sensors/building-7/floor-3/temperature";
const CLIENT_ID: &str = "bench-client-0001";

/// The comparison codec's packet for one case. Built once per case, never in a timed loop.
#[allow(clippy::large_enum_variant)]
enum Theirs {
    V4(v4::Packet),
    V5(v5::Packet),
}

impl Theirs {
    fn decode(buf: &mut BytesMut, version: ProtocolVersion) -> Self {
        let max = MAX_PACKET_SIZE as usize;
        if version.is_v5() {
            Self::V5(v5::read(buf, max).expect("mqttbytes v5 decodes the case"))
        } else {
            Self::V4(v4::read(buf, max).expect("mqttbytes v4 decodes the case"))
        }
    }

    fn encode(&self, buf: &mut BytesMut) -> usize {
        let written = match self {
            Self::V4(v4::Packet::Publish(p)) => p.write(buf),
            Self::V4(v4::Packet::Subscribe(p)) => p.write(buf),
            Self::V4(v4::Packet::Connect(p)) => p.write(buf),
            Self::V5(v5::Packet::Publish(p)) => p.write(buf),
            Self::V5(v5::Packet::Subscribe(p)) => p.write(buf),
            Self::V5(v5::Packet::Connect(p)) => p.write(buf),
            _ => unreachable!("the benchmark builds only PUBLISH, SUBSCRIBE and CONNECT"),
        };
        written.expect("mqttbytes encodes the case")
    }
}

/// One row of the table: a packet in one protocol version.
struct Case {
    name: String,
    version: ProtocolVersion,
    bytes: Bytes,
    ours: Packet,
    theirs: Theirs,
}

impl Case {
    fn new(name: &str, version: ProtocolVersion, ours: Packet) -> Self {
        let mut buf = BytesMut::new();
        ours.encode(version, &mut buf).expect("the case encodes");
        let bytes = buf.freeze();

        let mut input = BytesMut::from(&bytes[..]);
        let decoded = decode(&mut input, version, MAX_PACKET_SIZE).expect("the case decodes");
        assert_eq!(decoded.as_ref(), Some(&ours), "{name}: our round trip");

        let theirs = Theirs::decode(&mut BytesMut::from(&bytes[..]), version);
        let mut again = BytesMut::new();
        theirs.encode(&mut again);
        assert_eq!(again, bytes, "{name}: mqttbytes encodes other bytes");

        let label = if version.is_v5() { "v5" } else { "v3.1.1" };
        Self {
            name: format!("{label}/{name}"),
            version,
            bytes,
            ours,
            theirs,
        }
    }

    /// A read buffer holding [`STREAM`] copies of the packet back to back.
    fn stream(&self) -> BytesMut {
        let mut buf = BytesMut::with_capacity(STREAM * self.bytes.len());
        for _ in 0..STREAM {
            buf.extend_from_slice(&self.bytes);
        }
        buf
    }
}

fn publish(payload_len: usize) -> Packet {
    let mut p = Publish::new(
        TopicName::try_from(TOPIC).expect("valid topic"),
        Bytes::from(vec![0xA5; payload_len]),
    );
    p.qos = QosPid::AtLeastOnce(PacketId::new(42).expect("non-zero"));
    Packet::Publish(p)
}

fn subscribe() -> Packet {
    let filter = |s: &str| TopicFilter::try_from(s).expect("valid filter");
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(7).expect("non-zero"),
        properties: Default::default(),
        filters: vec![
            (
                filter("sensors/+/temperature"),
                SubscriptionOptions::with_qos(QoS::AtLeastOnce),
            ),
            (
                filter("alerts/#"),
                SubscriptionOptions::with_qos(QoS::ExactlyOnce),
            ),
            (
                filter("$SYS/broker/uptime"),
                SubscriptionOptions::with_qos(QoS::AtMostOnce),
            ),
        ],
    })
}

fn connect(version: ProtocolVersion) -> Packet {
    let string = |s: &str| MqttString::try_from(s).expect("valid string");
    let mut c = Connect::new(version, string(CLIENT_ID), 60);
    c.will = Some(LastWill {
        topic: TopicName::try_from("clients/bench-client-0001/status").expect("valid topic"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    });
    c.username = Some(string("bench-user"));
    c.password = Some(Bytes::from_static(b"correct horse battery staple"));
    Packet::Connect(Box::new(c))
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        cases.push(Case::new("publish_64B_qos1", version, publish(64)));
        cases.push(Case::new("publish_4KiB_qos1", version, publish(4096)));
        cases.push(Case::new("subscribe_3_filters", version, subscribe()));
        cases.push(Case::new(
            "connect_will_user_pass",
            version,
            connect(version),
        ));
    }
    cases
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        // One iteration decodes a read buffer holding `STREAM` copies of the packet and drops
        // each packet, as a connection's read loop does. Divide by `STREAM` for one packet.
        let mut group = c.benchmark_group(format!("{}/decode", case.name));
        group.throughput(Throughput::Elements(STREAM as u64));
        group.bench_function("ours", |b| {
            b.iter_batched_ref(
                || case.stream(),
                |buf| {
                    while let Some(packet) =
                        decode(buf, case.version, MAX_PACKET_SIZE).expect("the case decodes")
                    {
                        black_box(packet);
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let max = MAX_PACKET_SIZE as usize;
        group.bench_function("mqttbytes", |b| {
            b.iter_batched_ref(
                || case.stream(),
                |buf| {
                    // Their own packet types, without the `Theirs` wrapper, like ours.
                    while !buf.is_empty() {
                        if case.version.is_v5() {
                            black_box(v5::read(buf, max).expect("the case decodes"));
                        } else {
                            black_box(v4::read(buf, max).expect("the case decodes"));
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();

        let mut group = c.benchmark_group(format!("{}/encode", case.name));
        let mut buf = BytesMut::with_capacity(2 * case.bytes.len());
        group.bench_function("ours", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&case.ours)
                    .encode(case.version, &mut buf)
                    .expect("the case encodes");
                black_box(buf.len())
            })
        });
        group.bench_function("mqttbytes", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&case.theirs).encode(&mut buf);
                black_box(buf.len())
            })
        });
        group.finish();
    }
}

/// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}

criterion_main!(harness::benches);
