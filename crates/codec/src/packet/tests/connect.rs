//! CONNECT and CONNACK fixtures and rules.

use super::*;

/// §3.1.2.10 example (MQTT 3.1.1 layout): client id "abc", keep alive 10, clean session.
pub(super) const CONNECT_V311: &[u8] = &[
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
pub(super) const CONNECT_V5_FULL: &[u8] = &[
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
