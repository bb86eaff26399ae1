//! Property tests of the codec's public API: every packet type of MQTT 3.1.1 and 5.0 survives
//! encode then decode, every strict prefix of an encoding is "need more", `encoded_len` is exact,
//! and arbitrary or mutated bytes are an error or a packet, never a panic.
//!
//! The strategies build valid values only: the codec's types already rule out most invalid
//! states, and the rest (no properties or reason codes in MQTT 3, session present only on
//! success, no No Local on shared subscriptions, ...) are respected here.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    DecodeError, Disconnect, DisconnectProperties, LastWill, MqttString, Packet, PacketId,
    PacketType, PayloadFormat, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, QoS, QosPid, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeProperties, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UnsubAck,
    Unsubscribe, UnsubscribeProperties, VARINT_MAX, WillProperties, decode,
};
use proptest::collection::vec;
use proptest::option::of as maybe;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
/// Large enough for every generated packet; the size limit has its own property.
const MAX: u32 = 1 << 20;

// ---- values ----

/// Mostly ASCII (so levels and `$` topics come up often), sometimes any scalar value but U+0000.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'e'),
        1 => Just('$'),
        1 => Just(' '),
        2 => any::<char>().prop_map(|c| if c == '\0' { 'x' } else { c }),
    ]
}

fn mqtt_string() -> impl Strategy<Value = MqttString> {
    vec(text_char(), 0..10).prop_map(|chars| {
        MqttString::try_from(chars.into_iter().collect::<String>()).expect("no U+0000 generated")
    })
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

/// One level of a topic name: no `/`, `+` or `#`.
fn level() -> impl Strategy<Value = String> {
    vec(text_char(), 0..5).prop_map(|chars| {
        chars
            .into_iter()
            .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
            .collect()
    })
}

/// A non-empty topic name of one to four levels (levels may be empty: `a//b`, `/`).
fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5).prop_map(|levels| {
        let mut s = levels.join("/");
        if s.is_empty() {
            s.push('t');
        }
        TopicName::try_from(s.as_str()).expect("generated a valid topic name")
    })
}

fn filter_level() -> impl Strategy<Value = String> {
    prop_oneof![3 => level(), 1 => Just("+".to_owned())]
}

/// A topic filter, with wildcards on whole levels, sometimes shared (`$share/{group}/...`).
fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let share = maybe(vec(prop::char::range('a', 'z'), 1..5));
    (share, vec(filter_level(), 1..5), any::<bool>()).prop_map(|(share, levels, hash)| {
        let mut s = levels.join("/");
        if hash {
            s.push_str(if s.is_empty() { "#" } else { "/#" });
        }
        if s.is_empty() {
            s.push('f');
        }
        if let Some(group) = share {
            s = format!("$share/{}/{s}", group.into_iter().collect::<String>());
        }
        TopicFilter::try_from(s.as_str()).expect("generated a valid topic filter")
    })
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).expect("non-zero"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn nonzero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|v| NonZeroU16::new(v).expect("non-zero"))
}

fn nonzero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|v| NonZeroU32::new(v).expect("non-zero"))
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    prop_oneof![1..=200u32, 1..=VARINT_MAX].prop_map(|v| SubscriptionId::new(v).expect("in range"))
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

/// Every reason code the spec allows in a packet of this type.
fn reason_code(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let allowed: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|code| code.is_allowed_in(packet))
        .collect();
    select(allowed)
}

fn user_properties() -> impl Strategy<Value = Vec<(MqttString, MqttString)>> {
    vec((mqtt_string(), mqtt_string()), 0..3)
}

// ---- property sets (MQTT 5 only) ----

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(nonzero_u32()),
        maybe(any::<u16>()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(mqtt_string()),
        maybe(binary()),
        user_properties(),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, am, ad, up)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                authentication_method: am,
                authentication_data: ad,
                user_properties: up,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        maybe(any::<u32>()),
        maybe(payload_format()),
        maybe(any::<u32>()),
        maybe(mqtt_string()),
        maybe(topic_name()),
        maybe(binary()),
        user_properties(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, up)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        maybe(any::<bool>()),
        maybe(nonzero_u32()),
        maybe(mqtt_string()),
        maybe(any::<u16>()),
        maybe(mqtt_string()),
    );
    let second = (
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(any::<u16>()),
        maybe(mqtt_string()),
        maybe(mqtt_string()),
        maybe(mqtt_string()),
        maybe(binary()),
        user_properties(),
    );
    (first, second).prop_map(
        |((sei, rm, mq, ra, mps, aci, tam, rs), (wsa, sia, ssa, ska, ri, sr, am, ad, up))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                wildcard_subscription_available: wsa,
                subscription_identifier_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
                user_properties: up,
            }
        },
    )
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        maybe(payload_format()),
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(topic_name()),
        maybe(binary()),
        maybe(mqtt_string()),
        vec(subscription_id(), 0..3),
        user_properties(),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, ct, sids, up)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            content_type: ct,
            subscription_identifiers: sids,
            user_properties: up,
        })
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (maybe(mqtt_string()), user_properties()).prop_map(|(rs, up)| AckProperties {
        reason_string: rs,
        user_properties: up,
    })
}

fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (maybe(subscription_id()), user_properties()).prop_map(|(sid, up)| SubscribeProperties {
        subscription_identifier: sid,
        user_properties: up,
    })
}

fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|up| UnsubscribeProperties {
        user_properties: up,
    })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        maybe(any::<u32>()),
        maybe(mqtt_string()),
        maybe(mqtt_string()),
        user_properties(),
    )
        .prop_map(|(sei, rs, sr, up)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            server_reference: sr,
            user_properties: up,
        })
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        maybe(mqtt_string()),
        maybe(binary()),
        maybe(mqtt_string()),
        user_properties(),
    )
        .prop_map(|(am, ad, rs, up)| AuthProperties {
            authentication_method: am,
            authentication_data: ad,
            reason_string: rs,
            user_properties: up,
        })
}

/// A property set for MQTT 5, the empty set for MQTT 3.
fn props_for<S>(v5: bool, set: S) -> BoxedStrategy<S::Value>
where
    S: Strategy + 'static,
    S::Value: Default + Clone + std::fmt::Debug,
{
    if v5 {
        set.boxed()
    } else {
        Just(S::Value::default()).boxed()
    }
}

// ---- packets ----

fn connect(v5: bool) -> impl Strategy<Value = Packet> {
    let protocol = if v5 {
        Just(V5).boxed()
    } else {
        prop_oneof![Just(ProtocolVersion::V3_1_1), Just(ProtocolVersion::V3_1)].boxed()
    };
    let will = maybe((
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        props_for(v5, will_properties()),
    ))
    .prop_map(|will| {
        will.map(|(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
    });
    (
        protocol,
        any::<bool>(),
        any::<u16>(),
        mqtt_string(),
        will,
        maybe(mqtt_string()),
        maybe(binary()),
        props_for(v5, connect_properties()),
    )
        .prop_map(
            |(
                protocol,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            )| {
                // MQTT 3.1.1 allows a password only with a user name [MQTT-3.1.2-22].
                let password = if protocol.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(v5: bool) -> impl Strategy<Value = Packet> {
    let code = if v5 {
        reason_code(PacketType::ConnAck).boxed()
    } else {
        // The reason codes a 3.1.1 return code maps back to.
        select(vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ])
        .boxed()
    };
    (code, any::<bool>(), props_for(v5, connack_properties())).prop_map(
        |(reason_code, present, properties)| {
            Packet::ConnAck(ConnAck {
                // A refused connection has no session [MQTT-3.2.2-6].
                session_present: present && reason_code.is_success(),
                reason_code,
                properties,
            })
        },
    )
}

fn publish(v5: bool) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        packet_id(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        props_for(v5, publish_properties()),
        binary(),
    )
        .prop_map(
            |(dup, qos, id, retain, topic, drop_topic, properties, payload)| {
                // An MQTT 5 PUBLISH may leave the topic empty when a Topic Alias stands in.
                let topic = if drop_topic && properties.topic_alias.is_some() {
                    TopicName::empty()
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    // DUP is never set on QoS 0 [MQTT-3.3.1-2].
                    dup: dup && qos != QoS::AtMostOnce,
                    qos: QosPid::from_parts(qos, id),
                    retain,
                    topic,
                    properties,
                    payload,
                })
            },
        )
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: in MQTT 3 a packet id alone.
fn pub_ack(v5: bool) -> impl Strategy<Value = Packet> {
    let kind = select(vec![
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ]);
    kind.prop_flat_map(move |kind| {
        let code = if v5 {
            reason_code(kind).boxed()
        } else {
            Just(ReasonCode::Success).boxed()
        };
        (packet_id(), code, props_for(v5, ack_properties())).prop_map(
            move |(packet_id, reason_code, properties)| match kind {
                PacketType::PubAck => Packet::PubAck(PubAck {
                    packet_id,
                    reason_code,
                    properties,
                }),
                PacketType::PubRec => Packet::PubRec(PubRec {
                    packet_id,
                    reason_code,
                    properties,
                }),
                PacketType::PubRel => Packet::PubRel(PubRel {
                    packet_id,
                    reason_code,
                    properties,
                }),
                _ => Packet::PubComp(PubComp {
                    packet_id,
                    reason_code,
                    properties,
                }),
            },
        )
    })
}

fn subscription_options(v5: bool) -> impl Strategy<Value = SubscriptionOptions> {
    let handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    (qos(), any::<bool>(), any::<bool>(), handling).prop_map(
        move |(qos, no_local, retain_as_published, retain_handling)| {
            if v5 {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                }
            } else {
                // MQTT 3 carries the QoS alone.
                SubscriptionOptions::with_qos(qos)
            }
        },
    )
}

fn subscribe(v5: bool) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props_for(v5, subscribe_properties()),
        vec((topic_filter(), subscription_options(v5)), 1..4),
    )
        .prop_map(|(packet_id, properties, mut filters)| {
            // No Local is not allowed on a shared subscription [MQTT-3.8.3-4].
            for (filter, options) in &mut filters {
                options.no_local &= !filter.is_shared();
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn suback(v5: bool) -> impl Strategy<Value = Packet> {
    let code = if v5 {
        reason_code(PacketType::SubAck).boxed()
    } else {
        // MQTT 3.1.1 return codes: granted QoS 0, 1, 2 and 0x80 failure.
        select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (
        packet_id(),
        props_for(v5, ack_properties()),
        vec(code, 1..5),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsubscribe(v5: bool) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props_for(v5, unsubscribe_properties()),
        vec(topic_filter(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn unsuback(v5: bool) -> impl Strategy<Value = Packet> {
    let codes = if v5 {
        vec(reason_code(PacketType::UnsubAck), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), props_for(v5, ack_properties()), codes).prop_map(
        |(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes,
            })
        },
    )
}

fn disconnect(v5: bool) -> BoxedStrategy<Packet> {
    if !v5 {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    (reason_code(PacketType::Disconnect), disconnect_properties())
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    (reason_code(PacketType::Auth), auth_properties()).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// Any valid MQTT 3.1.1 packet (CONNECT may also be 3.1).
fn packet_v3() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(false),
        connack(false),
        publish(false),
        pub_ack(false),
        subscribe(false),
        suback(false),
        unsubscribe(false),
        unsuback(false),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(false),
    ]
}

/// Any valid MQTT 5 packet.
fn packet_v5() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(true),
        connack(true),
        publish(true),
        pub_ack(true),
        subscribe(true),
        suback(true),
        unsubscribe(true),
        unsuback(true),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(true),
        auth(),
    ]
}

// ---- properties checked ----

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .expect("a valid packet encodes");
    buf
}

/// Encode, decode, compare; then every strict prefix is "need more" and the size limit bites
/// from the fixed header alone.
fn check_round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let encoded = encode(packet, version);
    prop_assert_eq!(packet.encoded_len(version), Ok(encoded.len()));

    let mut buf = encoded.clone();
    let decoded = decode(&mut buf, version, MAX);
    prop_assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())));
    prop_assert!(buf.is_empty(), "decode left {} bytes", buf.len());

    for len in 0..encoded.len() {
        let mut prefix = BytesMut::from(&encoded[..len]);
        prop_assert_eq!(
            decode(&mut prefix, version, MAX),
            Ok(None),
            "prefix {}",
            len
        );
        prop_assert_eq!(&prefix[..], &encoded[..len], "prefix {} was consumed", len);
    }

    // A limit one byte short rejects the packet once the fixed header is in, body or not.
    let header_len = 1 + encoded[1..].iter().take_while(|&&b| b & 0x80 != 0).count() + 1;
    let limit = u32::try_from(encoded.len() - 1).expect("generated packets are small");
    let mut header = BytesMut::from(&encoded[..header_len]);
    prop_assert!(
        matches!(
            decode(&mut header, version, limit),
            Err(DecodeError::PacketTooLarge { .. })
        ),
        "size limit not enforced from the fixed header"
    );
    Ok(())
}

/// Decodes packets off the front of `input` until it needs more or fails. Each packet must
/// re-encode, with `encoded_len` matching, to bytes that decode to the same packet.
fn decode_stream(input: &[u8], version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(input);
    while let Ok(Some(packet)) = decode(&mut buf, version, MAX) {
        let mut out = BytesMut::new();
        // A CONNECT is encoded in its own version; everything else in the connection's.
        let encoded = packet.encode(version, &mut out);
        prop_assert_eq!(encoded, Ok(()), "{:?} did not re-encode", packet);
        prop_assert_eq!(packet.encoded_len(version), Ok(out.len()));
        let again = decode(&mut out, version, MAX);
        prop_assert_eq!(again, Ok(Some(packet)));
        prop_assert!(out.is_empty());
    }
    Ok(())
}

/// A valid encoding with a few random edits: byte overwrites, insertions, deletions and a
/// truncation, so the decoder sees nearly-valid packets rather than noise.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    vec(edit, 1..4)
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(i, b) if len > 0 => bytes[i % len] = b,
            Edit::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Edit::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    // Shrunk failures go to `proptest.regressions` beside this file and are replayed first.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn v3_packets_round_trip(packet in packet_v3()) {
        check_round_trip(&packet, V3)?;
        // 3.1 connections share 3.1.1's packet layout.
        check_round_trip(&packet, ProtocolVersion::V3_1)?;
    }

    #[test]
    fn v5_packets_round_trip(packet in packet_v5()) {
        check_round_trip(&packet, V5)?;
    }

    #[test]
    fn v5_packets_encode_for_v3_connections(packet in packet_v5()) {
        // A broker builds one packet and sends it to clients of either version: MQTT 3 drops
        // properties and maps reason codes. `encoded_len` must agree with `encode`, and what
        // `encode` accepts must decode as MQTT 3.
        let mut buf = BytesMut::new();
        let encoded = packet.encode(V3, &mut buf).map(|()| buf.len());
        prop_assert_eq!(packet.encoded_len(V3), encoded);
        if encoded.is_ok() {
            let decoded = decode(&mut buf, V3, MAX);
            prop_assert!(matches!(decoded, Ok(Some(_))), "{:?} gave {:?}", packet, decoded);
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn back_to_back_packets_decode_in_order(
        packets in vec(packet_v5(), 1..4),
    ) {
        let mut buf = BytesMut::new();
        for p in &packets {
            buf.extend_from_slice(&encode(p, V5));
        }
        for p in packets {
            prop_assert_eq!(decode(&mut buf, V5, MAX), Ok(Some(p)));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..128)) {
        decode_stream(&bytes, V3)?;
        decode_stream(&bytes, V5)?;
    }

    #[test]
    fn mutated_v3_packets_never_panic(packet in packet_v3(), edits in edits()) {
        let bytes = mutate(encode(&packet, V3).to_vec(), &edits);
        decode_stream(&bytes, V3)?;
        decode_stream(&bytes, V5)?;
    }

    #[test]
    fn mutated_v5_packets_never_panic(packet in packet_v5(), edits in edits()) {
        let bytes = mutate(encode(&packet, V5).to_vec(), &edits);
        decode_stream(&bytes, V5)?;
        decode_stream(&bytes, V3)?;
    }

    #[test]
    fn filter_matches_names_it_was_built_from(
        name in topic_name(),
        wildcard_at in any::<prop::sample::Index>(),
    ) {
        let text = name.as_str();
        let exact = TopicFilter::try_from(text).expect("a topic name is a valid filter");
        prop_assert!(exact.matches(&name));

        // Replacing one level by `+` still matches, and so does a trailing `/#` (it matches the
        // parent level too) — unless the wildcard lands on the first level of a `$` topic.
        let mut levels: Vec<&str> = text.split('/').collect();
        let i = wildcard_at.index(levels.len());
        levels[i] = "+";
        let plus = TopicFilter::try_from(levels.join("/").as_str()).expect("valid");
        prop_assert_eq!(plus.matches(&name), !(i == 0 && name.is_system()));

        let hash = TopicFilter::try_from(format!("{text}/#").as_str()).expect("valid");
        prop_assert!(hash.matches(&name));
        let all = TopicFilter::try_from("#").expect("valid");
        prop_assert_eq!(all.matches(&name), !name.is_system());
    }
}
