//! CONNECT (§3.1) with its will, and CONNACK (§3.2).

use bytes::{BufMut, Bytes, BytesMut};

use super::{PacketType, check_remaining, put_fixed_header};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{self, ConnAckProperties, ConnectProperties, PropertySet, WillProperties};
use crate::reason::{ConnectReturnCode, ReasonCode};
use crate::topic::TopicName;
use crate::types::{MqttString, ProtocolVersion, QoS};
use crate::wire::{self, Reader};

/// The first packet of a connection (§3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) or Clean Start (5).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier; may be empty.
    pub client_id: MqttString,
    /// The will, if the Will Flag is set.
    pub will: Option<LastWill>,
    /// User name.
    pub username: Option<MqttString>,
    /// Password: binary data. MQTT 5 allows it without a user name.
    pub password: Option<Bytes>,
    /// MQTT 5 properties.
    pub properties: ConnectProperties,
}

/// The Will Message of a CONNECT (§3.1.2.5, §3.1.3.2–3.1.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic.
    pub topic: TopicName,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: WillProperties,
}

const RESERVED: u8 = 0b0000_0001;
const CLEAN_START: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

impl Connect {
    /// A CONNECT with clean start, no will, no credentials and no properties.
    pub fn new(protocol: ProtocolVersion, client_id: MqttString, keep_alive: u16) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT" | b"MQIsdp", other) => {
                return Err(DecodeError::UnsupportedProtocolLevel(other));
            }
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let v5 = protocol.is_v5();
        let flags = r.u8()?;
        if flags & RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & WILL != 0;
        let will_qos = QoS::from_u8((flags >> WILL_QOS_SHIFT) & 0b11)?;
        let will_retain = flags & WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let has_username = flags & USERNAME != 0;
        let has_password = flags & PASSWORD != 0;
        if !v5 && has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if v5 {
            properties::decode(&mut r, PacketType::Connect)?
        } else {
            ConnectProperties::default()
        };
        let client_id = r.string()?;
        let will = if has_will {
            let properties = if v5 {
                // Will properties are checked against the will's own table (§3.1.3.2); report
                // them as CONNECT's.
                properties::decode(&mut r, PacketType::Connect)?
            } else {
                WillProperties::default()
            };
            let topic = TopicName::new(r.string()?)?;
            let payload = r.binary()?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            protocol,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    /// Remaining length, CONNECT property body length, will property body length.
    pub(crate) fn sizes(&self) -> Result<(usize, usize, usize), EncodeError> {
        let v5 = self.protocol.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::Invalid(DecodeError::PasswordWithoutUsername));
        }
        let mut len = 2 + self.protocol.name().len() + 1 + 1 + 2;
        let mut props = 0;
        let mut will_props = 0;
        if v5 {
            props = self.properties.body_len()?;
            len += wire::varint_len(props) + props;
        }
        wire::check_field_len(self.client_id.len())?;
        len += 2 + self.client_id.len();
        if let Some(will) = &self.will {
            if v5 {
                will_props = will.properties.body_len()?;
                len += wire::varint_len(will_props) + will_props;
            }
            wire::check_field_len(will.topic.len())?;
            wire::check_field_len(will.payload.len())?;
            len += 4 + will.topic.len() + will.payload.len();
        }
        if let Some(username) = &self.username {
            wire::check_field_len(username.len())?;
            len += 2 + username.len();
        }
        if let Some(password) = &self.password {
            wire::check_field_len(password.len())?;
            len += 2 + password.len();
        }
        Ok((check_remaining(len)?, props, will_props))
    }

    /// Appends the encoded packet, in its own protocol version, to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let (remaining, props, will_props) = self.sizes()?;
        let v5 = self.protocol.is_v5();
        put_fixed_header(buf, PacketType::Connect, 0, remaining);
        // Protocol name and level are fixed per version: one append instead of three.
        buf.put_slice(match self.protocol {
            ProtocolVersion::V3_1 => b"\x00\x06MQIsdp\x03",
            ProtocolVersion::V3_1_1 => b"\x00\x04MQTT\x04",
            ProtocolVersion::V5 => b"\x00\x04MQTT\x05",
        });
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        let [keep_alive_hi, keep_alive_lo] = self.keep_alive.to_be_bytes();
        buf.put_slice(&[flags, keep_alive_hi, keep_alive_lo]);
        if v5 {
            properties::put(&self.properties, props, buf);
        }
        wire::put_str(buf, &self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                properties::put(&will.properties, will_props, buf);
            }
            wire::put_binary(buf, will.topic.as_bytes());
            wire::put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_str(buf, username);
        }
        if let Some(password) = &self.password {
            wire::put_binary(buf, password);
        }
        Ok(())
    }
}

/// The server's answer to CONNECT (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// The outcome. MQTT 3 connections carry it as the nearest return code.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with the given outcome and no properties.
    pub fn new(reason_code: ReasonCode, session_present: bool) -> Self {
        Self {
            session_present,
            reason_code,
            properties: ConnAckProperties::default(),
        }
    }

    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let session_present = flags & 1 != 0;
        let code = r.u8()?;
        let reason_code = if v5 {
            ReasonCode::decode_for(code, PacketType::ConnAck)?
        } else {
            ConnectReturnCode::from_u8(code)
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::ConnAck,
                    code,
                })?
                .into()
        };
        if session_present && !reason_code.is_success() {
            return Err(DecodeError::SessionPresentOnRefusal);
        }
        let properties = if v5 {
            properties::decode(&mut r, PacketType::ConnAck)?
        } else {
            ConnAckProperties::default()
        };
        r.finish()?;
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        if !v5 {
            return Ok((2, 0));
        }
        let props = self.properties.body_len()?;
        Ok((check_remaining(2 + wire::varint_len(props) + props)?, props))
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::ConnAck, 0, remaining);
        buf.put_u8(u8::from(
            self.session_present && self.reason_code.is_success(),
        ));
        if v5 {
            buf.put_u8(self.reason_code.as_u8());
            properties::put(&self.properties, props, buf);
        } else {
            buf.put_u8(ConnectReturnCode::from(self.reason_code) as u8);
        }
        Ok(())
    }
}
