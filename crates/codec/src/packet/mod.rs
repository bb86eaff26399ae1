//! The packet enum, the fixed header (§2.1), and the entry points [`decode`] and
//! [`Packet::encode`].

mod connect;
mod control;
mod publish;
mod subscribe;

use bytes::{Buf, BufMut, BytesMut};

pub use connect::{ConnAck, Connect, LastWill};
pub use control::{Auth, Disconnect};
pub use publish::{PubAck, PubComp, PubRec, PubRel, Publish};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::error::{DecodeError, EncodeError};
use crate::types::ProtocolVersion;
use crate::wire::{self, Reader, VARINT_MAX, VarInt};

/// The control packet type, the high nibble of the first byte (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // the names are the spec's
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    fn from_nibble(value: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if version.is_v5() => Self::Auth,
            other => return Err(DecodeError::ReservedPacketType(other)),
        })
    }

    /// The fixed flags of every type but PUBLISH, whose flags carry DUP, QoS and RETAIN.
    const fn fixed_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant holds the struct of the same name
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)`, consuming nothing, when `buf` does not yet hold a whole packet. A packet
/// whose size (fixed header included) exceeds `max_packet_size` is rejected as soon as its
/// fixed header is readable, before its body arrives, so a peer cannot make the receiver buffer
/// it. On success the packet's bytes are split off `buf`; strings and payloads share them.
///
/// `version` is the connection's protocol version, from its CONNECT; a CONNECT itself is
/// decoded by its own protocol level whatever `version` says.
#[inline]
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = PacketType::from_nibble(first >> 4, version)?;
    let flags = first & 0x0F;
    if packet_type != PacketType::Publish && flags != packet_type.fixed_flags() {
        return Err(DecodeError::InvalidHeaderFlags {
            packet: packet_type,
            flags,
        });
    }
    let (remaining, len_len) = match wire::read_varint(&buf[1..])? {
        VarInt::Complete(value, len) => (value as usize, len),
        VarInt::Incomplete => return Ok(None),
    };
    let header_len = 1 + len_len;
    let total = header_len + remaining;
    if total as u64 > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size: total as u64,
            max: max_packet_size,
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    // Drop the fixed header before splitting: one handle on the shared buffer, not two.
    buf.advance(header_len);
    let body = Reader::new(buf.split_to(remaining).freeze());
    decode_body(packet_type, flags, body, version)
}

fn decode_body(
    packet_type: PacketType,
    flags: u8,
    body: Reader,
    version: ProtocolVersion,
) -> Result<Option<Packet>, DecodeError> {
    let v5 = version.is_v5();
    Ok(Some(match packet_type {
        PacketType::Connect => Packet::Connect(Box::new(Connect::decode(body)?)),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(body, v5)?),
        // The hot path returns the caller's type itself: the packet is built where the caller
        // wants it, with no copy of its few hundred bytes on the way out.
        PacketType::Publish => return Publish::decode_packet(flags, body, v5),
        PacketType::PubAck => Packet::PubAck(PubAck::decode(body, v5)?),
        PacketType::PubRec => Packet::PubRec(PubRec::decode(body, v5)?),
        PacketType::PubRel => Packet::PubRel(PubRel::decode(body, v5)?),
        PacketType::PubComp => Packet::PubComp(PubComp::decode(body, v5)?),
        PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(body, v5)?),
        PacketType::SubAck => Packet::SubAck(SubAck::decode(body, v5)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(body, v5)?),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(body, v5)?),
        PacketType::PingReq => {
            body.finish()?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            body.finish()?;
            Packet::PingResp
        }
        PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(body, v5)?),
        PacketType::Auth => Packet::Auth(Auth::decode(body)?),
    }))
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Appends the packet's encoding for `version` to `buf`.
    ///
    /// A CONNECT is encoded in its own protocol version. Fields that `version` lacks (reason
    /// codes and properties in MQTT 3) are left out; a reason code MQTT 3 cannot express maps to
    /// the nearest return code.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = version.is_v5();
        match self {
            Self::Connect(p) => p.encode(buf),
            Self::ConnAck(p) => p.encode(buf, v5),
            Self::Publish(p) => p.encode(buf, v5),
            Self::PubAck(p) => p.encode(buf, v5),
            Self::PubRec(p) => p.encode(buf, v5),
            Self::PubRel(p) => p.encode(buf, v5),
            Self::PubComp(p) => p.encode(buf, v5),
            Self::Subscribe(p) => p.encode(buf, v5),
            Self::SubAck(p) => p.encode(buf, v5),
            Self::Unsubscribe(p) => p.encode(buf, v5),
            Self::UnsubAck(p) => p.encode(buf, v5),
            Self::PingReq => {
                put_fixed_header(buf, PacketType::PingReq, 0, 0);
                Ok(())
            }
            Self::PingResp => {
                put_fixed_header(buf, PacketType::PingResp, 0, 0);
                Ok(())
            }
            Self::Disconnect(p) => p.encode(buf, v5),
            Self::Auth(p) if v5 => p.encode(buf),
            Self::Auth(_) => Err(EncodeError::NotInVersion(PacketType::Auth)),
        }
    }

    /// The size of the encoded packet in bytes, fixed header included, for checking a peer's
    /// Maximum Packet Size before encoding.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let v5 = version.is_v5();
        let remaining = match self {
            Self::Connect(p) => p.sizes()?.0,
            Self::ConnAck(p) => p.sizes(v5)?.0,
            Self::Publish(p) => p.sizes(v5)?.0,
            Self::PubAck(p) => p.sizes(v5)?.0,
            Self::PubRec(p) => p.sizes(v5)?.0,
            Self::PubRel(p) => p.sizes(v5)?.0,
            Self::PubComp(p) => p.sizes(v5)?.0,
            Self::Subscribe(p) => p.sizes(v5)?.0,
            Self::SubAck(p) => p.sizes(v5)?.0,
            Self::Unsubscribe(p) => p.sizes(v5)?.0,
            Self::UnsubAck(p) => p.sizes(v5)?.0,
            Self::PingReq | Self::PingResp => 0,
            Self::Disconnect(p) => p.sizes(v5)?.0,
            Self::Auth(p) if v5 => p.sizes()?.0,
            // As `encode`: a size for a packet that cannot be sent would pass a size check.
            Self::Auth(_) => return Err(EncodeError::NotInVersion(PacketType::Auth)),
        };
        Ok(packet_len(remaining))
    }
}

/// Size of a whole packet whose remaining length is `remaining`.
pub(crate) const fn packet_len(remaining: usize) -> usize {
    1 + wire::varint_len(remaining) + remaining
}

/// Fails when a body is too long for the remaining-length field.
pub(crate) fn check_remaining(remaining: usize) -> Result<usize, EncodeError> {
    if remaining > VARINT_MAX as usize {
        Err(EncodeError::PacketTooLarge(remaining))
    } else {
        Ok(remaining)
    }
}

/// Writes the fixed header; `remaining` was checked by [`check_remaining`].
#[inline]
pub(crate) fn put_fixed_header(
    buf: &mut BytesMut,
    packet: PacketType,
    flags: u8,
    remaining: usize,
) {
    buf.reserve(packet_len(remaining));
    buf.put_u8(((packet as u8) << 4) | flags);
    wire::put_varint(buf, remaining);
}

#[cfg(test)]
mod tests;
