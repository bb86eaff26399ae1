//! [`Violation`]: what a client did wrong on an established connection, with the rule it broke
//! and the reason code it is told before the connection closes.

use codec::{DecodeError, ReasonCode};

/// A protocol violation by a connected client. Each closes its connection after a DISCONNECT
/// with [`Violation::reason_code`] (v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A packet that does not decode (the codec's error names the rule).
    Malformed(DecodeError),
    /// [MQTT-3.1.0-2]: CONNECT may be sent once.
    SecondConnect,
    /// §4.12: AUTH without enhanced authentication (which the broker does not offer).
    UnexpectedAuth,
    /// A packet only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP).
    ServerOnlyPacket,
    /// [MQTT-3.3.2-9]: a topic alias above the broker's Topic Alias Maximum.
    TopicAliasTooHigh,
    /// §3.3.2.3.4: an empty topic name with a topic alias the client never set.
    UnknownTopicAlias,
    /// A topic name with more levels than the broker accepts (`MAX_TOPIC_LEVELS`).
    TooManyTopicLevels,
    /// [MQTT-3.3.4-9]: more QoS 2 PUBLISHes awaiting PUBREL than the broker's Receive Maximum.
    ReceiveMaximumExceeded,
    /// [MQTT-3.14.2-2]: DISCONNECT may not raise a Session Expiry Interval that was 0.
    SessionExpiryRaisedFromZero,
}

impl Violation {
    /// The reason code of the DISCONNECT that tells the client.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Violation::Malformed(e) => ReasonCode::from(*e),
            Violation::SecondConnect
            | Violation::UnexpectedAuth
            | Violation::ServerOnlyPacket
            | Violation::UnknownTopicAlias
            | Violation::SessionExpiryRaisedFromZero => ReasonCode::ProtocolError,
            Violation::TopicAliasTooHigh => ReasonCode::TopicAliasInvalid,
            Violation::TooManyTopicLevels => ReasonCode::TopicNameInvalid,
            Violation::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Malformed(e) => write!(f, "malformed packet: {e}"),
            Violation::SecondConnect => f.write_str("second CONNECT [MQTT-3.1.0-2]"),
            Violation::UnexpectedAuth => f.write_str("AUTH without enhanced authentication"),
            Violation::ServerOnlyPacket => f.write_str("server-only packet from a client"),
            Violation::TopicAliasTooHigh => f.write_str("topic alias above maximum [MQTT-3.3.2-9]"),
            Violation::UnknownTopicAlias => f.write_str("unknown topic alias"),
            Violation::TooManyTopicLevels => f.write_str("topic name has too many levels"),
            Violation::ReceiveMaximumExceeded => {
                f.write_str("receive maximum exceeded [MQTT-3.3.4-9]")
            }
            Violation::SessionExpiryRaisedFromZero => {
                f.write_str("session expiry raised from 0 at DISCONNECT [MQTT-3.14.2-2]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_maps_to_its_reason_code() {
        assert_eq!(
            Violation::ReceiveMaximumExceeded.reason_code(),
            ReasonCode::ReceiveMaximumExceeded
        );
        assert_eq!(
            Violation::TopicAliasTooHigh.reason_code(),
            ReasonCode::TopicAliasInvalid
        );
        assert_eq!(
            Violation::SecondConnect.reason_code(),
            ReasonCode::ProtocolError
        );
        assert!(
            Violation::SessionExpiryRaisedFromZero
                .to_string()
                .contains("MQTT-3.14.2-2")
        );
    }
}
