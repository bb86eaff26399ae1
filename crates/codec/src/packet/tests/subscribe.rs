//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK: fixtures and rules.

use super::*;

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
