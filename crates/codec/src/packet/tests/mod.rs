//! Byte-exact fixtures for every packet type, and one test per malformed-packet rule; one file
//! per packet family, sharing the helpers here.

mod connect;
mod control;
mod publish;
mod subscribe;

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
