//! `mqtt.limits`: per-connection and per-session limits (our addition; Harper has none of these keys).
//!
//! Durations are whole milliseconds or a number with a unit (`30s`). `null` means "no limit" only
//! where the type is an `Option`; elsewhere it means the default.

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::Serialize;

use crate::read::{Node, Read, Reader};

/// The largest MQTT packet there can be: a 4-byte Remaining Length of 268,435,455 plus 5 bytes of
/// fixed header.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = 268_435_460;

/// The longest keep alive MQTT can express: 65,535 seconds.
pub const PROTOCOL_MAX_KEEP_ALIVE: Duration = Duration::from_secs(65_535);

/// `mqtt.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// `maxPacketSize`: the largest packet accepted, in bytes (v5 Maximum Packet Size); `None`
    /// (`null`) for the protocol's maximum. Default 1 MiB.
    pub max_packet_size: Option<NonZeroU32>,
    /// `receiveMaximum`: QoS 1 and 2 PUBLISHes a client may have unacknowledged towards the broker
    /// (v5 Receive Maximum), 1 to 65535. Default 128.
    pub receive_maximum: NonZeroU16,
    /// `maxKeepAlive`: the longest keep alive granted; clients asking for more, or for none, get this
    /// (v5 Server Keep Alive). Whole seconds up to 65535 s; `None` (`null`) grants what clients ask.
    /// Default 65535 s.
    #[serde(serialize_with = "crate::ser::opt_millis")]
    pub max_keep_alive: Option<Duration>,
    /// `maxQueuedMessages`: messages kept per session while its client is offline or slow; past it
    /// QoS 0 messages are dropped first. Default 1000.
    pub max_queued_messages: NonZeroU32,
    /// `maxTopicAlias`: topic aliases a client may use (v5 Topic Alias Maximum); `None` (`null`)
    /// accepts none. Default 64.
    pub max_topic_alias: Option<NonZeroU16>,
    /// `maxInflight`: QoS 1 and 2 PUBLISHes the broker sends a client before waiting for
    /// acknowledgements (further capped by the client's Receive Maximum). Default 32.
    pub max_inflight: NonZeroU16,
    /// `connectTimeout`: time from accepting a connection (TLS and WebSocket handshakes included) to
    /// its CONNECT, after which it is closed. Default 10 s. Handshakes also have their own, shorter
    /// `handshakeTimeout`.
    #[serde(serialize_with = "crate::ser::millis")]
    pub connect_timeout: Duration,
    /// `connectionRatePerIp`: new connections accepted per second from one IP address (with a
    /// burst of the same size); more are closed at once, before any TLS or WebSocket work.
    /// `None` (`null`, the default) is no limit.
    pub connection_rate_per_ip: Option<NonZeroU32>,
    /// `maxSubscriptionsPerClient`: subscriptions one session may hold; a SUBSCRIBE past it is
    /// refused for the filters over (v5 0x97 quota exceeded). `None` (`null`) is no limit.
    /// Default 10,000.
    pub max_subscriptions_per_client: Option<NonZeroU32>,
    /// `maxQueuedBytes`: bytes (topic and payload) of the messages queued for one session, next
    /// to `maxQueuedMessages`; the same policy applies at either. `None` (`null`) is no limit.
    /// Default 64 MiB.
    pub max_queued_bytes: Option<NonZeroU64>,
    /// `maxRetainedMessages`: retained messages kept over all topics; a retained PUBLISH to a
    /// new topic past it is refused (v5 0x97). `None` (`null`) is no limit. Default 1,000,000.
    pub max_retained_messages: Option<NonZeroU32>,
    /// `maxRetainedBytes`: bytes (topic and payload) of all retained messages; a retained
    /// PUBLISH that would pass it is refused (v5 0x97). `None` (`null`) is no limit. Default
    /// 1 GiB.
    pub max_retained_bytes: Option<NonZeroU64>,
    /// `maxSessionExpiry`: the longest a session outlives its connection, whatever the client
    /// asks (v5 CONNACK says the interval granted; a v3 persistent session gets it too).
    /// `None` (`null`) keeps sessions as long as clients ask, forever included. Default 1 day.
    #[serde(serialize_with = "crate::ser::opt_millis")]
    pub max_session_expiry: Option<Duration>,
    /// `maxHandshakes`: TLS and WebSocket handshakes in progress at once over every listener;
    /// a connection arriving beyond it is closed before any TLS or HTTP parsing. `None` (`null`)
    /// is no limit. Default 1024.
    pub max_handshakes: Option<NonZeroU32>,
    /// `maxHandshakesPerAddress`: of those, at most this many from one client address (an IPv4
    /// address, or an IPv6 /64), so that idle sockets from a few addresses cannot take every
    /// slot. `None` (`null`) is no limit. Default 128: room for a NAT's reconnect storm.
    pub max_handshakes_per_address: Option<NonZeroU32>,
    /// `handshakeTimeout`: how long a TLS or WebSocket handshake (the HTTP upgrade request
    /// included) may take, at most `connectTimeout`; CONNECT then has what is left of
    /// `connectTimeout`. Default 5 s.
    #[serde(serialize_with = "crate::ser::millis")]
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: Some(
                const { NonZeroU32::new(1024 * 1024).expect("1 MiB is not zero") },
            ),
            receive_maximum: const { NonZeroU16::new(128).expect("128 is not zero") },
            max_keep_alive: Some(PROTOCOL_MAX_KEEP_ALIVE),
            max_queued_messages: const { NonZeroU32::new(1000).expect("1000 is not zero") },
            max_topic_alias: Some(const { NonZeroU16::new(64).expect("64 is not zero") }),
            max_inflight: const { NonZeroU16::new(32).expect("32 is not zero") },
            connect_timeout: Duration::from_secs(10),
            connection_rate_per_ip: None,
            max_subscriptions_per_client: Some(
                const { NonZeroU32::new(10_000).expect("10,000 is not zero") },
            ),
            max_queued_bytes: Some(
                const { NonZeroU64::new(64 << 20).expect("64 MiB is not zero") },
            ),
            max_retained_messages: Some(
                const { NonZeroU32::new(1_000_000).expect("a million is not zero") },
            ),
            max_retained_bytes: Some(
                const { NonZeroU64::new(1 << 30).expect("1 GiB is not zero") },
            ),
            max_session_expiry: Some(Duration::from_secs(24 * 3600)),
            max_handshakes: Some(const { NonZeroU32::new(1024).expect("1024 is not zero") }),
            max_handshakes_per_address: Some(
                const { NonZeroU32::new(128).expect("128 is not zero") },
            ),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// Reads `mqtt.limits`.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node<'_>) -> Limits {
        let d = Limits::default();
        let node = r.enter(node.clone());
        let keep_alive = node.child("maxKeepAlive");
        let expiry = node.child("maxSessionExpiry");
        let max_session_expiry = match r.duration(&expiry, false) {
            Read::Value(v) if v.subsec_nanos() != 0 || v.as_secs() >= u64::from(u32::MAX) => {
                r.error(&expiry, "expected whole seconds below 4294967295s (in milliseconds, or with a unit), or null for no limit");
                Read::Invalid
            }
            other => other,
        };
        let max_keep_alive = match r.duration(&keep_alive, false) {
            Read::Value(v) if v > PROTOCOL_MAX_KEEP_ALIVE || v.subsec_nanos() != 0 => {
                r.error(&keep_alive, "expected whole seconds from 1s to 65535s (in milliseconds, or with a unit), or null");
                Read::Invalid
            }
            other => other,
        };
        let connect_timeout = r
            .duration(&node.child("connectTimeout"), false)
            .or(d.connect_timeout);
        let handshake = node.child("handshakeTimeout");
        let handshake_timeout = r.duration(&handshake, false).or(d.handshake_timeout);
        if !handshake.is_unset() && handshake_timeout > connect_timeout {
            r.warn(
                &handshake,
                format!(
                    "longer than mqtt.limits.connectTimeout ({} ms), which ends handshakes first",
                    connect_timeout.as_millis()
                ),
            );
        }
        Limits {
            max_packet_size: r
                .positive_or_null(
                    &node.child("maxPacketSize"),
                    u64::from(PROTOCOL_MAX_PACKET_SIZE),
                    "no limit",
                )
                .nullable(d.max_packet_size),
            receive_maximum: r
                .positive(&node.child("receiveMaximum"), u64::from(u16::MAX))
                .or(d.receive_maximum),
            max_keep_alive: max_keep_alive.nullable(d.max_keep_alive),
            max_queued_messages: r
                .positive(&node.child("maxQueuedMessages"), u64::from(u32::MAX))
                .or(d.max_queued_messages),
            max_topic_alias: r
                .positive_or_null(
                    &node.child("maxTopicAlias"),
                    u64::from(u16::MAX),
                    "no topic aliases",
                )
                .nullable(d.max_topic_alias),
            max_inflight: r
                .positive(&node.child("maxInflight"), u64::from(u16::MAX))
                .or(d.max_inflight),
            connect_timeout,
            connection_rate_per_ip: r
                .positive_or_null(
                    &node.child("connectionRatePerIp"),
                    u64::from(u32::MAX),
                    "no limit",
                )
                .nullable(d.connection_rate_per_ip),
            max_subscriptions_per_client: r
                .positive_or_null(
                    &node.child("maxSubscriptionsPerClient"),
                    u64::from(u32::MAX),
                    "no limit",
                )
                .nullable(d.max_subscriptions_per_client),
            max_queued_bytes: r
                .positive_or_null(&node.child("maxQueuedBytes"), u64::MAX, "no limit")
                .nullable(d.max_queued_bytes),
            max_retained_messages: r
                .positive_or_null(
                    &node.child("maxRetainedMessages"),
                    u64::from(u32::MAX),
                    "no limit",
                )
                .nullable(d.max_retained_messages),
            max_retained_bytes: r
                .positive_or_null(&node.child("maxRetainedBytes"), u64::MAX, "no limit")
                .nullable(d.max_retained_bytes),
            max_session_expiry: max_session_expiry.nullable(d.max_session_expiry),
            max_handshakes: r
                .positive_or_null(
                    &node.child("maxHandshakes"),
                    u64::from(u32::MAX),
                    "no limit",
                )
                .nullable(d.max_handshakes),
            max_handshakes_per_address: r
                .positive_or_null(
                    &node.child("maxHandshakesPerAddress"),
                    u64::from(u32::MAX),
                    "no limit",
                )
                .nullable(d.max_handshakes_per_address),
            handshake_timeout,
        }
    }
}
