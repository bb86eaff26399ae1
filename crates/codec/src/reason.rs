//! Reason codes: the MQTT 5 reason code table (§2.4) and the MQTT 3.1.1 CONNACK return codes.

use crate::error::DecodeError;
use crate::packet::PacketType;

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// An MQTT 5 reason code (§2.4). Values below 0x80 mean success, 0x80 and above failure.
        ///
        /// The broker uses these for both protocol versions: encoding a v3 CONNACK or SUBACK maps them
        /// onto the v3 return codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The reason code for a byte, if the spec defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// Success; also "Normal disconnection" and "Granted QoS 0".
    Success = 0x00,
    /// SUBACK: the subscription was granted at QoS 1.
    GrantedQoS1 = 0x01,
    /// SUBACK: the subscription was granted at QoS 2.
    GrantedQoS2 = 0x02,
    /// DISCONNECT from a client: close, and publish the Will Message.
    DisconnectWithWillMessage = 0x04,
    /// PUBACK/PUBREC: accepted, but nobody is subscribed.
    NoMatchingSubscribers = 0x10,
    /// UNSUBACK: there was no such subscription.
    NoSubscriptionExisted = 0x11,
    /// AUTH: continue the authentication exchange.
    ContinueAuthentication = 0x18,
    /// AUTH: the client starts re-authentication.
    ReAuthenticate = 0x19,
    /// Unspecified error.
    UnspecifiedError = 0x80,
    /// The packet could not be parsed according to the spec.
    MalformedPacket = 0x81,
    /// The packet parsed but breaks a protocol rule.
    ProtocolError = 0x82,
    /// Valid packet, but this implementation does not accept it.
    ImplementationSpecificError = 0x83,
    /// CONNACK: the protocol version is not supported.
    UnsupportedProtocolVersion = 0x84,
    /// CONNACK: the client identifier is not acceptable.
    ClientIdentifierNotValid = 0x85,
    /// CONNACK: bad user name or password.
    BadUserNameOrPassword = 0x86,
    /// Not authorized.
    NotAuthorized = 0x87,
    /// CONNACK: the server is unavailable.
    ServerUnavailable = 0x88,
    /// The server is busy.
    ServerBusy = 0x89,
    /// The client is banned.
    Banned = 0x8A,
    /// DISCONNECT: the server is shutting down.
    ServerShuttingDown = 0x8B,
    /// The authentication method is not supported.
    BadAuthenticationMethod = 0x8C,
    /// DISCONNECT: nothing was received within 1.5 × keep alive.
    KeepAliveTimeout = 0x8D,
    /// DISCONNECT: another connection took over this session.
    SessionTakenOver = 0x8E,
    /// The topic filter is well formed but not accepted.
    TopicFilterInvalid = 0x8F,
    /// The topic name is well formed but not accepted.
    TopicNameInvalid = 0x90,
    /// The packet identifier is already in use.
    PacketIdentifierInUse = 0x91,
    /// The packet identifier is not known.
    PacketIdentifierNotFound = 0x92,
    /// More unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum.
    ReceiveMaximumExceeded = 0x93,
    /// The topic alias is 0, above the maximum, or unknown.
    TopicAliasInvalid = 0x94,
    /// The packet exceeds the maximum packet size.
    PacketTooLarge = 0x95,
    /// The message rate is too high.
    MessageRateTooHigh = 0x96,
    /// A quota was exceeded.
    QuotaExceeded = 0x97,
    /// DISCONNECT: administrative action.
    AdministrativeAction = 0x98,
    /// The payload does not match the Payload Format Indicator.
    PayloadFormatInvalid = 0x99,
    /// Retained messages are not supported.
    RetainNotSupported = 0x9A,
    /// The QoS is above the Maximum QoS.
    QoSNotSupported = 0x9B,
    /// Use another server, temporarily.
    UseAnotherServer = 0x9C,
    /// Use another server, permanently.
    ServerMoved = 0x9D,
    /// Shared subscriptions are not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// The connection rate limit was exceeded.
    ConnectionRateExceeded = 0x9F,
    /// The maximum connection time was reached.
    MaximumConnectTime = 0xA0,
    /// Subscription identifiers are not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// Wildcard subscriptions are not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    /// "Normal disconnection" (DISCONNECT), the same value as [`ReasonCode::Success`].
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// "Granted QoS 0" (SUBACK), the same value as [`ReasonCode::Success`].
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// True for codes below 0x80.
    pub const fn is_success(self) -> bool {
        (self as u8) < 0x80
    }

    /// The byte on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether the spec allows this code in a packet of this type (the tables of §3.x.2.1).
    pub fn is_allowed_in(self, packet: PacketType) -> bool {
        use ReasonCode::*;
        match packet {
            PacketType::ConnAck => matches!(
                self,
                Success
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | UnsupportedProtocolVersion
                    | ClientIdentifierNotValid
                    | BadUserNameOrPassword
                    | NotAuthorized
                    | ServerUnavailable
                    | ServerBusy
                    | Banned
                    | BadAuthenticationMethod
                    | TopicNameInvalid
                    | PacketTooLarge
                    | QuotaExceeded
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QoSNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | ConnectionRateExceeded
            ),
            PacketType::PubAck | PacketType::PubRec => matches!(
                self,
                Success
                    | NoMatchingSubscribers
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicNameInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | PayloadFormatInvalid
            ),
            PacketType::PubRel | PacketType::PubComp => {
                matches!(self, Success | PacketIdentifierNotFound)
            }
            PacketType::SubAck => matches!(
                self,
                Success
                    | GrantedQoS1
                    | GrantedQoS2
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | SharedSubscriptionsNotSupported
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            PacketType::UnsubAck => matches!(
                self,
                Success
                    | NoSubscriptionExisted
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
            ),
            PacketType::Disconnect => matches!(
                self,
                Success
                    | DisconnectWithWillMessage
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | ServerBusy
                    | ServerShuttingDown
                    | KeepAliveTimeout
                    | SessionTakenOver
                    | TopicFilterInvalid
                    | TopicNameInvalid
                    | ReceiveMaximumExceeded
                    | TopicAliasInvalid
                    | PacketTooLarge
                    | MessageRateTooHigh
                    | QuotaExceeded
                    | AdministrativeAction
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QoSNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | SharedSubscriptionsNotSupported
                    | ConnectionRateExceeded
                    | MaximumConnectTime
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            PacketType::Auth => matches!(self, Success | ContinueAuthentication | ReAuthenticate),
            _ => false,
        }
    }

    /// Decodes a reason code byte for a packet type, rejecting codes the packet may not carry.
    pub(crate) fn decode_for(value: u8, packet: PacketType) -> Result<Self, DecodeError> {
        match Self::from_u8(value) {
            Some(code) if code.is_allowed_in(packet) => Ok(code),
            _ => Err(DecodeError::InvalidReasonCode {
                packet,
                code: value,
            }),
        }
    }
}

impl Default for ReasonCode {
    /// Success.
    fn default() -> Self {
        Self::Success
    }
}

/// An MQTT 3.1.1 CONNACK return code (§3.2.2.3 of 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0x00: connection accepted.
    Accepted = 0,
    /// 0x01: the server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 0x02: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 0x03: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 0x04: the user name or password is malformed or wrong.
    BadUserNameOrPassword = 4,
    /// 0x05: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The return code for a byte, if 3.1.1 defines one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }
}

impl From<ReasonCode> for ConnectReturnCode {
    /// Maps a v5 CONNACK reason onto the nearest v3 return code; failures v3 cannot express become
    /// "server unavailable", as the v5 spec suggests for v3 clients.
    fn from(code: ReasonCode) -> Self {
        match code {
            ReasonCode::Success => Self::Accepted,
            ReasonCode::UnsupportedProtocolVersion => Self::UnacceptableProtocolVersion,
            ReasonCode::ClientIdentifierNotValid => Self::IdentifierRejected,
            ReasonCode::BadUserNameOrPassword => Self::BadUserNameOrPassword,
            ReasonCode::NotAuthorized
            | ReasonCode::Banned
            | ReasonCode::BadAuthenticationMethod => Self::NotAuthorized,
            _ => Self::ServerUnavailable,
        }
    }
}

impl From<ConnectReturnCode> for ReasonCode {
    fn from(code: ConnectReturnCode) -> Self {
        match code {
            ConnectReturnCode::Accepted => Self::Success,
            ConnectReturnCode::UnacceptableProtocolVersion => Self::UnsupportedProtocolVersion,
            ConnectReturnCode::IdentifierRejected => Self::ClientIdentifierNotValid,
            ConnectReturnCode::ServerUnavailable => Self::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword => Self::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized => Self::NotAuthorized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_byte_round_trips() {
        let mut defined = 0;
        for b in 0..=255u8 {
            if let Some(code) = ReasonCode::from_u8(b) {
                assert_eq!(code.as_u8(), b);
                defined += 1;
            }
        }
        assert_eq!(defined, 43);
    }

    #[test]
    fn puback_rejects_codes_outside_its_table() {
        assert!(ReasonCode::Success.is_allowed_in(PacketType::PubAck));
        assert!(!ReasonCode::GrantedQoS1.is_allowed_in(PacketType::PubAck));
        assert!(!ReasonCode::ServerShuttingDown.is_allowed_in(PacketType::PubAck));
    }

    #[test]
    fn v3_return_codes_map_both_ways() {
        for b in 0..=5u8 {
            let rc = ConnectReturnCode::from_u8(b).unwrap();
            assert_eq!(ConnectReturnCode::from(ReasonCode::from(rc)), rc);
        }
        assert_eq!(
            ConnectReturnCode::from(ReasonCode::QuotaExceeded),
            ConnectReturnCode::ServerUnavailable
        );
    }
}
