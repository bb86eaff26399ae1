//! DISCONNECT (§3.14) and AUTH (§3.15); PINGREQ and PINGRESP have no body and live in the
//! packet enum.

use bytes::{BufMut, BytesMut};

use super::{PacketType, check_remaining, put_fixed_header};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{self, AuthProperties, DisconnectProperties, PropertySet};
use crate::reason::ReasonCode;
use crate::wire::{self, Reader};

/// The last packet of a connection, from either side (§3.14).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason; MQTT 3 DISCONNECTs are always normal.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(mut r: Reader, v5: bool) -> Result<Self, DecodeError> {
        let mut packet = Self::default();
        if v5 && !r.is_empty() {
            packet.reason_code = ReasonCode::decode_for(r.u8()?, PacketType::Disconnect)?;
            if !r.is_empty() {
                packet.properties = properties::decode(&mut r, PacketType::Disconnect)?;
            }
        }
        r.finish()?;
        Ok(packet)
    }

    pub(crate) fn sizes(&self, v5: bool) -> Result<(usize, usize), EncodeError> {
        short_form_sizes(v5, self.reason_code, self.properties.body_len()?)
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, v5: bool) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes(v5)?;
        put_fixed_header(buf, PacketType::Disconnect, 0, remaining);
        put_short_form(buf, remaining, self.reason_code, &self.properties, props);
        Ok(())
    }
}

/// Extended authentication exchange (§3.15); MQTT 5 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Properties: method, data, reason string.
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let mut packet = Self::default();
        if !r.is_empty() {
            packet.reason_code = ReasonCode::decode_for(r.u8()?, PacketType::Auth)?;
            if !r.is_empty() {
                packet.properties = properties::decode(&mut r, PacketType::Auth)?;
            }
        }
        r.finish()?;
        Ok(packet)
    }

    pub(crate) fn sizes(&self) -> Result<(usize, usize), EncodeError> {
        short_form_sizes(true, self.reason_code, self.properties.body_len()?)
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let (remaining, props) = self.sizes()?;
        put_fixed_header(buf, PacketType::Auth, 0, remaining);
        put_short_form(buf, remaining, self.reason_code, &self.properties, props);
        Ok(())
    }
}

/// DISCONNECT and AUTH omit a success reason code with no properties, and the property length
/// with no properties (§3.14.2.1, §3.15.2.1).
fn short_form_sizes(
    v5: bool,
    reason: ReasonCode,
    props: usize,
) -> Result<(usize, usize), EncodeError> {
    if !v5 {
        return Ok((0, 0));
    }
    let len = if props > 0 {
        1 + wire::varint_len(props) + props
    } else if reason != ReasonCode::Success {
        1
    } else {
        0
    };
    Ok((check_remaining(len)?, props))
}

fn put_short_form<P: PropertySet>(
    buf: &mut BytesMut,
    remaining: usize,
    reason: ReasonCode,
    set: &P,
    props: usize,
) {
    if remaining > 0 {
        buf.put_u8(reason.as_u8());
    }
    if remaining > 1 {
        properties::put(set, props, buf);
    }
}
