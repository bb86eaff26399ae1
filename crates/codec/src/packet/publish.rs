//! PUBLISH (§3.3) and its acknowledgements PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–3.7).

use bytes::{BufMut, Bytes, BytesMut};

use super::{Packet, PacketType, check_remaining, put_fixed_header};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{self, AckProperties, PropertySet, PublishProperties};
use crate::reason::ReasonCode;
use crate::topic::TopicName;
use crate::types::{PacketId, QoS, QosPid};
use crate::wire::{self, Reader};

/// An application message on its way (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a redelivery. Always false at QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// QoS with the packet identifier that QoS 1 and 2 carry.
    pub qos: QosPid,
    /// RETAIN.
    pub retain: bool,
    /// The topic. Empty only in MQTT 5 when `properties.topic_alias` stands in for it.
    pub topic: TopicName,
    /// MQTT 5 properties; empty in MQTT 3.
    pub properties: PublishProperties,
    /// The payload, shared with the buffer it was decoded from.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 PUBLISH without properties.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Self {
            dup: false,
            qos: QosPid::AtMostOnce,
            retain: false,
            topic,
            properties: PublishProperties::default(),
            payload,
        }
    }

    /// Decodes a PUBLISH body into the value [`decode`](crate::decode) returns. Returning that
    /// type, built in one expression, lets the packet be written where the caller wants it.
    #[inline(always)]
    pub(crate) fn decode_packet(
        flags: u8,
        mut r: Reader,
        v5: bool,
    ) -> Result<Option<Packet>, DecodeError> {
        let dup = flags & 0b1000 != 0;
        let qos = QoS::from_u8((flags >> 1) & 0b11)?;
        let retain = flags & 0b0001 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQoS0);
        }
        let topic = TopicName::decode_or_empty(r.binary()?)?;
        let qos = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::decode(r.u16()?)?),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(PacketId::decode(r.u16()?)?),
        };
        // Most PUBLISHes have no properties (MQTT 3 never does): build those with the empty
        // set in place rather than moving a decoded set into the packet.
        if !v5 || r.skip_if(0) {
            // [MQTT-3.3.2-1] needs a topic; without properties there is no alias to replace it.
            if topic.is_empty() {
                return Err(DecodeError::EmptyTopicName);
            }
            return Ok(Some(Packet::Publish(Self {
                dup,
                qos,
                retain,
                topic,
                properties: PublishProperties::default(),
                payload: r.rest(),
            })));
        }
        let properties = properties::decode::<PublishProperties>(&mut r, PacketType::Publish)?;
        // [MQTT-3.3.2-1] needs a topic; MQTT 5 allows an empty one when an alias replaces it.
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        Ok(Some(Packet::Publish(Self {
            dup,
            qos,
            retain,
            topic,
            properties,
            payload: r.rest(),
        })))
    }

    /// The size of the encoded PUBLISH in bytes, fixed header included (as
    /// [`Packet::encoded_len`](crate::Packet::encoded_len), without wrapping it in a `Packet`).
    pub fn encoded_len(&self, v5: bool) -> Result<usize, EncodeError> {
        Ok(super::packet_len(self.sizes(v5)?.0))
    }

    /// Remaining length and, in MQTT 5, the property block's body length.
    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        if self.topic.is_empty() && (!v5 || self.properties.topic_alias.is_none()) {
            return Err(EncodeError::EmptyTopic);
        }
        if self.dup && self.qos == QosPid::AtMostOnce {
            return Err(EncodeError::Invalid(DecodeError::DupOnQoS0));
        }
        wire::check_field_len(self.topic.len())?;
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos.packet_id().is_some() {
            len += 2;
        }
        let mut props = 0;
        if v5 {
            props = self.properties.body_len()?;
            len += wire::varint_len(props) + props;
        }
        Ok((check_remaining(len)?, props))
    }

    /// The four flag bits of the fixed header.
    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos.qos() as u8) << 1) | u8::from(self.retain)
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::Publish, self.flags(), remaining);
        wire::put_binary(buf, self.topic.as_bytes());
        if let Some(id) = self.qos.packet_id() {
            buf.put_u16(id.get());
        }
        if v5 {
            properties::put(&self.properties, props, buf);
        }
        buf.put_slice(&self.payload);
        Ok(())
    }
}

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $packet:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The identifier of the PUBLISH flow this belongs to.
            pub packet_id: PacketId,
            /// MQTT 5 reason code; always success in MQTT 3.
            pub reason_code: ReasonCode,
            /// MQTT 5 properties.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement without properties.
            pub fn new(packet_id: PacketId) -> Self {
                Self {
                    packet_id,
                    reason_code: ReasonCode::Success,
                    properties: AckProperties::default(),
                }
            }

            pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
                let packet_id = PacketId::decode(r.u16()?)?;
                let mut ack = Self::new(packet_id);
                // MQTT 5 omits the reason code when it is 0x00 and there are no properties, and
                // the property length when there are no properties (§3.4.2.1).
                if v5 && !r.is_empty() {
                    ack.reason_code = ReasonCode::decode_for(r.u8()?, $packet)?;
                    if !r.is_empty() {
                        ack.properties = properties::decode(&mut r, $packet)?;
                    }
                }
                r.finish()?;
                Ok(ack)
            }

            pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
                if !v5 {
                    return Ok((2, 0));
                }
                let props = self.properties.body_len()?;
                let len = if props > 0 {
                    3 + wire::varint_len(props) + props
                } else if self.reason_code != ReasonCode::Success {
                    3
                } else {
                    2
                };
                Ok((check_remaining(len)?, props))
            }

            /// Appends the encoded packet to `buf`.
            pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
                let (remaining, props) = self.sizes(v5)?;
                put_fixed_header(buf, $packet, $packet.fixed_flags(), remaining);
                buf.put_u16(self.packet_id.get());
                if remaining > 2 {
                    buf.put_u8(self.reason_code.as_u8());
                }
                if remaining > 3 {
                    properties::put(&self.properties, props, buf);
                }
                Ok(())
            }
        }
    };
}

ack_packet!(
    /// Acknowledges a QoS 1 PUBLISH (§3.4).
    PubAck,
    PacketType::PubAck
);
ack_packet!(
    /// First acknowledgement of a QoS 2 PUBLISH (§3.5).
    PubRec,
    PacketType::PubRec
);
ack_packet!(
    /// Releases a QoS 2 PUBLISH after PUBREC (§3.6).
    PubRel,
    PacketType::PubRel
);
ack_packet!(
    /// Completes a QoS 2 flow (§3.7).
    PubComp,
    PacketType::PubComp
);
