//! State shared by every connection: the session registry, the subscription index, retained
//! messages and counters; and routing of a published message to the sessions that want it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use auth::{AccessControl, Identity};
use codec::QoS;

use crate::index::{Subscriber, SubscriptionIndex};
use crate::message::{Delivery, Message};
use crate::options::BrokerOptions;
use crate::retained::{MemoryRetained, RetainedStore};
use crate::session::{Enqueued, Session};

/// Counters behind `$SYS` and metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub clients_connected: AtomicU64,
    pub clients_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub auth_failures: AtomicU64,
    /// PUBLISH packets received, by QoS (0, 1, 2).
    pub received_by_qos: [AtomicU64; 3],
    /// PUBLISH packets sent, by QoS.
    pub sent_by_qos: [AtomicU64; 3],
    pub connections_rate_limited: AtomicU64,
}

/// Recent authentication failures per remote address, to slow down password guessing.
#[derive(Debug, Default)]
pub(crate) struct FailedLogins {
    by_ip: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl FailedLogins {
    /// Addresses remembered at most; past it the oldest half is forgotten.
    const CAPACITY: usize = 10_000;
    /// A failure older than this no longer counts.
    const MEMORY: std::time::Duration = std::time::Duration::from_secs(300);

    /// Records a failure and returns how long to wait before answering it: nothing for the
    /// first two, then doubling from 250 ms up to 8 s.
    pub fn failed(&self, ip: std::net::IpAddr) -> std::time::Duration {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= Self::CAPACITY {
            let mut ages: Vec<Instant> = map.values().map(|(_, t)| *t).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            map.retain(|_, (_, t)| *t > cutoff);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > Self::MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        match entry.0 {
            0..=2 => std::time::Duration::ZERO,
            n => std::time::Duration::from_millis(250u64 << (n - 3).min(5)),
        }
    }

    /// Forgets an address after a successful login.
    pub fn succeeded(&self, ip: std::net::IpAddr) {
        self.by_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// The broker's shared state.
pub(crate) struct Shared {
    pub options: BrokerOptions,
    pub access: Arc<dyn AccessControl>,
    pub sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    pub index: RwLock<SubscriptionIndex>,
    pub retained: Box<dyn RetainedStore>,
    pub stats: Stats,
    pub failed_logins: FailedLogins,
    pub connection_rate: Option<crate::rate::ConnectionRate>,
    /// Client certificates (`mqtt.network.mtls`), when on.
    pub client_auth: Option<Arc<crate::client_auth::ClientAuth>>,
    /// The durable store, when on.
    pub persist: Option<crate::persist::Persist>,
    /// Held while a retained message is written to the store and to memory.
    pub retain_order: Mutex<()>,
    /// Recovered offline sessions whose expiry and owed wills start running when serving does.
    pub offline: Mutex<Vec<crate::persist::Offline>>,
    pub started: Instant,
    /// Started on the first connection (see `keep_alive::ensure_sweeper`).
    pub keep_alive_sweeper: std::sync::Once,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(
        options: BrokerOptions,
        access: Arc<dyn AccessControl>,
        client_auth: Option<Arc<crate::client_auth::ClientAuth>>,
    ) -> Self {
        let connection_rate = options
            .connection_rate_per_ip
            .map(crate::rate::ConnectionRate::new);
        Self {
            options,
            access,
            sessions: Mutex::new(HashMap::new()),
            index: RwLock::new(SubscriptionIndex::default()),
            retained: Box::new(MemoryRetained::default()),
            stats: Stats::default(),
            failed_logins: FailedLogins::default(),
            connection_rate,
            client_auth,
            persist: None,
            offline: Mutex::new(Vec::new()),
            retain_order: Mutex::new(()),
            started: Instant::now(),
            keep_alive_sweeper: std::sync::Once::new(),
        }
    }

    /// Milliseconds since the broker started: the clock of keep-alive deadlines.
    pub fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    pub fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn index_read(&self) -> std::sync::RwLockReadGuard<'_, SubscriptionIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, SubscriptionIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores or clears the retained message of the message's topic, when it is retained.
    /// Returns the ticket of the change in the durable store (0 for none).
    pub fn retain(&self, message: &Arc<Message>) -> u64 {
        if !message.retain {
            return 0;
        }
        let stored = if message.payload.is_empty() {
            None
        } else {
            Some(Arc::new(message.compact()))
        };
        // `$SYS` topics are made again every few seconds: not worth a write.
        let durable = !message.topic.as_str().starts_with("$SYS/");
        // Store and memory apply concurrent changes of one topic in the same order.
        let _order = self
            .retain_order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ticket = self.persist.as_ref().filter(|_| durable).map_or(0, |p| {
            p.submit([store::Op::Retain {
                topic: message.topic.clone(),
                message: stored
                    .as_ref()
                    .map(|m| Arc::new(crate::persist::record_of(m))),
            }])
        });
        self.retained.set(&message.topic, stored);
        ticket
    }

    /// Delivers a message to every matching session: one copy per session at the highest
    /// matching QoS, carrying the identifiers of all matching subscriptions [MQTT-3.3.4-5];
    /// subscriptions that differ in Retain As Published get separate copies. Returns the number
    /// of sessions that got it, the ticket of what that stored (0 for nothing), and a session
    /// whose client is falling behind.
    pub fn route(&self, message: &Arc<Message>) -> Routed {
        let index = self.index_read();
        let mut matches: Vec<&Subscriber> = Vec::new();
        index.matches(message.topic.as_str(), &mut matches);
        matches.retain(|s| {
            !(s.options.no_local && s.session.id == message.origin)
                && self.may_read(&s.identity, &s.session.client_id, message.topic.as_str())
        });
        if matches.len() > 1 {
            matches.sort_by_key(|s| (s.session.id, s.options.retain_as_published));
        }
        let mut routed = Routed::default();
        let mut i = 0;
        while i < matches.len() {
            let first = matches[i];
            let key = (first.session.id, first.options.retain_as_published);
            let mut qos = QoS::AtMostOnce;
            let mut ids = Vec::new();
            let mut j = i;
            while j < matches.len()
                && (
                    matches[j].session.id,
                    matches[j].options.retain_as_published,
                ) == key
            {
                qos = qos.max(matches[j].options.qos);
                ids.extend(matches[j].id);
                j += 1;
            }
            i = j;
            let delivery = Delivery {
                message: message.clone(),
                qos: qos.min(message.qos),
                retain: first.options.retain_as_published && message.retain,
                subscription_ids: ids,
                seq: 0,
                redelivery: false,
            };
            let (queued, t) = self.deliver(&first.session, delivery);
            let congested = match queued {
                Enqueued::Queued { congested } => {
                    routed.delivered += 1;
                    congested
                }
                Enqueued::Dropped | Enqueued::Offline => false,
            };
            // The publisher's own session is drained by the publisher: never wait for it.
            if congested && routed.congested.is_none() && first.session.id != message.origin {
                routed.congested = Some(first.session.clone());
            }
            routed.ticket = routed.ticket.max(t);
        }
        routed
    }

    /// Queues one delivery for a session. QoS 0 messages are not queued for sessions whose
    /// client is offline. Returns what happened and the ticket of what that stored.
    pub fn deliver(&self, session: &Session, delivery: Delivery) -> (Enqueued, u64) {
        let (queued, ticket) = session.enqueue(
            delivery,
            self.options.max_queued_messages,
            self.persist.as_ref(),
        );
        if queued == Enqueued::Dropped {
            self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
        (queued, ticket)
    }

    /// Submits `ops` to the durable store; the ticket to wait for, 0 without a store.
    pub fn submit<const N: usize>(&self, ops: [store::Op; N]) -> u64 {
        self.persist.as_ref().map_or(0, |p| p.submit(ops))
    }

    /// [`Shared::submit`] for a list of changes.
    pub fn submit_all(&self, ops: Vec<store::Op>) -> u64 {
        self.persist.as_ref().map_or(0, |p| p.submit_all(ops))
    }

    /// The highest durable ticket (`u64::MAX` without a store: everything is).
    pub fn durable(&self) -> u64 {
        self.persist
            .as_ref()
            .map_or(u64::MAX, |p| p.store.durable())
    }

    fn may_read(&self, identity: &Identity, client_id: &str, topic: &str) -> bool {
        self.access.may_read(identity, client_id, topic)
    }
}

/// What routing one message did.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    /// Sessions that got it.
    pub delivered: usize,
    /// The store ticket of what it stored (0 for nothing).
    pub ticket: u64,
    /// A session it went to whose connected client is falling behind.
    pub congested: Option<Arc<Session>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_from_one_address_are_slowed_down() {
        let logins = FailedLogins::default();
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        let delays: Vec<u64> = (0..10)
            .map(|_| logins.failed(ip).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(
            logins
                .failed(std::net::IpAddr::from([10, 0, 0, 2]))
                .as_millis(),
            0
        );
        logins.succeeded(ip);
        assert_eq!(logins.failed(ip).as_millis(), 0);
    }
}
