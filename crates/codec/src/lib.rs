//! MQTT 3.1, 3.1.1 and 5.0 packets: decoding, encoding, topic names and filters. No I/O.
//!
//! [`decode`] reads one packet from a [`bytes::BytesMut`] that may hold a partial packet, and
//! [`Packet::encode`] appends one to a buffer. Every malformed-packet rule of both specs is
//! checked on decode and reported as a [`DecodeError`] naming the rule; `ReasonCode::from(err)`
//! gives the reason code to close the connection with.
//!
//! ```
//! use bytes::BytesMut;
//! use codec::{Packet, ProtocolVersion, decode};
//!
//! // A PINGREQ followed by the first byte of another packet.
//! let mut buf = BytesMut::from(&[0xC0, 0x00, 0x30][..]);
//! let packet = decode(&mut buf, ProtocolVersion::V5, 1024).unwrap();
//! assert_eq!(packet, Some(Packet::PingReq));
//! // The rest is incomplete: "need more", nothing consumed.
//! assert_eq!(decode(&mut buf, ProtocolVersion::V5, 1024).unwrap(), None);
//! assert_eq!(buf.len(), 1);
//! ```

mod error;
mod packet;
mod properties;
mod reason;
mod scan;
mod topic;
mod types;
mod wire;

pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, PubAck, PubComp, PubRec,
    PubRel, Publish, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    decode,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PropertyId, PublishProperties, SubscribeProperties, SubscriptionId,
    UnsubscribeProperties, WillProperties,
};
pub use reason::{ConnectReturnCode, ReasonCode};
pub use topic::{TopicFilter, TopicName, matches};
pub use types::{MqttString, PacketId, ProtocolVersion, QoS, QosPid};
pub use wire::VARINT_MAX;
