//! MQTT 5 properties (§2.2.2): the identifiers, their value types, and one property set per
//! packet kind holding exactly the properties that packet may carry.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::topic::TopicName;
use crate::types::{MqttString, QoS};
use crate::wire::{self, Reader, VARINT_MAX};

/// A property identifier (§2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // the names are the spec's
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// The Payload Format Indicator of a PUBLISH or will (§3.3.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    Unspecified,
    /// 1: UTF-8 encoded character data.
    Utf8,
}

/// A Subscription Identifier: 1 to 268,435,455 (§3.8.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The identifier for a value in 1..=268,435,455.
    pub const fn new(value: u32) -> Option<Self> {
        if value > VARINT_MAX {
            return None;
        }
        match NonZeroU32::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// One decoded property with its typed, range-checked value. Variants keep the spec's names.
#[derive(Debug)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Property {
    PayloadFormatIndicator(PayloadFormat),
    MessageExpiryInterval(u32),
    ContentType(MqttString),
    ResponseTopic(TopicName),
    CorrelationData(Bytes),
    SubscriptionIdentifier(SubscriptionId),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(MqttString),
    ServerKeepAlive(u16),
    AuthenticationMethod(MqttString),
    AuthenticationData(Bytes),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(MqttString),
    ServerReference(MqttString),
    ReasonString(MqttString),
    ReceiveMaximum(NonZeroU16),
    TopicAliasMaximum(u16),
    TopicAlias(NonZeroU16),
    MaximumQoS(QoS),
    RetainAvailable(bool),
    UserProperty(MqttString, MqttString),
    MaximumPacketSize(NonZeroU32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property {
    fn id(&self) -> PropertyId {
        use Property as P;
        use PropertyId as I;
        match self {
            P::PayloadFormatIndicator(_) => I::PayloadFormatIndicator,
            P::MessageExpiryInterval(_) => I::MessageExpiryInterval,
            P::ContentType(_) => I::ContentType,
            P::ResponseTopic(_) => I::ResponseTopic,
            P::CorrelationData(_) => I::CorrelationData,
            P::SubscriptionIdentifier(_) => I::SubscriptionIdentifier,
            P::SessionExpiryInterval(_) => I::SessionExpiryInterval,
            P::AssignedClientIdentifier(_) => I::AssignedClientIdentifier,
            P::ServerKeepAlive(_) => I::ServerKeepAlive,
            P::AuthenticationMethod(_) => I::AuthenticationMethod,
            P::AuthenticationData(_) => I::AuthenticationData,
            P::RequestProblemInformation(_) => I::RequestProblemInformation,
            P::WillDelayInterval(_) => I::WillDelayInterval,
            P::RequestResponseInformation(_) => I::RequestResponseInformation,
            P::ResponseInformation(_) => I::ResponseInformation,
            P::ServerReference(_) => I::ServerReference,
            P::ReasonString(_) => I::ReasonString,
            P::ReceiveMaximum(_) => I::ReceiveMaximum,
            P::TopicAliasMaximum(_) => I::TopicAliasMaximum,
            P::TopicAlias(_) => I::TopicAlias,
            P::MaximumQoS(_) => I::MaximumQoS,
            P::RetainAvailable(_) => I::RetainAvailable,
            P::UserProperty(..) => I::UserProperty,
            P::MaximumPacketSize(_) => I::MaximumPacketSize,
            P::WildcardSubscriptionAvailable(_) => I::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable(_) => I::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable(_) => I::SharedSubscriptionAvailable,
        }
    }

    /// Reads one property: identifier, then a value of the type the identifier fixes.
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        // The identifier is a variable byte integer, but every defined one fits in one byte.
        let id = r.varint()?;
        let flag = |r: &mut Reader, id| match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidPropertyValue(id)),
        };
        use PropertyId as I;
        Ok(match id {
            0x01 => Self::PayloadFormatIndicator(match r.u8()? {
                0 => PayloadFormat::Unspecified,
                1 => PayloadFormat::Utf8,
                _ => return Err(DecodeError::InvalidPropertyValue(I::PayloadFormatIndicator)),
            }),
            0x02 => Self::MessageExpiryInterval(r.u32()?),
            0x03 => Self::ContentType(r.string()?),
            0x08 => Self::ResponseTopic(TopicName::new(r.string()?)?),
            0x09 => Self::CorrelationData(r.binary()?),
            0x0B => Self::SubscriptionIdentifier(
                SubscriptionId::new(r.varint()?)
                    .ok_or(DecodeError::InvalidPropertyValue(I::SubscriptionIdentifier))?,
            ),
            0x11 => Self::SessionExpiryInterval(r.u32()?),
            0x12 => Self::AssignedClientIdentifier(r.string()?),
            0x13 => Self::ServerKeepAlive(r.u16()?),
            0x15 => Self::AuthenticationMethod(r.string()?),
            0x16 => Self::AuthenticationData(r.binary()?),
            0x17 => Self::RequestProblemInformation(flag(r, I::RequestProblemInformation)?),
            0x18 => Self::WillDelayInterval(r.u32()?),
            0x19 => Self::RequestResponseInformation(flag(r, I::RequestResponseInformation)?),
            0x1A => Self::ResponseInformation(r.string()?),
            0x1C => Self::ServerReference(r.string()?),
            0x1F => Self::ReasonString(r.string()?),
            0x21 => Self::ReceiveMaximum(
                NonZeroU16::new(r.u16()?)
                    .ok_or(DecodeError::InvalidPropertyValue(I::ReceiveMaximum))?,
            ),
            0x22 => Self::TopicAliasMaximum(r.u16()?),
            0x23 => Self::TopicAlias(NonZeroU16::new(r.u16()?).ok_or(DecodeError::TopicAliasZero)?),
            0x24 => Self::MaximumQoS(match r.u8()? {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => return Err(DecodeError::InvalidPropertyValue(I::MaximumQoS)),
            }),
            0x25 => Self::RetainAvailable(flag(r, I::RetainAvailable)?),
            0x26 => {
                let name = r.string()?;
                Self::UserProperty(name, r.string()?)
            }
            0x27 => Self::MaximumPacketSize(
                NonZeroU32::new(r.u32()?)
                    .ok_or(DecodeError::InvalidPropertyValue(I::MaximumPacketSize))?,
            ),
            0x28 => Self::WildcardSubscriptionAvailable(flag(r, I::WildcardSubscriptionAvailable)?),
            0x29 => {
                Self::SubscriptionIdentifierAvailable(flag(r, I::SubscriptionIdentifierAvailable)?)
            }
            0x2A => Self::SharedSubscriptionAvailable(flag(r, I::SharedSubscriptionAvailable)?),
            other => {
                return Err(DecodeError::UnknownProperty(
                    u8::try_from(other).unwrap_or(u8::MAX),
                ));
            }
        })
    }
}

/// A property value that knows its wire size and encoding.
pub(crate) trait PropertyValue {
    /// Bytes after the identifier.
    fn size(&self) -> Result<usize, EncodeError>;
    fn put(&self, buf: &mut BytesMut);
}

impl PropertyValue for u16 {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u16(*self);
    }
}

impl PropertyValue for u32 {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u32(*self);
    }
}

impl PropertyValue for NonZeroU16 {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u16(self.get());
    }
}

impl PropertyValue for NonZeroU32 {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u32(self.get());
    }
}

impl PropertyValue for bool {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(*self));
    }
}

impl PropertyValue for QoS {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8);
    }
}

impl PropertyValue for PayloadFormat {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(match self {
            PayloadFormat::Unspecified => 0,
            PayloadFormat::Utf8 => 1,
        });
    }
}

impl PropertyValue for SubscriptionId {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(wire::varint_len(self.get() as usize))
    }
    fn put(&self, buf: &mut BytesMut) {
        wire::put_varint(buf, self.get() as usize);
    }
}

impl PropertyValue for Bytes {
    fn size(&self) -> Result<usize, EncodeError> {
        wire::check_field_len(self.len())?;
        Ok(2 + self.len())
    }
    fn put(&self, buf: &mut BytesMut) {
        wire::put_binary(buf, self);
    }
}

impl PropertyValue for MqttString {
    fn size(&self) -> Result<usize, EncodeError> {
        self.as_bytes().size()
    }
    fn put(&self, buf: &mut BytesMut) {
        self.as_bytes().put(buf);
    }
}

impl PropertyValue for TopicName {
    fn size(&self) -> Result<usize, EncodeError> {
        self.as_bytes().size()
    }
    fn put(&self, buf: &mut BytesMut) {
        self.as_bytes().put(buf);
    }
}

impl PropertyValue for (MqttString, MqttString) {
    fn size(&self) -> Result<usize, EncodeError> {
        Ok(self.0.size()? + self.1.size()?)
    }
    fn put(&self, buf: &mut BytesMut) {
        self.0.put(buf);
        self.1.put(buf);
    }
}

/// A packet's property set: built from decoded properties, and encoded back.
pub(crate) trait PropertySet: Default {
    /// Adds a decoded property, rejecting one the packet may not carry or a repeat.
    fn apply(&mut self, p: Property, packet: PacketType) -> Result<(), DecodeError>;
    /// Length of the encoded properties, without the length prefix.
    fn body_len(&self) -> Result<usize, EncodeError>;
    /// Writes the properties, without the length prefix.
    fn put(&self, buf: &mut BytesMut);
}

fn set_once<T>(slot: &mut Option<T>, value: T, id: PropertyId) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads a property length and the properties it covers.
pub(crate) fn decode<P: PropertySet>(r: &mut Reader, packet: PacketType) -> Result<P, DecodeError> {
    let len = r.varint()?;
    let mut block = r.sub(len as usize)?;
    let mut set = P::default();
    while !block.is_empty() {
        set.apply(Property::read(&mut block)?, packet)?;
    }
    Ok(set)
}

/// Writes a property block with its length prefix; `body_len` comes from [`PropertySet::body_len`].
pub(crate) fn put<P: PropertySet>(set: &P, body_len: usize, buf: &mut BytesMut) {
    wire::put_varint(buf, body_len);
    // Most packets carry no properties: skip walking every field of the set.
    if body_len > 0 {
        set.put(buf);
    }
}

macro_rules! property_set {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $variant:ident, )*
        }
        $( repeated { $( $(#[$rdoc:meta])* $rfield:ident: $rty:ty = $rvariant:ident, )* } )?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Option<$ty>, )*
            $($( $(#[$rdoc])* pub $rfield: Vec<$rty>, )*)?
            /// User Property (0x26): name-value pairs in the order received; names may repeat.
            pub user_properties: Vec<(MqttString, MqttString)>,
        }

        impl PropertySet for $name {
            fn apply(&mut self, p: Property, packet: PacketType) -> Result<(), DecodeError> {
                match p {
                    $( Property::$variant(v) => set_once(&mut self.$field, v, PropertyId::$variant), )*
                    $($( Property::$rvariant(v) => {
                        self.$rfield.push(v);
                        Ok(())
                    } )*)?
                    Property::UserProperty(k, v) => {
                        self.user_properties.push((k, v));
                        Ok(())
                    }
                    other => Err(DecodeError::PropertyNotAllowed { property: other.id(), packet }),
                }
            }

            fn body_len(&self) -> Result<usize, EncodeError> {
                let mut len = 0;
                $( if let Some(v) = &self.$field { len += 1 + v.size()?; } )*
                $($( for v in &self.$rfield { len += 1 + v.size()?; } )*)?
                for pair in &self.user_properties {
                    len += 1 + pair.size()?;
                }
                Ok(len)
            }

            fn put(&self, buf: &mut BytesMut) {
                $( if let Some(v) = &self.$field {
                    buf.put_u8(PropertyId::$variant as u8);
                    v.put(buf);
                } )*
                $($( for v in &self.$rfield {
                    buf.put_u8(PropertyId::$rvariant as u8);
                    v.put(buf);
                } )*)?
                for pair in &self.user_properties {
                    buf.put_u8(PropertyId::UserProperty as u8);
                    pair.put(buf);
                }
            }

        }

        impl $name {
            /// True when no property is set.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )* $($( && self.$rfield.is_empty() )*)?
                    && self.user_properties.is_empty()
            }
        }
    };
}

property_set! {
    /// Properties of CONNECT (§3.1.2.11).
    ConnectProperties {
        /// Seconds the session lives after the connection closes; absent means 0.
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISHes the client will process at once; absent means 65,535.
        receive_maximum: NonZeroU16 = ReceiveMaximum,
        /// The largest packet the client accepts; absent means no limit beyond the protocol's.
        maximum_packet_size: NonZeroU32 = MaximumPacketSize,
        /// The highest topic alias the client accepts from the server; absent means 0.
        topic_alias_maximum: u16 = TopicAliasMaximum,
        /// Whether the client wants Response Information in CONNACK.
        request_response_information: bool = RequestResponseInformation,
        /// Whether the server may send Reason Strings and User Properties on failures.
        request_problem_information: bool = RequestProblemInformation,
        /// Extended authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Extended authentication data.
        authentication_data: Bytes = AuthenticationData,
    }
}

property_set! {
    /// Properties of the will in a CONNECT payload (§3.1.3.2).
    WillProperties {
        /// Seconds to wait before publishing the will.
        will_delay_interval: u32 = WillDelayInterval,
        /// Whether the will payload is UTF-8.
        payload_format_indicator: PayloadFormat = PayloadFormatIndicator,
        /// Lifetime of the will message in seconds.
        message_expiry_interval: u32 = MessageExpiryInterval,
        /// MIME-like description of the payload.
        content_type: MqttString = ContentType,
        /// Topic for a response.
        response_topic: TopicName = ResponseTopic,
        /// Data relating a response to its request.
        correlation_data: Bytes = CorrelationData,
    }
}

property_set! {
    /// Properties of CONNACK (§3.2.2.3).
    ConnAckProperties {
        /// The session expiry interval the server uses, when it differs from the client's.
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISHes the server will process at once.
        receive_maximum: NonZeroU16 = ReceiveMaximum,
        /// The highest QoS the server supports (0 or 1; absent means 2).
        maximum_qos: QoS = MaximumQoS,
        /// Whether the server supports retained messages (absent means yes).
        retain_available: bool = RetainAvailable,
        /// The largest packet the server accepts.
        maximum_packet_size: NonZeroU32 = MaximumPacketSize,
        /// The client identifier the server assigned to a client that sent an empty one.
        assigned_client_identifier: MqttString = AssignedClientIdentifier,
        /// The highest topic alias the server accepts.
        topic_alias_maximum: u16 = TopicAliasMaximum,
        /// Human-readable diagnostics.
        reason_string: MqttString = ReasonString,
        /// Whether wildcard subscriptions are supported (absent means yes).
        wildcard_subscription_available: bool = WildcardSubscriptionAvailable,
        /// Whether subscription identifiers are supported (absent means yes).
        subscription_identifier_available: bool = SubscriptionIdentifierAvailable,
        /// Whether shared subscriptions are supported (absent means yes).
        shared_subscription_available: bool = SharedSubscriptionAvailable,
        /// The keep alive the server imposes, overriding the client's.
        server_keep_alive: u16 = ServerKeepAlive,
        /// Basis for a response topic.
        response_information: MqttString = ResponseInformation,
        /// Another server to use.
        server_reference: MqttString = ServerReference,
        /// Extended authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Extended authentication data.
        authentication_data: Bytes = AuthenticationData,
    }
}

property_set! {
    /// Properties of PUBLISH (§3.3.2.3).
    PublishProperties {
        /// Whether the payload is UTF-8.
        payload_format_indicator: PayloadFormat = PayloadFormatIndicator,
        /// Lifetime of the message in seconds.
        message_expiry_interval: u32 = MessageExpiryInterval,
        /// Stands in for the topic name on this connection.
        topic_alias: NonZeroU16 = TopicAlias,
        /// Topic for a response.
        response_topic: TopicName = ResponseTopic,
        /// Data relating a response to its request.
        correlation_data: Bytes = CorrelationData,
        /// MIME-like description of the payload.
        content_type: MqttString = ContentType,
    }
    repeated {
        /// Identifiers of the matching subscriptions (server to client only).
        subscription_identifiers: SubscriptionId = SubscriptionIdentifier,
    }
}

property_set! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
    AckProperties {
        /// Human-readable diagnostics.
        reason_string: MqttString = ReasonString,
    }
}

property_set! {
    /// Properties of SUBSCRIBE (§3.8.2.1).
    SubscribeProperties {
        /// Identifier attached to every subscription of this SUBSCRIBE.
        subscription_identifier: SubscriptionId = SubscriptionIdentifier,
    }
}

property_set! {
    /// Properties of UNSUBSCRIBE (§3.10.2.1): user properties only.
    UnsubscribeProperties {}
}

property_set! {
    /// Properties of DISCONNECT (§3.14.2.2).
    DisconnectProperties {
        /// New session expiry interval (client to server only).
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// Human-readable diagnostics.
        reason_string: MqttString = ReasonString,
        /// Another server to use.
        server_reference: MqttString = ServerReference,
    }
}

property_set! {
    /// Properties of AUTH (§3.15.2.2).
    AuthProperties {
        /// Extended authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Extended authentication data.
        authentication_data: Bytes = AuthenticationData,
        /// Human-readable diagnostics.
        reason_string: MqttString = ReasonString,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_publish(bytes: &'static [u8]) -> Result<PublishProperties, DecodeError> {
        decode(
            &mut Reader::new(Bytes::from_static(bytes)),
            PacketType::Publish,
        )
    }

    #[test]
    fn decodes_publish_properties() {
        // length 15: message expiry 60, topic alias 3, user property ("k", "v")
        let p = decode_publish(&[
            15, 0x02, 0, 0, 0, 60, 0x23, 0, 3, 0x26, 0, 1, b'k', 0, 1, b'v',
        ])
        .unwrap();
        assert_eq!(p.message_expiry_interval, Some(60));
        assert_eq!(p.topic_alias.map(|a| a.get()), Some(3));
        assert_eq!(p.user_properties.len(), 1);
        assert_eq!(p.user_properties[0].0, "k");
        assert_eq!(p.user_properties[0].1, "v");
    }

    #[test]
    fn rejects_property_block_longer_than_packet() {
        // Declares 13 bytes, holds 12.
        let e = decode_publish(&[13, 0x02, 0, 0, 0, 60, 0x23, 0, 3, 0x26, 0, 1, b'k']);
        assert_eq!(e, Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn rejects_duplicate_property() {
        // Message Expiry Interval twice.
        let e = decode_publish(&[10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::DuplicateProperty(PropertyId::MessageExpiryInterval)
        );
    }

    #[test]
    fn allows_repeated_subscription_identifiers_in_publish() {
        let p = decode_publish(&[4, 0x0B, 1, 0x0B, 2]).unwrap();
        let ids: Vec<u32> = p.subscription_identifiers.iter().map(|s| s.get()).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn rejects_property_not_allowed_in_packet() {
        // Session Expiry Interval in PUBLISH.
        let e = decode_publish(&[5, 0x11, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::PropertyNotAllowed {
                property: PropertyId::SessionExpiryInterval,
                packet: PacketType::Publish
            }
        );
    }

    #[test]
    fn rejects_topic_alias_zero() {
        assert_eq!(
            decode_publish(&[3, 0x23, 0, 0]),
            Err(DecodeError::TopicAliasZero)
        );
    }

    #[test]
    fn rejects_unknown_property() {
        assert_eq!(
            decode_publish(&[2, 0x05, 0]),
            Err(DecodeError::UnknownProperty(0x05))
        );
    }

    #[test]
    fn rejects_out_of_range_values() {
        assert_eq!(
            decode_publish(&[2, 0x01, 2]),
            Err(DecodeError::InvalidPropertyValue(
                PropertyId::PayloadFormatIndicator
            ))
        );
        assert_eq!(
            decode_publish(&[2, 0x0B, 0]),
            Err(DecodeError::InvalidPropertyValue(
                PropertyId::SubscriptionIdentifier
            ))
        );
        let e = decode::<ConnectProperties>(
            &mut Reader::new(Bytes::from_static(&[3, 0x21, 0, 0])),
            PacketType::Connect,
        );
        assert_eq!(
            e,
            Err(DecodeError::InvalidPropertyValue(
                PropertyId::ReceiveMaximum
            ))
        );
    }

    #[test]
    fn rejects_wildcard_response_topic() {
        assert_eq!(
            decode_publish(&[4, 0x08, 0, 1, b'#']),
            Err(DecodeError::WildcardInTopicName)
        );
    }

    #[test]
    fn encodes_what_it_decodes() {
        let bytes: &[u8] = &[8, 0x02, 0, 0, 0, 60, 0x23, 0, 3];
        let p = decode_publish(&[8, 0x02, 0, 0, 0, 60, 0x23, 0, 3]).unwrap();
        assert_eq!(p.message_expiry_interval, Some(60));
        let mut out = BytesMut::new();
        let body = p.body_len().unwrap();
        put(&p, body, &mut out);
        assert_eq!(&out[..], bytes);
    }
}
