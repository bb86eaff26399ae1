//! Byte-exact fixtures for every packet type, and one test per malformed-packet rule.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::properties::{PropertyId, SubscriptionId};
use crate::reason::ReasonCode;
use crate::topic::{TopicFilter, TopicName};
use crate::types::{MqttString, PacketId, QoS, QosPid};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: u32 = 1 << 20;

fn decode_all(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, version, MAX)?.expect("fixture holds a whole packet");
    assert!(buf.is_empty(), "decode left {} bytes", buf.len());
    Ok(packet)
}

/// Decodes, re-encodes, and checks the bytes come back identical.
fn round_trip(bytes: &[u8], version: ProtocolVersion) -> Packet {
    let packet = decode_all(bytes, version).unwrap();
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).unwrap();
    assert_eq!(&out[..], bytes, "re-encoding {packet:?}");
    assert_eq!(packet.encoded_len(version).unwrap(), bytes.len());
    packet
}

fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

// ---- CONNECT / CONNACK ----

/// §3.1.2.10 example (MQTT 3.1.1 layout): client id "abc", keep alive 10, clean session.
const CONNECT_V311: &[u8] = &[
    0x10, 15, // CONNECT, remaining 15
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
    0x04, // level 4
    0x02, // clean session
    0x00, 0x0A, // keep alive 10
    0x00, 0x03, b'a', b'b', b'c', // client id
];

#[test]
fn decodes_v311_connect() {
    let Packet::Connect(c) = round_trip(CONNECT_V311, V3) else {
        panic!()
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1_1);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(c.client_id, "abc");
    assert!(c.will.is_none() && c.username.is_none() && c.password.is_none());
}

#[test]
fn decodes_v31_connect_regardless_of_connection_version() {
    let bytes = [
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C, 0x00,
        0x03, b'c', b'i', b'd',
    ];
    let Packet::Connect(c) = round_trip(&bytes, V5) else {
        panic!()
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1);
}

/// §3.1.2.11 example: MQTT 5 CONNECT with session expiry 10, will with delay 5, user "u",
/// password "p".
const CONNECT_V5_FULL: &[u8] = &[
    0x10,
    42, // remaining 42
    0x00,
    0x04,
    b'M',
    b'Q',
    b'T',
    b'T',
    0x05,        // name, level 5
    0b1110_1110, // username, password, will retain, will QoS 1, will, clean start
    0x00,
    0x3C, // keep alive 60
    0x05,
    0x11,
    0x00,
    0x00,
    0x00,
    0x0A, // properties: session expiry 10
    0x00,
    0x02,
    b'c',
    b'1', // client id
    0x05,
    0x18,
    0x00,
    0x00,
    0x00,
    0x05, // will properties: will delay 5
    0x00,
    0x03,
    b'w',
    b'/',
    b't', // will topic
    0x00,
    0x03,
    b'b',
    b'y',
    b'e', // will payload
    0x00,
    0x01,
    b'u', // user name
    0x00,
    0x01,
    b'p', // password
];

#[test]
fn decodes_v5_connect_with_will_and_credentials() {
    let Packet::Connect(c) = round_trip(CONNECT_V5_FULL, V5) else {
        panic!()
    };
    assert_eq!(c.properties.session_expiry_interval, Some(10));
    let will = c.will.as_ref().unwrap();
    assert_eq!(will.topic.as_str(), "w/t");
    assert_eq!(&will.payload[..], b"bye");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain);
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(c.username.as_ref().unwrap(), "u");
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
}

#[test]
fn v5_allows_password_without_username() {
    let bytes = [
        0x10, 16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, b'p',
    ];
    let Packet::Connect(c) = round_trip(&bytes, V5) else {
        panic!()
    };
    assert!(c.username.is_none());
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
}

#[test]
fn rejects_password_without_username_in_v311() {
    let bytes = [
        0x10, 15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, b'p',
    ];
    assert_eq!(
        decode_all(&bytes, V3),
        Err(DecodeError::PasswordWithoutUsername)
    );
}

#[test]
fn rejects_connect_reserved_flag() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[9] |= 0x01;
    assert_eq!(
        decode_all(&bytes, V3),
        Err(DecodeError::ConnectReservedFlag)
    );
}

#[test]
fn rejects_will_qos_without_will_flag() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[9] |= 0b0000_1000;
    assert_eq!(
        decode_all(&bytes, V3),
        Err(DecodeError::WillFlagsWithoutWill)
    );
    let mut bytes = CONNECT_V311.to_vec();
    bytes[9] |= 0b0010_0000;
    assert_eq!(
        decode_all(&bytes, V3),
        Err(DecodeError::WillFlagsWithoutWill)
    );
}

#[test]
fn rejects_will_qos_3() {
    let mut bytes = CONNECT_V5_FULL.to_vec();
    bytes[9] |= 0b0001_1000;
    assert_eq!(decode_all(&bytes, V5), Err(DecodeError::InvalidQoS));
}

#[test]
fn rejects_unsupported_protocol_level_with_connack_reason() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[8] = 6;
    let e = decode_all(&bytes, V3).unwrap_err();
    assert_eq!(e, DecodeError::UnsupportedProtocolLevel(6));
    assert!(e.is_connect_refusal());
    assert_eq!(ReasonCode::from(e), ReasonCode::UnsupportedProtocolVersion);
    assert_eq!(
        crate::ConnectReturnCode::from(e),
        crate::ConnectReturnCode::UnacceptableProtocolVersion
    );
}

#[test]
fn rejects_unknown_protocol_name() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[4] = b'X';
    assert_eq!(
        decode_all(&bytes, V3),
        Err(DecodeError::InvalidProtocolName)
    );
}

#[test]
fn rejects_will_topic_with_wildcard() {
    let mut bytes = CONNECT_V5_FULL.to_vec();
    bytes[32] = b'#';
    assert_eq!(
        decode_all(&bytes, V5),
        Err(DecodeError::WildcardInTopicName)
    );
}

#[test]
fn rejects_will_property_not_allowed_for_wills() {
    // Replace the will delay with a session expiry interval, which wills may not carry.
    let mut bytes = CONNECT_V5_FULL.to_vec();
    bytes[23] = 0x11;
    assert_eq!(
        decode_all(&bytes, V5),
        Err(DecodeError::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            packet: PacketType::Connect
        })
    );
}

#[test]
fn rejects_trailing_bytes_after_connect_payload() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[1] += 1;
    bytes.push(0);
    assert_eq!(decode_all(&bytes, V3), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn rejects_client_id_with_null_character() {
    let mut bytes = CONNECT_V311.to_vec();
    bytes[15] = 0;
    assert_eq!(decode_all(&bytes, V3), Err(DecodeError::NullCharacter));
}

#[test]
fn connack_round_trips_both_versions() {
    // v3: session present, accepted.
    let Packet::ConnAck(a) = round_trip(&[0x20, 0x02, 0x01, 0x00], V3) else {
        panic!()
    };
    assert!(a.session_present);
    assert_eq!(a.reason_code, ReasonCode::Success);
    // v3: not authorized.
    let Packet::ConnAck(a) = round_trip(&[0x20, 0x02, 0x00, 0x05], V3) else {
        panic!()
    };
    assert_eq!(a.reason_code, ReasonCode::NotAuthorized);
    // v5: assigned client id "x", receive maximum 10.
    let Packet::ConnAck(a) = round_trip(
        &[
            0x20, 0x0A, 0x00, 0x00, 0x07, 0x21, 0x00, 0x0A, 0x12, 0x00, 0x01, b'x',
        ],
        V5,
    ) else {
        panic!()
    };
    assert_eq!(a.properties.assigned_client_identifier.unwrap(), "x");
    assert_eq!(a.properties.receive_maximum.map(|r| r.get()), Some(10));
}

#[test]
fn v3_connack_maps_v5_reasons_to_return_codes() {
    let ack = ConnAck::new(ReasonCode::Banned, false);
    let mut out = BytesMut::new();
    Packet::ConnAck(ack).encode(V3, &mut out).unwrap();
    assert_eq!(&out[..], &[0x20, 0x02, 0x00, 0x05]);
}

#[test]
fn rejects_connack_reserved_flags_and_bad_codes() {
    assert_eq!(
        decode_all(&[0x20, 0x02, 0x02, 0x00], V3),
        Err(DecodeError::ConnAckReservedFlags)
    );
    assert_eq!(
        decode_all(&[0x20, 0x02, 0x00, 0x06], V3),
        Err(DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 6
        })
    );
    assert_eq!(
        decode_all(&[0x20, 0x03, 0x00, 0x8E, 0x00], V5),
        Err(DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 0x8E
        })
    );
    assert_eq!(
        decode_all(&[0x20, 0x02, 0x01, 0x05], V3),
        Err(DecodeError::SessionPresentOnRefusal)
    );
}

// ---- PUBLISH and acknowledgements ----

/// §3.3.2.3 example: QoS 1 PUBLISH "a/b", packet id 10, payload "hi".
const PUBLISH_V3_QOS1: &[u8] = &[
    0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
];

#[test]
fn decodes_qos1_publish_sharing_the_buffer() {
    let Packet::Publish(p) = round_trip(PUBLISH_V3_QOS1, V3) else {
        panic!()
    };
    assert_eq!(p.topic.as_str(), "a/b");
    assert_eq!(p.qos, QosPid::AtLeastOnce(pid(10)));
    assert_eq!(&p.payload[..], b"hi");
    assert!(!p.dup && !p.retain);
}

#[test]
fn decodes_v5_publish_with_properties() {
    let bytes = [
        0x3D, 0x14, // PUBLISH DUP QoS 2 RETAIN, remaining 20
        0x00, 0x01, b't', 0x00, 0x07, // topic "t", id 7
        0x0C, // properties length 12
        0x01, 0x01, // payload format UTF-8
        0x23, 0x00, 0x02, // topic alias 2
        0x09, 0x00, 0x02, 0xAB, 0xCD, // correlation data
        0x0B, 0x05, // subscription id 5
        b'o', b'k', // payload
    ];
    let Packet::Publish(p) = round_trip(&bytes, V5) else {
        panic!()
    };
    assert!(p.dup && p.retain);
    assert_eq!(p.qos, QosPid::ExactlyOnce(pid(7)));
    assert_eq!(
        p.properties.payload_format_indicator,
        Some(crate::PayloadFormat::Utf8)
    );
    assert_eq!(p.properties.topic_alias.map(|a| a.get()), Some(2));
    assert_eq!(
        p.properties.correlation_data.as_deref(),
        Some(&[0xAB, 0xCD][..])
    );
    assert_eq!(
        p.properties.subscription_identifiers,
        vec![SubscriptionId::new(5).unwrap()]
    );
    assert_eq!(&p.payload[..], b"ok");
}

#[test]
fn v5_publish_may_use_alias_instead_of_topic() {
    let bytes = [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'x'];
    let Packet::Publish(p) = round_trip(&bytes, V5) else {
        panic!()
    };
    assert!(p.topic.is_empty());
}

#[test]
fn rejects_empty_topic_without_alias() {
    assert_eq!(
        decode_all(&[0x30, 0x03, 0x00, 0x00, b'x'], V3),
        Err(DecodeError::EmptyTopicName)
    );
    assert_eq!(
        decode_all(&[0x30, 0x04, 0x00, 0x00, 0x00, b'x'], V5),
        Err(DecodeError::EmptyTopicName)
    );
}

#[test]
fn rejects_publish_with_wildcard_topic() {
    let bytes = [0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'];
    let e = decode_all(&bytes, V3).unwrap_err();
    assert_eq!(e, DecodeError::WildcardInTopicName);
    assert_eq!(ReasonCode::from(e), ReasonCode::MalformedPacket);
}

#[test]
fn rejects_publish_qos_3() {
    assert_eq!(
        decode_all(&[0x36, 0x03, 0x00, 0x01, b'a'], V3),
        Err(DecodeError::InvalidQoS)
    );
}

#[test]
fn rejects_dup_on_qos0() {
    assert_eq!(
        decode_all(&[0x38, 0x03, 0x00, 0x01, b'a'], V3),
        Err(DecodeError::DupOnQoS0)
    );
}

#[test]
fn rejects_packet_id_zero() {
    let bytes = [0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00];
    assert_eq!(decode_all(&bytes, V3), Err(DecodeError::PacketIdZero));
    assert_eq!(
        decode_all(&[0x40, 0x02, 0x00, 0x00], V3),
        Err(DecodeError::PacketIdZero)
    );
}

#[test]
fn rejects_topic_alias_zero_with_its_reason_code() {
    let bytes = [0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00];
    let e = decode_all(&bytes, V5).unwrap_err();
    assert_eq!(e, DecodeError::TopicAliasZero);
    assert_eq!(ReasonCode::from(e), ReasonCode::TopicAliasInvalid);
}

#[test]
fn rejects_invalid_utf8_topic() {
    let bytes = [0x30, 0x04, 0x00, 0x02, 0xC3, 0x28];
    assert_eq!(decode_all(&bytes, V3), Err(DecodeError::InvalidUtf8));
}

#[test]
fn acks_use_short_forms_in_v5() {
    for first in [0x40u8, 0x50, 0x62, 0x70] {
        // Two-byte form: success, no properties.
        let packet = round_trip(&[first, 0x02, 0x12, 0x34], V5);
        assert_eq!(packet.encoded_len(V5).unwrap(), 4);
    }
    // Three-byte form: reason code, no properties.
    let Packet::PubAck(a) = round_trip(&[0x40, 0x03, 0x00, 0x01, 0x10], V5) else {
        panic!()
    };
    assert_eq!(a.reason_code, ReasonCode::NoMatchingSubscribers);
    // Reason string.
    let Packet::PubRec(r) = round_trip(
        &[0x50, 0x08, 0x00, 0x01, 0x80, 0x04, 0x1F, 0x00, 0x01, b'x'],
        V5,
    ) else {
        panic!()
    };
    assert_eq!(r.properties.reason_string.unwrap(), "x");
    // Success with properties keeps the explicit 0x00.
    round_trip(
        &[0x70, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x01, b'x'],
        V5,
    );
}

#[test]
fn rejects_reason_code_outside_packet_table() {
    assert_eq!(
        decode_all(&[0x62, 0x03, 0x00, 0x01, 0x10], V5),
        Err(DecodeError::InvalidReasonCode {
            packet: PacketType::PubRel,
            code: 0x10
        })
    );
}

#[test]
fn v3_acks_are_exactly_two_bytes() {
    assert_eq!(
        decode_all(&[0x40, 0x03, 0x00, 0x01, 0x00], V3),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn rejects_pubrel_with_wrong_flags() {
    // PUBREL must have flags 0010 [MQTT-3.6.1-1].
    assert_eq!(
        decode_all(&[0x60, 0x02, 0x00, 0x01], V3),
        Err(DecodeError::InvalidHeaderFlags {
            packet: PacketType::PubRel,
            flags: 0
        })
    );
}

// ---- SUBSCRIBE family ----

#[test]
fn decodes_v3_subscribe_from_spec_example() {
    // §3.8.3 (3.1.1): "a/b" QoS 1, "c/d" QoS 2, packet id 10.
    let bytes = [
        0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'd',
        0x02,
    ];
    let Packet::Subscribe(s) = round_trip(&bytes, V3) else {
        panic!()
    };
    assert_eq!(s.packet_id, pid(10));
    assert_eq!(s.filters.len(), 2);
    assert_eq!(s.filters[1].0.as_str(), "c/d");
    assert_eq!(s.filters[1].1.qos, QoS::ExactlyOnce);
}

#[test]
fn decodes_v5_subscription_options() {
    let bytes = [
        0x82,
        0x0B,
        0x00,
        0x01,
        0x02,
        0x0B,
        0x07, // id 1, props: subscription id 7
        0x00,
        0x03,
        b'x',
        b'/',
        b'#',
        0b0010_1101, // RH=2, RAP, NL, QoS 1
    ];
    let Packet::Subscribe(s) = round_trip(&bytes, V5) else {
        panic!()
    };
    assert_eq!(s.properties.subscription_identifier, SubscriptionId::new(7));
    let o = s.filters[0].1;
    assert_eq!(o.qos, QoS::AtLeastOnce);
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, RetainHandling::DoNotSend);
}

#[test]
fn rejects_subscribe_without_filters() {
    let e = decode_all(&[0x82, 0x02, 0x00, 0x01], V3).unwrap_err();
    assert_eq!(e, DecodeError::NoTopicFilters);
    assert_eq!(ReasonCode::from(e), ReasonCode::ProtocolError);
    assert_eq!(
        decode_all(&[0xA2, 0x03, 0x00, 0x01, 0x00], V5),
        Err(DecodeError::NoTopicFilters)
    );
}

#[test]
fn rejects_subscribe_with_wrong_flags() {
    assert_eq!(
        decode_all(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00], V3),
        Err(DecodeError::InvalidHeaderFlags {
            packet: PacketType::Subscribe,
            flags: 0
        })
    );
}

#[test]
fn rejects_reserved_subscription_option_bits() {
    let v3 = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04];
    assert_eq!(
        decode_all(&v3, V3),
        Err(DecodeError::SubscriptionOptionsReserved)
    );
    let v5 = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40];
    assert_eq!(
        decode_all(&v5, V5),
        Err(DecodeError::SubscriptionOptionsReserved)
    );
}

#[test]
fn rejects_retain_handling_3() {
    let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30];
    assert_eq!(
        decode_all(&bytes, V5),
        Err(DecodeError::InvalidRetainHandling)
    );
}

#[test]
fn rejects_subscription_qos_3() {
    let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03];
    assert_eq!(decode_all(&bytes, V3), Err(DecodeError::InvalidQoS));
}

#[test]
fn rejects_no_local_on_shared_subscription() {
    // "$share/g/a" with No Local and QoS 0.
    let mut bytes = vec![0x82, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0A];
    bytes.extend_from_slice(b"$share/g/a");
    bytes.push(0x04);
    bytes[1] = (bytes.len() - 2) as u8;
    assert_eq!(
        decode_all(&bytes, V5),
        Err(DecodeError::NoLocalOnSharedSubscription)
    );
}

#[test]
fn rejects_shared_subscription_without_filter() {
    let mut bytes = vec![0x82, 0x00, 0x00, 0x01, 0x00, 0x00, 0x09];
    bytes.extend_from_slice(b"$share/g/");
    bytes.push(0x00);
    bytes[1] = (bytes.len() - 2) as u8;
    assert_eq!(
        decode_all(&bytes, V5),
        Err(DecodeError::InvalidSharedSubscription)
    );
}

#[test]
fn rejects_empty_and_invalid_filters() {
    let empty = [0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00];
    assert_eq!(decode_all(&empty, V3), Err(DecodeError::EmptyTopicFilter));
    let bad = [0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00];
    assert_eq!(decode_all(&bad, V3), Err(DecodeError::InvalidWildcard));
}

#[test]
fn suback_maps_failures_to_0x80_in_v3() {
    let ack = SubAck {
        packet_id: pid(1),
        properties: Default::default(),
        reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
    };
    let mut v3 = BytesMut::new();
    ack.encode(&mut v3, false).unwrap();
    assert_eq!(&v3[..], &[0x90, 0x04, 0x00, 0x01, 0x01, 0x80]);
    let mut v5 = BytesMut::new();
    ack.encode(&mut v5, true).unwrap();
    assert_eq!(&v5[..], &[0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x87]);
    round_trip(&v5, V5);
    let Packet::SubAck(back) = round_trip(&v3, V3) else {
        panic!()
    };
    assert_eq!(
        back.reason_codes,
        [ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError]
    );
}

#[test]
fn rejects_v3_suback_code_outside_v3_table() {
    assert_eq!(
        decode_all(&[0x90, 0x03, 0x00, 0x01, 0x87], V3),
        Err(DecodeError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: 0x87
        })
    );
}

#[test]
fn unsubscribe_and_unsuback_round_trip() {
    let v3 = [0xA2, 0x07, 0x00, 0x02, 0x00, 0x03, b'a', b'/', b'b'];
    let Packet::Unsubscribe(u) = round_trip(&v3, V3) else {
        panic!()
    };
    assert_eq!(u.filters, vec![TopicFilter::try_from("a/b").unwrap()]);
    round_trip(&[0xB0, 0x02, 0x00, 0x02], V3);
    let Packet::UnsubAck(a) = round_trip(&[0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11], V5) else {
        panic!()
    };
    assert_eq!(
        a.reason_codes,
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
}

// ---- PING, DISCONNECT, AUTH ----

#[test]
fn ping_packets_round_trip_and_reject_a_body() {
    assert_eq!(round_trip(&[0xC0, 0x00], V3), Packet::PingReq);
    assert_eq!(round_trip(&[0xD0, 0x00], V5), Packet::PingResp);
    assert_eq!(
        decode_all(&[0xC0, 0x01, 0x00], V3),
        Err(DecodeError::TrailingBytes(1))
    );
    assert_eq!(
        decode_all(&[0xC1, 0x00], V3),
        Err(DecodeError::InvalidHeaderFlags {
            packet: PacketType::PingReq,
            flags: 1
        })
    );
}

#[test]
fn disconnect_forms() {
    let Packet::Disconnect(d) = round_trip(&[0xE0, 0x00], V5) else {
        panic!()
    };
    assert_eq!(d.reason_code, ReasonCode::NORMAL_DISCONNECTION);
    let Packet::Disconnect(d) = round_trip(&[0xE0, 0x01, 0x04], V5) else {
        panic!()
    };
    assert_eq!(d.reason_code, ReasonCode::DisconnectWithWillMessage);
    let Packet::Disconnect(d) = round_trip(&[0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 9], V5) else {
        panic!()
    };
    assert_eq!(d.properties.session_expiry_interval, Some(9));
    round_trip(&[0xE0, 0x00], V3);
    assert_eq!(
        decode_all(&[0xE0, 0x01, 0x00], V3),
        Err(DecodeError::TrailingBytes(1))
    );
    // A server's DISCONNECT to a v3 client has no body.
    let mut out = BytesMut::new();
    Disconnect::new(ReasonCode::ServerShuttingDown)
        .encode(&mut out, false)
        .unwrap();
    assert_eq!(&out[..], &[0xE0, 0x00]);
}

#[test]
fn auth_is_v5_only() {
    let Packet::Auth(a) = round_trip(&[0xF0, 0x01, 0x18], V5) else {
        panic!()
    };
    assert_eq!(a.reason_code, ReasonCode::ContinueAuthentication);
    assert_eq!(
        decode_all(&[0xF0, 0x00], V3),
        Err(DecodeError::ReservedPacketType(15))
    );
}

#[test]
fn auth_has_no_encoded_len_in_v3() {
    // Found by the proptest `v5_packets_encode_for_v3_connections`: `encoded_len` gave 2 for a
    // packet `encode` refuses. AUTH, Success, no properties: F0 00 in MQTT 5 only.
    let auth = Packet::Auth(Auth::default());
    let mut out = BytesMut::new();
    auth.encode(V5, &mut out).unwrap();
    assert_eq!(&out[..], [0xF0, 0x00]);
    assert_eq!(auth.encoded_len(V5), Ok(2));
    assert_eq!(
        auth.encoded_len(V3),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
}

#[test]
fn rejects_packet_type_zero() {
    assert_eq!(
        decode_all(&[0x00, 0x00], V5),
        Err(DecodeError::ReservedPacketType(0))
    );
}

// ---- framing ----

#[test]
fn every_prefix_needs_more_and_consumes_nothing() {
    for fixture in [CONNECT_V311, CONNECT_V5_FULL, PUBLISH_V3_QOS1] {
        for cut in 0..fixture.len() {
            let mut buf = BytesMut::from(&fixture[..cut]);
            assert_eq!(decode(&mut buf, V5, MAX), Ok(None), "prefix of {cut} bytes");
            assert_eq!(buf.len(), cut);
        }
    }
}

#[test]
fn rejects_oversized_packet_from_the_fixed_header_alone() {
    // Remaining length 2,097,152 declared; only the header has arrived.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x01][..]);
    let e = decode(&mut buf, V5, 1024).unwrap_err();
    assert_eq!(
        e,
        DecodeError::PacketTooLarge {
            size: 2_097_157,
            max: 1024
        }
    );
    assert_eq!(ReasonCode::from(e), ReasonCode::PacketTooLarge);
}

#[test]
fn rejects_malformed_remaining_length() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
    assert_eq!(decode(&mut buf, V5, MAX), Err(DecodeError::VarIntTooLong));
    let mut buf = BytesMut::from(&[0xC0, 0x80, 0x00][..]);
    assert_eq!(
        decode(&mut buf, V5, MAX),
        Err(DecodeError::VarIntNotMinimal)
    );
}

#[test]
fn decodes_back_to_back_packets() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(PUBLISH_V3_QOS1);
    buf.extend_from_slice(&[0xC0, 0x00]);
    buf.extend_from_slice(&PUBLISH_V3_QOS1[..4]);
    assert!(matches!(
        decode(&mut buf, V3, MAX),
        Ok(Some(Packet::Publish(_)))
    ));
    assert_eq!(decode(&mut buf, V3, MAX), Ok(Some(Packet::PingReq)));
    assert_eq!(decode(&mut buf, V3, MAX), Ok(None));
    assert_eq!(buf.len(), 4);
}

#[test]
fn encoder_rejects_invalid_values() {
    let mut p = Publish::new(TopicName::empty(), Bytes::new());
    let mut out = BytesMut::new();
    assert_eq!(p.encode(&mut out, true), Err(EncodeError::EmptyTopic));
    p.properties.topic_alias = std::num::NonZeroU16::new(1);
    assert_eq!(p.encode(&mut out, false), Err(EncodeError::EmptyTopic));
    assert!(p.encode(&mut out, true).is_ok());
    let long = MqttString::try_from("x".repeat(70_000)).unwrap();
    let c = Connect::new(ProtocolVersion::V5, long, 0);
    assert_eq!(
        c.encode(&mut BytesMut::new()),
        Err(EncodeError::FieldTooLong(70_000))
    );
    assert_eq!(
        Packet::Auth(Auth::default()).encode(V3, &mut BytesMut::new()),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
}

#[test]
fn encoder_refuses_packets_the_decoder_would_reject() {
    let mut out = BytesMut::new();
    let mut p = Publish::new(TopicName::try_from("t").unwrap(), Bytes::new());
    p.dup = true;
    assert_eq!(
        p.encode(&mut out, true),
        Err(EncodeError::Invalid(DecodeError::DupOnQoS0))
    );
    let mut c = Connect::new(
        ProtocolVersion::V3_1_1,
        MqttString::try_from("c").unwrap(),
        0,
    );
    c.password = Some(Bytes::from_static(b"p"));
    assert_eq!(
        c.encode(&mut out),
        Err(EncodeError::Invalid(DecodeError::PasswordWithoutUsername))
    );
    let s = Subscribe {
        packet_id: pid(1),
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from("$share/g/t").unwrap(),
            SubscriptionOptions {
                no_local: true,
                ..Default::default()
            },
        )],
    };
    assert_eq!(
        s.encode(&mut out, true),
        Err(EncodeError::Invalid(
            DecodeError::NoLocalOnSharedSubscription
        ))
    );
    assert!(out.is_empty(), "nothing written for a refused packet");
}
