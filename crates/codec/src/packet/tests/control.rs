//! PINGREQ/PINGRESP, DISCONNECT, AUTH, and framing across packets.

use super::connect::{CONNECT_V5_FULL, CONNECT_V311};
use super::publish::PUBLISH_V3_QOS1;
use super::*;

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
