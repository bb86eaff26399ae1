//! The broker's own settings: limits and timeouts, as plain data. The binary maps the parsed
//! configuration onto them; tests build them directly.

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::time::Duration;

/// Limits and timeouts of one broker. Every limit is announced to MQTT 5 clients in CONNACK.
/// The defaults are those of `mqtt.limits` in the configuration.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Largest packet accepted from a client, fixed header included (CONNACK Maximum Packet
    /// Size). Bigger packets close the connection with 0x95.
    pub max_packet_size: NonZeroU32,
    /// How many QoS 1/2 PUBLISHes a client may have unacknowledged towards the broker (CONNACK
    /// Receive Maximum); more closes the connection with 0x93.
    pub receive_maximum: NonZeroU16,
    /// How many QoS 1/2 messages the broker keeps unacknowledged towards one client, further
    /// capped by the client's own Receive Maximum.
    pub max_inflight: NonZeroU16,
    /// Messages queued per session beyond the in-flight window, online or offline. At the
    /// limit a new QoS 0 message is dropped; a QoS 1/2 message first evicts the oldest queued
    /// QoS 0 message and is dropped itself only when none is left. Every drop is counted.
    pub max_queued_messages: usize,
    /// Highest topic alias a client may use (CONNACK Topic Alias Maximum); 0 turns aliases off.
    pub max_topic_alias: u16,
    /// Longest keep alive granted. Clients asking for more, or for 0, get this (v5 clients are
    /// told with Server Keep Alive).
    pub max_keep_alive: NonZeroU16,
    /// Longest session expiry interval granted to a persistent session; `None` is no cap.
    pub max_session_expiry: Option<Duration>,
    /// Subscriptions one session may hold; filters past it are refused (v5 0x97). `None` is
    /// no limit.
    pub max_subscriptions_per_client: Option<NonZeroU32>,
    /// Bytes (topic and payload) queued per session, next to `max_queued_messages`, under the
    /// same policy. `None` is no limit.
    pub max_queued_bytes: Option<NonZeroU64>,
    /// Retained messages kept in all; a retained PUBLISH to a new topic past it is refused (v5
    /// 0x97). `None` is no limit.
    pub max_retained_messages: Option<NonZeroU32>,
    /// Bytes (topic and payload) of all retained messages; a retained PUBLISH that would pass
    /// it is refused (v5 0x97). `None` is no limit.
    pub max_retained_bytes: Option<NonZeroU64>,
    /// New connections accepted per second from one IP address (burst of the same size); more
    /// are closed at once, before any TLS or WebSocket work. `None` is no limit.
    pub connection_rate_per_ip: Option<NonZeroU32>,
    /// Time a new connection has to send CONNECT before it is closed without an answer.
    pub connect_timeout: Duration,
    /// How often `$SYS/broker/...` topics are published; `None` turns them off.
    pub sys_interval: Option<Duration>,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_grace: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            max_packet_size: NonZeroU32::new(1 << 20).expect("non-zero literal"),
            receive_maximum: NonZeroU16::new(128).expect("non-zero literal"),
            max_inflight: NonZeroU16::new(32).expect("non-zero literal"),
            max_queued_messages: 1000,
            max_topic_alias: 64,
            max_keep_alive: NonZeroU16::new(65_535).expect("non-zero literal"),
            max_session_expiry: Some(Duration::from_secs(24 * 3600)),
            max_subscriptions_per_client: NonZeroU32::new(10_000),
            max_queued_bytes: NonZeroU64::new(64 << 20),
            max_retained_messages: NonZeroU32::new(1_000_000),
            max_retained_bytes: NonZeroU64::new(1 << 30),
            connection_rate_per_ip: None,
            connect_timeout: Duration::from_secs(10),
            sys_interval: Some(Duration::from_secs(10)),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
