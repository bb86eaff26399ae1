//! Decode and encode errors. Each decode error names the spec rule it enforces and maps to the
//! reason code the receiver must use when it closes the connection.

use crate::packet::PacketType;
use crate::properties::PropertyId;
use crate::reason::{ConnectReturnCode, ReasonCode};

/// Why a byte sequence is not a valid MQTT packet. The peer caused it.
///
/// `Copy + Eq` so tests compare errors directly. `From<DecodeError> for ReasonCode` gives the
/// v5 reason code for the DISCONNECT (or CONNACK) that must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The variable byte integer ran past four bytes.
    #[error("variable byte integer longer than 4 bytes [MQTT-1.5.5]")]
    VarIntTooLong,
    /// The variable byte integer was not in its shortest form.
    #[error("variable byte integer not in its shortest form [MQTT-1.5.5-1]")]
    VarIntNotMinimal,
    /// The packet is larger than the receiver's maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// Packet type 0, or AUTH (15) in MQTT 3.
    #[error("reserved packet type {0} [MQTT-2.1.2]")]
    ReservedPacketType(u8),
    /// The low four bits of the fixed header do not have the values the spec fixes.
    #[error("invalid fixed header flags {flags:#06b} for {packet:?} [MQTT-2.1.3-1]")]
    InvalidHeaderFlags {
        /// The packet type.
        packet: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A PUBLISH, will or subscription QoS of 3.
    #[error("QoS 3 is not a valid QoS [MQTT-3.3.1-4]")]
    InvalidQoS,
    /// A QoS 0 PUBLISH with the DUP flag set.
    #[error("DUP flag set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupOnQoS0,
    /// A field ran past the end of the packet's remaining length.
    #[error("field runs past the end of the packet [MQTT-1.5]")]
    UnexpectedEnd,
    /// Bytes were left over after the last field.
    #[error("{0} unexpected bytes after the end of the packet")]
    TrailingBytes(usize),
    /// A UTF-8 string is not well-formed UTF-8 (this includes encoded surrogates).
    #[error("string is not well-formed UTF-8 [MQTT-1.5.4-1]")]
    InvalidUtf8,
    /// A UTF-8 string contains U+0000.
    #[error("string contains the null character U+0000 [MQTT-1.5.4-2]")]
    NullCharacter,
    /// The CONNECT protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("unknown protocol name [MQTT-3.1.2-1]")]
    InvalidProtocolName,
    /// The CONNECT protocol level is not 3, 4 or 5, or does not fit the protocol name.
    #[error("unsupported protocol level {0} [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel(u8),
    /// The reserved bit of the CONNECT flags is set.
    #[error("reserved CONNECT flag bit is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain is set without the Will Flag.
    #[error("will QoS or will retain set without the will flag [MQTT-3.1.2-11]")]
    WillFlagsWithoutWill,
    /// MQTT 3.1.1: password flag set without the user name flag.
    #[error("password flag set without the user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// Reserved CONNACK acknowledge flags are set.
    #[error("reserved CONNACK flags are set [MQTT-3.2.2-1]")]
    ConnAckReservedFlags,
    /// A CONNACK that refuses the connection also claims a session is present.
    #[error("session present set on a refused connection [MQTT-3.2.2-6]")]
    SessionPresentOnRefusal,
    /// A reason or return code the packet type may not carry.
    #[error("reason code {code:#04x} is not allowed in {packet:?}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code received.
        code: u8,
    },
    /// A packet identifier of 0.
    #[error("packet identifier 0 [MQTT-2.2.1-3]")]
    PacketIdZero,
    /// A topic name is empty (and, in v5, no topic alias stands in for it).
    #[error("empty topic name [MQTT-4.7.3-1]")]
    EmptyTopicName,
    /// A topic name contains `+` or `#`.
    #[error("wildcard in a topic name [MQTT-3.3.2-2]")]
    WildcardInTopicName,
    /// A topic filter is empty.
    #[error("empty topic filter [MQTT-4.7.3-1]")]
    EmptyTopicFilter,
    /// `#` is not the last character or not a whole level, or `+` is not a whole level.
    #[error("wildcard not on a whole level or `#` not last [MQTT-4.7.1-1]")]
    InvalidWildcard,
    /// A `$share/` filter with an empty or invalid share name, or without a filter.
    #[error("invalid shared subscription [MQTT-4.8.2-1]")]
    InvalidSharedSubscription,
    /// SUBSCRIBE or UNSUBSCRIBE with no topic filter.
    #[error("no topic filter in the packet [MQTT-3.8.3-2]")]
    NoTopicFilters,
    /// Reserved bits of the subscription options are set.
    #[error("reserved subscription option bits are set [MQTT-3.8.3-5]")]
    SubscriptionOptionsReserved,
    /// Retain Handling of 3.
    #[error("retain handling 3 is not valid [MQTT-3.8.3-6]")]
    InvalidRetainHandling,
    /// No Local set on a shared subscription.
    #[error("no local set on a shared subscription [MQTT-3.8.3-4]")]
    NoLocalOnSharedSubscription,
    /// A property identifier the spec does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    /// A property that may appear once appeared twice.
    #[error("property {0:?} appears more than once [MQTT-2.2.2-2]")]
    DuplicateProperty(PropertyId),
    /// A property that the packet type may not carry.
    #[error("property {property:?} is not allowed in {packet:?}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet type.
        packet: PacketType,
    },
    /// A property value outside its allowed range (for example Receive Maximum 0).
    #[error("invalid value for property {0:?}")]
    InvalidPropertyValue(PropertyId),
    /// A Topic Alias of 0.
    #[error("topic alias 0 [MQTT-3.3.2-8]")]
    TopicAliasZero,
}

impl DecodeError {
    /// True when this error belongs to the connection's first packet and must be answered with a
    /// CONNACK (for example an unsupported protocol version) rather than a DISCONNECT.
    pub fn is_connect_refusal(self) -> bool {
        matches!(self, Self::UnsupportedProtocolLevel(_))
    }
}

impl From<DecodeError> for ReasonCode {
    fn from(e: DecodeError) -> Self {
        use DecodeError::*;
        match e {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            UnsupportedProtocolLevel(_) => ReasonCode::UnsupportedProtocolVersion,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
            DuplicateProperty(_)
            | PropertyNotAllowed { .. }
            | InvalidPropertyValue(_)
            | NoTopicFilters
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | SessionPresentOnRefusal
            | EmptyTopicName => ReasonCode::ProtocolError,
            VarIntTooLong
            | VarIntNotMinimal
            | ReservedPacketType(_)
            | InvalidHeaderFlags { .. }
            | InvalidQoS
            | DupOnQoS0
            | UnexpectedEnd
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | InvalidProtocolName
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | PasswordWithoutUsername
            | ConnAckReservedFlags
            | InvalidReasonCode { .. }
            | PacketIdZero
            | WildcardInTopicName
            | EmptyTopicFilter
            | InvalidWildcard
            | InvalidSharedSubscription
            | SubscriptionOptionsReserved
            | UnknownProperty(_) => ReasonCode::MalformedPacket,
        }
    }
}

impl From<DecodeError> for ConnectReturnCode {
    /// MQTT 3.1.1 only answers an unsupported protocol level with a CONNACK (0x01); every other
    /// malformed CONNECT closes the connection without one [MQTT-3.1.4-1].
    fn from(e: DecodeError) -> Self {
        ConnectReturnCode::from(ReasonCode::from(e))
    }
}

/// Why a packet value cannot be encoded. The caller built an invalid value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes exceeds the 65535-byte limit of a length-prefixed field")]
    FieldTooLong(usize),
    /// The packet's remaining length exceeds 268,435,455 bytes.
    #[error("packet body of {0} bytes exceeds the 268435455-byte protocol limit")]
    PacketTooLarge(usize),
    /// A subscription identifier above 268,435,455.
    #[error("value {0} does not fit a variable byte integer")]
    VarIntOutOfRange(u32),
    /// A PUBLISH with an empty topic and no topic alias, or an empty topic in MQTT 3.
    #[error("PUBLISH has an empty topic and no topic alias")]
    EmptyTopic,
    /// The packet type does not exist in the protocol version (AUTH in MQTT 3).
    #[error("{0:?} does not exist in MQTT 3")]
    NotInVersion(PacketType),
    /// The value breaks a rule the decoder enforces, so the peer would reject the packet:
    /// DUP on QoS 0, an MQTT 3.1.1 password without a user name, No Local on a shared
    /// subscription.
    #[error("packet breaks a protocol rule: {0}")]
    Invalid(DecodeError),
    /// SUBSCRIBE/UNSUBSCRIBE without topic filters, or SUBACK/UNSUBACK without reason codes.
    #[error("{0:?} needs at least one entry in its payload")]
    EmptyPayload(PacketType),
}
