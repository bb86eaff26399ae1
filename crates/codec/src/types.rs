//! Small value types shared by the packets: protocol version, QoS, packet identifiers and
//! validated UTF-8 strings.

use std::fmt;
use std::num::NonZeroU16;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::scan;

/// The protocol version a connection speaks, from the CONNECT protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            Self::V3_1 => 3,
            Self::V3_1_1 => 4,
            Self::V5 => 5,
        }
    }

    /// The protocol name of CONNECT.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }

    /// True for MQTT 5, whose packets carry properties and reason codes.
    pub const fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }
}

/// Quality of service of a PUBLISH or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit value; 3 is [`DecodeError::InvalidQoS`].
    pub fn from_u8(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            _ => Err(DecodeError::InvalidQoS),
        }
    }
}

/// A packet identifier: never zero [MQTT-2.2.1-3].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The identifier for a non-zero value.
    pub const fn new(value: u16) -> Option<Self> {
        match NonZeroU16::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    pub(crate) fn decode(value: u16) -> Result<Self, DecodeError> {
        Self::new(value).ok_or(DecodeError::PacketIdZero)
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(value: NonZeroU16) -> Self {
        Self(value)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The QoS of a PUBLISH together with its packet identifier, which only QoS 1 and 2 carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosPid {
    /// QoS 0: no packet identifier.
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl QosPid {
    /// The QoS alone.
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, for QoS 1 and 2.
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }

    /// Combines a QoS with an identifier; QoS 0 drops the identifier.
    pub const fn from_parts(qos: QoS, id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce(id),
            QoS::ExactlyOnce => Self::ExactlyOnce(id),
        }
    }
}

/// A UTF-8 encoded string as MQTT defines it (§1.5.4): well-formed UTF-8, no U+0000, at most
/// 65,535 bytes on the wire. Holds its bytes as a shared [`Bytes`], so decoding does not copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MqttString(Bytes);

impl MqttString {
    /// Validates bytes as an MQTT string.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        validate(&bytes)?;
        Ok(Self(bytes))
    }

    /// Validates bytes as an MQTT string and says whether it holds `+` or `#`: for a topic
    /// name, one pass over the bytes where the two checks would take two. Most topics are ASCII
    /// without NUL, which settles validity; anything else gets the full check.
    pub(crate) fn from_bytes_find_wildcard(bytes: Bytes) -> Result<(Self, bool), DecodeError> {
        let (plain, wildcard) = scan::classify(&bytes);
        if !plain {
            validate(&bytes)?;
        }
        Ok((Self(bytes), wildcard))
    }

    /// Copies a static string. Panics if it holds U+0000: meant for literals.
    pub fn from_static(s: &'static str) -> Self {
        assert!(!s.contains('\0'), "MQTT strings may not contain U+0000");
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that the bytes are valid UTF-8 and the bytes are
        // immutable afterwards.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks the rules of §1.5.4 that decoding enforces: well-formed UTF-8 and no U+0000.
fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
    // Most strings are ASCII without NUL, which is valid UTF-8: one fast scan settles them, and
    // anything else gets the full check, which decides which error it is.
    if scan::classify(bytes).0 {
        return Ok(());
    }
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    if s.contains('\0') {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

impl TryFrom<&str> for MqttString {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, DecodeError> {
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl TryFrom<String> for MqttString {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Self, DecodeError> {
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self(Bytes::from(s)))
    }
}

impl std::ops::Deref for MqttString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules as first written: std's UTF-8 check, then a search for U+0000.
    fn reference(bytes: &[u8]) -> Result<(), DecodeError> {
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(())
    }

    #[test]
    fn fast_ascii_path_agrees_with_full_check_at_every_offset() {
        // Multi-byte characters, a surrogate (ED A0 80), a stray continuation byte, a truncated
        // sequence and NUL, each placed at every offset of ASCII strings of up to 40 bytes: past
        // the 4-, 16- and 32-byte steps of the vectorised fast pass.
        let inserts: &[&[u8]] = &[
            &[0xC3, 0xA9],
            &[0xF0, 0x9F, 0x98, 0x80],
            &[0xED, 0xA0, 0x80],
            &[0x80],
            &[0xE2, 0x82],
            &[0x00],
            &[0x7F],
        ];
        for len in 0..=40 {
            for at in 0..=len {
                for insert in inserts {
                    let mut s = vec![b'm'; len];
                    s.splice(at..at, insert.iter().copied());
                    let got = MqttString::from_bytes(Bytes::from(s.clone())).map(|_| ());
                    assert_eq!(got, reference(&s), "{s:02x?}");
                }
            }
        }
    }

    #[test]
    fn rejects_null_character() {
        assert_eq!(
            MqttString::try_from("a\0b"),
            Err(DecodeError::NullCharacter)
        );
    }

    #[test]
    fn rejects_encoded_surrogate() {
        // U+D800 encoded as if it were a scalar value: ED A0 80 [MQTT-1.5.4-1].
        let bytes = Bytes::from_static(&[0x61, 0xED, 0xA0, 0x80]);
        assert_eq!(MqttString::from_bytes(bytes), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn accepts_bom_and_multibyte() {
        // The spec's example: U+2A6D4 as F0 AA 9B 94, and U+FEFF which must not be stripped.
        let s = MqttString::from_bytes(Bytes::from_static(&[
            0x41, 0xF0, 0xAA, 0x9B, 0x94, 0xEF, 0xBB, 0xBF,
        ]))
        .unwrap();
        assert_eq!(s.as_str(), "A\u{2A6D4}\u{FEFF}");
    }

    #[test]
    fn packet_id_is_never_zero() {
        assert!(PacketId::new(0).is_none());
        assert_eq!(PacketId::new(7).unwrap().get(), 7);
    }
}
