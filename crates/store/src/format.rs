//! The byte format of stored values: hand-written, compact and deterministic.
//!
//! Every value starts with a format version byte ([`VERSION`]). Integers are big-endian;
//! strings and byte strings carry a `u32` length; optional fields carry a presence flag (a bit
//! of a flags byte, or a byte of their own); times are seconds and nanoseconds since the Unix
//! epoch. Decoding checks every length against the bytes left, every flag and every codec rule
//! (UTF-8, topic names and filters, non-zero ids) and rejects trailing bytes: bad bytes are an
//! error, never a panic.
//!
//! - message (`messages`, `retained`): version, flags (bit 0 retain, bits 1–2 QoS, bit 3 expiry
//!   present), [expiry], topic, properties, payload.
//! - properties: presence bits (0 payload format, 1 message expiry, 2 topic alias, 3 response
//!   topic, 4 correlation data, 5 content type), the present values in that order, then the
//!   subscription identifiers and the user properties, each a `u32` count and the items.
//! - session (`sessions`, the client id is the key): version, expiry (0 never, 1 after +
//!   duration), disconnected at (flag + time), user name (flag + string), subscriptions (count,
//!   then filter, the v5 options byte, identifier or 0), will (flag, then message without
//!   version byte and delay).
//! - queue entry (`queue`): version, message id, flags (bits 0–1 QoS, bit 2 retain, bits 3–4
//!   state), packet id or 0, subscription identifiers (count + `u32`s).

use std::num::NonZeroU16;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codec::{
    DecodeError, MqttString, PacketId, PayloadFormat, PublishProperties, QoS, RetainHandling,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
};

use crate::record::{
    EntryState, MessageRecord, QueueEntry, SessionExpiry, SessionRecord, SubscriptionRecord,
    WillRecord,
};

/// The format version written in front of every value.
pub(crate) const VERSION: u8 = 1;

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// Fewer bytes than the fields need.
    #[error("value ends early")]
    End,
    /// A version this build does not know.
    #[error("unknown format version {0}")]
    Version(u8),
    /// Bytes after the last field.
    #[error("{0} bytes after the value")]
    Trailing(usize),
    /// A field out of its range.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A field the codec rejects.
    #[error("invalid {0}: {1}")]
    Codec(&'static str, DecodeError),
}

/// Appends fields to a value.
struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Self(vec![VERSION])
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn len(&mut self, len: usize) {
        // Nothing the broker holds reaches 4 GiB: a packet is at most 256 MiB.
        self.u32(u32::try_from(len).expect("stored fields are shorter than 4 GiB"));
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }

    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u32(d.subsec_nanos());
    }

    fn time(&mut self, t: SystemTime) {
        self.duration(t.duration_since(UNIX_EPOCH).unwrap_or_default());
    }
}

/// Reads fields from a value, checking every length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Starts after the version byte, which must be [`VERSION`].
    fn new(buf: &'a [u8]) -> Result<Self, FormatError> {
        let mut r = Self(buf);
        match r.u8()? {
            VERSION => Ok(r),
            other => Err(FormatError::Version(other)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::End);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, FormatError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(FormatError::Invalid(what)),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A count of items, each at least `min_size` bytes: never more than the bytes left allow,
    /// so a corrupt count cannot make us allocate much.
    fn count(&mut self, min_size: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(FormatError::End);
        }
        Ok(n)
    }

    fn string(&mut self, what: &'static str) -> Result<MqttString, FormatError> {
        MqttString::from_bytes(Bytes::copy_from_slice(self.bytes()?))
            .map_err(|e| FormatError::Codec(what, e))
    }

    fn std_string(&mut self, what: &'static str) -> Result<String, FormatError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| FormatError::Invalid(what))
    }

    fn topic(&mut self, what: &'static str) -> Result<TopicName, FormatError> {
        TopicName::new(self.string(what)?).map_err(|e| FormatError::Codec(what, e))
    }

    fn duration(&mut self) -> Result<Duration, FormatError> {
        let secs = self.u64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(FormatError::Invalid("duration"));
        }
        Ok(Duration::new(secs, nanos))
    }

    fn time(&mut self) -> Result<SystemTime, FormatError> {
        UNIX_EPOCH
            .checked_add(self.duration()?)
            .ok_or(FormatError::Invalid("time"))
    }

    fn subscription_id(&mut self) -> Result<SubscriptionId, FormatError> {
        SubscriptionId::new(self.u32()?).ok_or(FormatError::Invalid("subscription identifier"))
    }

    fn finish(self) -> Result<(), FormatError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(FormatError::Trailing(n)),
        }
    }
}

fn qos(bits: u8) -> Result<QoS, FormatError> {
    QoS::from_u8(bits).map_err(|e| FormatError::Codec("qos", e))
}

/// Encodes a message row (`messages`, `retained`).
pub(crate) fn encode_message(m: &MessageRecord) -> Vec<u8> {
    let mut w = Writer::new();
    put_message(&mut w, m);
    w.0
}

/// Decodes a message row.
pub(crate) fn decode_message(buf: &[u8]) -> Result<MessageRecord, FormatError> {
    let mut r = Reader::new(buf)?;
    let m = read_message(&mut r)?;
    r.finish()?;
    Ok(m)
}

fn put_message(w: &mut Writer, m: &MessageRecord) {
    let flags = u8::from(m.retain) | (m.qos as u8) << 1 | u8::from(m.expires_at.is_some()) << 3;
    w.u8(flags);
    if let Some(at) = m.expires_at {
        w.time(at);
    }
    w.bytes(m.topic.as_bytes());
    put_properties(w, &m.properties);
    w.bytes(&m.payload);
}

fn read_message(r: &mut Reader<'_>) -> Result<MessageRecord, FormatError> {
    let flags = r.u8()?;
    if flags & !0b1111 != 0 {
        return Err(FormatError::Invalid("message flags"));
    }
    let expires_at = if flags & 0b1000 != 0 {
        Some(r.time()?)
    } else {
        None
    };
    Ok(MessageRecord {
        retain: flags & 1 != 0,
        qos: qos((flags >> 1) & 0b11)?,
        expires_at,
        topic: r.topic("topic")?,
        properties: read_properties(r)?,
        payload: Bytes::copy_from_slice(r.bytes()?),
    })
}

fn put_properties(w: &mut Writer, p: &PublishProperties) {
    // Destructured in full: a property added to the codec fails to compile here until it is
    // stored too.
    let PublishProperties {
        payload_format_indicator,
        message_expiry_interval,
        topic_alias,
        response_topic,
        correlation_data,
        content_type,
        subscription_identifiers,
        user_properties,
    } = p;
    let present = u8::from(payload_format_indicator.is_some())
        | u8::from(message_expiry_interval.is_some()) << 1
        | u8::from(topic_alias.is_some()) << 2
        | u8::from(response_topic.is_some()) << 3
        | u8::from(correlation_data.is_some()) << 4
        | u8::from(content_type.is_some()) << 5;
    w.u8(present);
    if let Some(format) = payload_format_indicator {
        w.u8(match format {
            PayloadFormat::Unspecified => 0,
            PayloadFormat::Utf8 => 1,
        });
    }
    if let Some(interval) = message_expiry_interval {
        w.u32(*interval);
    }
    if let Some(alias) = topic_alias {
        w.u16(alias.get());
    }
    if let Some(topic) = response_topic {
        w.bytes(topic.as_bytes());
    }
    if let Some(data) = correlation_data {
        w.bytes(data);
    }
    if let Some(content_type) = content_type {
        w.bytes(content_type.as_bytes());
    }
    w.len(subscription_identifiers.len());
    for id in subscription_identifiers {
        w.u32(id.get());
    }
    w.len(user_properties.len());
    for (name, value) in user_properties {
        w.bytes(name.as_bytes());
        w.bytes(value.as_bytes());
    }
}

fn read_properties(r: &mut Reader<'_>) -> Result<PublishProperties, FormatError> {
    let present = r.u8()?;
    if present & !0b11_1111 != 0 {
        return Err(FormatError::Invalid("property flags"));
    }
    let has = |bit: u8| present & (1 << bit) != 0;
    let mut p = PublishProperties::default();
    if has(0) {
        p.payload_format_indicator = Some(match r.u8()? {
            0 => PayloadFormat::Unspecified,
            1 => PayloadFormat::Utf8,
            _ => return Err(FormatError::Invalid("payload format indicator")),
        });
    }
    if has(1) {
        p.message_expiry_interval = Some(r.u32()?);
    }
    if has(2) {
        p.topic_alias = Some(NonZeroU16::new(r.u16()?).ok_or(FormatError::Invalid("topic alias"))?);
    }
    if has(3) {
        p.response_topic = Some(r.topic("response topic")?);
    }
    if has(4) {
        p.correlation_data = Some(Bytes::copy_from_slice(r.bytes()?));
    }
    if has(5) {
        p.content_type = Some(r.string("content type")?);
    }
    let n = r.count(4)?;
    p.subscription_identifiers = (0..n)
        .map(|_| r.subscription_id())
        .collect::<Result<_, _>>()?;
    let n = r.count(8)?;
    p.user_properties = (0..n)
        .map(|_| Ok((r.string("user property")?, r.string("user property")?)))
        .collect::<Result<_, _>>()?;
    Ok(p)
}

/// The v5 subscription options byte (§3.8.3.1).
fn options_byte(o: SubscriptionOptions) -> u8 {
    o.qos as u8
        | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | (o.retain_handling as u8) << 4
}

fn read_options(byte: u8) -> Result<SubscriptionOptions, FormatError> {
    if byte & 0b1100_0000 != 0 {
        return Err(FormatError::Invalid("subscription options"));
    }
    Ok(SubscriptionOptions {
        qos: qos(byte & 0b11)?,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling: match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(FormatError::Invalid("retain handling")),
        },
    })
}

/// Encodes a session row; the client id is the key, not part of the value.
pub(crate) fn encode_session(s: &SessionRecord) -> Vec<u8> {
    let mut w = Writer::new();
    match s.expiry {
        SessionExpiry::Never => w.u8(0),
        SessionExpiry::After(d) => {
            w.u8(1);
            w.duration(d);
        }
    }
    w.u8(u8::from(s.disconnected_at.is_some()));
    if let Some(at) = s.disconnected_at {
        w.time(at);
    }
    w.u8(u8::from(s.username.is_some()));
    if let Some(name) = &s.username {
        w.bytes(name.as_bytes());
    }
    w.len(s.subscriptions.len());
    for sub in &s.subscriptions {
        w.bytes(sub.filter.as_str().as_bytes());
        w.u8(options_byte(sub.options));
        w.u32(sub.id.map_or(0, SubscriptionId::get));
    }
    w.u8(u8::from(s.will.is_some()));
    if let Some(will) = &s.will {
        put_message(&mut w, &will.message);
        w.duration(will.delay);
    }
    w.0
}

/// Decodes a session row stored under `client_id`.
pub(crate) fn decode_session(client_id: &str, buf: &[u8]) -> Result<SessionRecord, FormatError> {
    let mut r = Reader::new(buf)?;
    let expiry = match r.u8()? {
        0 => SessionExpiry::Never,
        1 => SessionExpiry::After(r.duration()?),
        _ => return Err(FormatError::Invalid("session expiry")),
    };
    let disconnected_at = if r.flag("disconnected flag")? {
        Some(r.time()?)
    } else {
        None
    };
    let username = if r.flag("user name flag")? {
        Some(r.std_string("user name")?)
    } else {
        None
    };
    let n = r.count(9)?;
    let mut subscriptions = Vec::with_capacity(n);
    for _ in 0..n {
        let filter = TopicFilter::new(r.string("topic filter")?)
            .map_err(|e| FormatError::Codec("topic filter", e))?;
        let options = read_options(r.u8()?)?;
        let id = match r.u32()? {
            0 => None,
            v => Some(
                SubscriptionId::new(v).ok_or(FormatError::Invalid("subscription identifier"))?,
            ),
        };
        subscriptions.push(SubscriptionRecord {
            filter,
            options,
            id,
        });
    }
    let will = if r.flag("will flag")? {
        Some(WillRecord {
            message: read_message(&mut r)?,
            delay: r.duration()?,
        })
    } else {
        None
    };
    r.finish()?;
    Ok(SessionRecord {
        client_id: client_id.to_owned(),
        expiry,
        disconnected_at,
        subscriptions,
        will,
        username,
    })
}

/// Encodes a subscription row (the client id and filter are its key): version, options byte,
/// subscription identifier (`u32`, 0 for none).
pub(crate) fn encode_subscription(s: &SubscriptionRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(options_byte(s.options));
    w.u32(s.id.map_or(0, SubscriptionId::get));
    w.0
}

/// Decodes a subscription row stored under `filter`.
pub(crate) fn decode_subscription(
    filter: &str,
    buf: &[u8],
) -> Result<SubscriptionRecord, FormatError> {
    let mut r = Reader::new(buf)?;
    let options = read_options(r.u8()?)?;
    let id = match r.u32()? {
        0 => None,
        v => Some(SubscriptionId::new(v).ok_or(FormatError::Invalid("subscription identifier"))?),
    };
    r.finish()?;
    Ok(SubscriptionRecord {
        filter: TopicFilter::try_from(filter).map_err(|e| FormatError::Codec("topic filter", e))?,
        options,
        id,
    })
}

/// Encodes a queue entry row.
pub(crate) fn encode_entry(e: &QueueEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(e.message_id);
    let state = match e.state {
        EntryState::Queued => 0,
        EntryState::AwaitingPubAck => 1,
        EntryState::AwaitingPubRec => 2,
        EntryState::AwaitingPubComp => 3,
    };
    w.u8(e.qos as u8 | u8::from(e.retain) << 2 | state << 3);
    w.u16(e.packet_id.map_or(0, PacketId::get));
    w.len(e.subscription_ids.len());
    for id in &e.subscription_ids {
        w.u32(id.get());
    }
    w.0
}

/// Decodes a queue entry row.
pub(crate) fn decode_entry(buf: &[u8]) -> Result<QueueEntry, FormatError> {
    let mut r = Reader::new(buf)?;
    let message_id = r.u64()?;
    let flags = r.u8()?;
    if flags & !0b1_1111 != 0 {
        return Err(FormatError::Invalid("queue entry flags"));
    }
    let state = match flags >> 3 {
        0 => EntryState::Queued,
        1 => EntryState::AwaitingPubAck,
        2 => EntryState::AwaitingPubRec,
        _ => EntryState::AwaitingPubComp,
    };
    let packet_id = PacketId::new(r.u16()?);
    let n = r.count(4)?;
    let subscription_ids = (0..n)
        .map(|_| r.subscription_id())
        .collect::<Result<_, _>>()?;
    r.finish()?;
    Ok(QueueEntry {
        message_id,
        qos: qos(flags & 0b11)?,
        retain: flags & 0b100 != 0,
        subscription_ids,
        packet_id,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> MqttString {
        MqttString::try_from(v).unwrap()
    }

    fn message() -> MessageRecord {
        MessageRecord {
            topic: TopicName::try_from("a/b").unwrap(),
            payload: Bytes::from_static(b"\x00payload"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties {
                payload_format_indicator: Some(PayloadFormat::Unspecified),
                message_expiry_interval: Some(0),
                topic_alias: NonZeroU16::new(1),
                response_topic: Some(TopicName::try_from("r").unwrap()),
                correlation_data: Some(Bytes::new()),
                content_type: Some(s("")),
                subscription_identifiers: vec![SubscriptionId::new(9).unwrap()],
                user_properties: vec![(s("k"), s("v"))],
            },
            expires_at: Some(UNIX_EPOCH + Duration::new(1, 999_999_999)),
        }
    }

    fn session() -> SessionRecord {
        SessionRecord {
            client_id: "c".to_owned(),
            expiry: SessionExpiry::After(Duration::from_secs(5)),
            disconnected_at: Some(UNIX_EPOCH),
            subscriptions: vec![SubscriptionRecord {
                filter: TopicFilter::new(s("$share/g/a/#")).unwrap(),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: false,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
                id: SubscriptionId::new(3),
            }],
            will: Some(WillRecord {
                message: message(),
                delay: Duration::from_millis(1),
            }),
            username: Some("u".to_owned()),
        }
    }

    fn entry() -> QueueEntry {
        QueueEntry {
            message_id: u64::MAX,
            qos: QoS::ExactlyOnce,
            retain: true,
            subscription_ids: vec![SubscriptionId::new(268_435_455).unwrap()],
            packet_id: PacketId::new(65535),
            state: EntryState::AwaitingPubComp,
        }
    }

    /// Every encoded value with each byte changed and cut at every length: decoding returns
    /// (an error, for every cut), never panics.
    fn never_panics(bytes: &[u8], decode: impl Fn(&[u8]) -> Result<(), FormatError>) {
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len} decoded");
        }
        for i in 0..bytes.len() {
            for v in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut b = bytes.to_vec();
                b[i] = v;
                let _ = decode(&b);
            }
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer), Err(FormatError::Trailing(1)));
    }

    #[test]
    fn message_round_trips() {
        let bytes = encode_message(&message());
        assert_eq!(decode_message(&bytes), Ok(message()));
        never_panics(&bytes, |b| decode_message(b).map(drop));
    }

    #[test]
    fn session_round_trips() {
        let bytes = encode_session(&session());
        assert_eq!(decode_session("c", &bytes), Ok(session()));
        never_panics(&bytes, |b| decode_session("c", b).map(drop));
        let bare = SessionRecord {
            expiry: SessionExpiry::Never,
            disconnected_at: None,
            subscriptions: Vec::new(),
            will: None,
            username: None,
            ..session()
        };
        assert_eq!(decode_session("c", &encode_session(&bare)), Ok(bare));
    }

    #[test]
    fn entry_round_trips() {
        let bytes = encode_entry(&entry());
        assert_eq!(decode_entry(&bytes), Ok(entry()));
        never_panics(&bytes, |b| decode_entry(b).map(drop));
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(encode_session(&session()), encode_session(&session()));
        // version, flags (retain, QoS 1, no expiry), topic "t", no properties, payload "p"
        let m = MessageRecord {
            topic: TopicName::try_from("t").unwrap(),
            payload: Bytes::from_static(b"p"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties::default(),
            expires_at: None,
        };
        assert_eq!(
            encode_message(&m),
            [
                1, 0b011, 0, 0, 0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'p'
            ]
        );
    }

    #[test]
    fn rejects_unknown_version_and_bad_fields() {
        let mut bytes = encode_entry(&entry());
        bytes[0] = 2;
        assert_eq!(decode_entry(&bytes), Err(FormatError::Version(2)));
        // A wildcard in a stored topic name.
        let mut m = encode_message(&MessageRecord {
            expires_at: None,
            properties: PublishProperties::default(),
            ..message()
        });
        m[7] = b'+';
        assert!(matches!(
            decode_message(&m),
            Err(FormatError::Codec("topic", _))
        ));
        // A count larger than the bytes left does not allocate for it.
        let mut e = encode_entry(&entry());
        let n = e.len() - 8;
        e[n..n + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_entry(&e), Err(FormatError::End));
    }
}
