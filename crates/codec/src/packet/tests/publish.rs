//! PUBLISH and its acknowledgements: fixtures and rules.

use super::*;

/// §3.3.2.3 example: QoS 1 PUBLISH "a/b", packet id 10, payload "hi".
pub(super) const PUBLISH_V3_QOS1: &[u8] = &[
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
