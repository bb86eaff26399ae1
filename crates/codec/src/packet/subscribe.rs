//! SUBSCRIBE (§3.8), SUBACK (§3.9), UNSUBSCRIBE (§3.10) and UNSUBACK (§3.11).

use bytes::{BufMut, BytesMut};

use super::{PacketType, check_remaining, put_fixed_header};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{
    self, AckProperties, PropertySet, SubscribeProperties, UnsubscribeProperties,
};
use crate::reason::ReasonCode;
use crate::topic::TopicFilter;
use crate::types::{PacketId, QoS};
use crate::wire::{self, Reader};

/// When retained messages are sent for a new subscription (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send them only if the subscription did not already exist.
    SendIfNew,
    /// 2: never send them.
    DoNotSend,
}

/// The options byte of one subscription (§3.8.3.1). MQTT 3 carries only the QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not forward the client's own PUBLISHes to it.
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag when forwarding.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this QoS and every other option at its default.
    pub fn with_qos(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }

    fn decode(byte: u8, v5: bool) -> Result<Self, DecodeError> {
        let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(Self {
            qos: QoS::from_u8(byte & 0b11)?,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    fn to_byte(self, v5: bool) -> u8 {
        let mut byte = self.qos as u8;
        if v5 {
            byte |= u8::from(self.no_local) << 2;
            byte |= u8::from(self.retain_as_published) << 3;
            byte |= (self.retain_handling as u8) << 4;
        }
        byte
    }
}

/// A request for one or more subscriptions (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
    /// The filters with their options; never empty [MQTT-3.8.3-2].
    pub filters: Vec<(TopicFilter, SubscriptionOptions)>,
}

impl Subscribe {
    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let packet_id = PacketId::decode(r.u16()?)?;
        let properties = if v5 {
            properties::decode(&mut r, PacketType::Subscribe)?
        } else {
            SubscribeProperties::default()
        };
        // Grows to four entries on the first push: one allocation for the usual few filters.
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = TopicFilter::new(r.string()?)?;
            let options = SubscriptionOptions::decode(r.u8()?, v5)?;
            if options.no_local && filter.is_shared() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Subscribe));
        }
        if v5
            && self
                .filters
                .iter()
                .any(|(f, o)| o.no_local && f.is_shared())
        {
            return Err(EncodeError::Invalid(
                DecodeError::NoLocalOnSharedSubscription,
            ));
        }
        let mut len = 2;
        let mut props = 0;
        if v5 {
            props = self.properties.body_len()?;
            len += wire::varint_len(props) + props;
        }
        for (filter, _) in &self.filters {
            wire::check_field_len(filter.as_str().len())?;
            len += 2 + filter.as_str().len() + 1;
        }
        Ok((check_remaining(len)?, props))
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::Subscribe, 0b0010, remaining);
        buf.put_u16(self.packet_id.get());
        if v5 {
            properties::put(&self.properties, props, buf);
        }
        for (filter, options) in &self.filters {
            wire::put_str(buf, filter.as_mqtt_str());
            buf.put_u8(options.to_byte(v5));
        }
        Ok(())
    }
}

/// The answer to SUBSCRIBE: one reason code per filter, in order (§3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// Granted QoS or failure, per filter. MQTT 3 carries failures as 0x80.
    pub reason_codes: Vec<ReasonCode>,
}

impl SubAck {
    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let packet_id = PacketId::decode(r.u16()?)?;
        let properties = if v5 {
            properties::decode(&mut r, PacketType::SubAck)?
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let code = r.u8()?;
            let reason = if v5 || matches!(code, 0x00 | 0x01 | 0x02 | 0x80) {
                ReasonCode::decode_for(code, PacketType::SubAck)?
            } else {
                return Err(DecodeError::InvalidReasonCode {
                    packet: PacketType::SubAck,
                    code,
                });
            };
            reason_codes.push(reason);
        }
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        let mut len = 2 + self.reason_codes.len();
        let mut props = 0;
        if v5 {
            props = self.properties.body_len()?;
            len += wire::varint_len(props) + props;
        }
        Ok((check_remaining(len)?, props))
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::SubAck, 0, remaining);
        buf.put_u16(self.packet_id.get());
        if v5 {
            properties::put(&self.properties, props, buf);
        }
        for code in &self.reason_codes {
            let byte = code.as_u8();
            // MQTT 3 knows only the granted QoS values and 0x80 "Failure".
            buf.put_u8(if v5 || byte <= 2 { byte } else { 0x80 });
        }
        Ok(())
    }
}

/// A request to remove subscriptions (§3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
    /// The filters to remove; never empty [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
}

impl Unsubscribe {
    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let packet_id = PacketId::decode(r.u16()?)?;
        let properties = if v5 {
            properties::decode(&mut r, PacketType::Unsubscribe)?
        } else {
            UnsubscribeProperties::default()
        };
        // Grows to four entries on the first push: one allocation for the usual few filters.
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(TopicFilter::new(r.string()?)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Unsubscribe));
        }
        let mut len = 2;
        let mut props = 0;
        if v5 {
            props = self.properties.body_len()?;
            len += wire::varint_len(props) + props;
        }
        for filter in &self.filters {
            wire::check_field_len(filter.as_str().len())?;
            len += 2 + filter.as_str().len();
        }
        Ok((check_remaining(len)?, props))
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::Unsubscribe, 0b0010, remaining);
        buf.put_u16(self.packet_id.get());
        if v5 {
            properties::put(&self.properties, props, buf);
        }
        for filter in &self.filters {
            wire::put_str(buf, filter.as_mqtt_str());
        }
        Ok(())
    }
}

/// The answer to UNSUBSCRIBE (§3.11). MQTT 3 carries no reason codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// MQTT 5: one reason code per filter, in order. Empty in MQTT 3.
    pub reason_codes: Vec<ReasonCode>,
}

impl UnsubAck {
    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let packet_id = PacketId::decode(r.u16()?)?;
        let mut ack = Self {
            packet_id,
            properties: AckProperties::default(),
            reason_codes: Vec::new(),
        };
        if v5 {
            ack.properties = properties::decode(&mut r, PacketType::UnsubAck)?;
            while !r.is_empty() {
                ack.reason_codes
                    .push(ReasonCode::decode_for(r.u8()?, PacketType::UnsubAck)?);
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
        let len = 2 + wire::varint_len(props) + props + self.reason_codes.len();
        Ok((check_remaining(len)?, props))
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::UnsubAck, 0, remaining);
        buf.put_u16(self.packet_id.get());
        if v5 {
            properties::put(&self.properties, props, buf);
            for code in &self.reason_codes {
                buf.put_u8(code.as_u8());
            }
        }
        Ok(())
    }
}
