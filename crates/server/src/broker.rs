//! [`Shared`]: the state every connection shares (the session registry, the subscription index,
//! retained messages, the store, counters), and routing of a published message to the sessions
//! that want it.
//!
//! Lock order: the registry (`sessions`), then the index, then a session; a retained change
//! holds `retain_order` alone. Nothing is locked while waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use auth::{AccessControl, Identity};
use codec::QoS;

use crate::client_auth::ClientAuth;
use crate::index::{Subscriber, SubscriptionIndex};
use crate::login_throttle::LoginThrottle;
use crate::message::{Delivery, Message};
use crate::options::BrokerOptions;
use crate::persist::Persist;
use crate::rate::ConnectionRate;
use crate::retained::{MemoryRetained, RetainedStore};
use crate::revocation::RevocationWatch;
use crate::session::{Enqueued, QueueLimits, Session, Subscription};

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
    /// Queued or in-flight messages not sent because the subscriber may no longer read them.
    pub messages_unauthorized: AtomicU64,
    /// Retained PUBLISHes refused because of the retained quota.
    pub retained_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    /// PUBLISH packets received, by QoS (0, 1, 2).
    pub received_by_qos: [AtomicU64; 3],
    /// PUBLISH packets sent, by QoS.
    pub sent_by_qos: [AtomicU64; 3],
    pub connections_rate_limited: AtomicU64,
}

/// How often keep-alive deadlines are checked (see `keep_alive`).
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The broker's shared state.
pub(crate) struct Shared {
    options: BrokerOptions,
    access: Arc<dyn AccessControl>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    index: RwLock<SubscriptionIndex>,
    retained: MemoryRetained,
    stats: Stats,
    login_throttle: LoginThrottle,
    connection_rate: Option<ConnectionRate>,
    /// Client certificates (`mqtt.network.mtls`), when on.
    client_auth: Option<Arc<ClientAuth>>,
    /// Connected clients whose certificates are checked again, when OCSP is on.
    revocation: Option<Arc<RevocationWatch>>,
    /// The durable store (does nothing when off).
    persist: Persist,
    /// Held while a retained message is written to the store and to memory.
    retain_order: Mutex<()>,
    /// `max_queued_messages` and `max_queued_bytes`, as each session's queue applies them.
    queue_limits: QueueLimits,
    /// On tokio's clock, so tests on a paused clock move keep-alive deadlines too.
    started: tokio::time::Instant,
    /// Started on the first connection (see [`Shared::ensure_keep_alive_sweeper`]).
    keep_alive_sweeper: std::sync::Once,
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
        client_auth: Option<Arc<ClientAuth>>,
        persist: Persist,
    ) -> Self {
        let connection_rate = options.connection_rate_per_ip.map(ConnectionRate::new);
        let revocation = client_auth.as_ref().and_then(RevocationWatch::new);
        let queue_limits = QueueLimits {
            messages: options.max_queued_messages,
            bytes: options.max_queued_bytes.map_or(usize::MAX, |b| {
                usize::try_from(b.get()).unwrap_or(usize::MAX)
            }),
        };
        Self {
            options,
            access,
            sessions: Mutex::new(HashMap::new()),
            index: RwLock::new(SubscriptionIndex::default()),
            retained: MemoryRetained::default(),
            stats: Stats::default(),
            login_throttle: LoginThrottle::default(),
            connection_rate,
            client_auth,
            revocation,
            persist,
            retain_order: Mutex::new(()),
            queue_limits,
            started: tokio::time::Instant::now(),
            keep_alive_sweeper: std::sync::Once::new(),
        }
    }

    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    pub fn access(&self) -> &Arc<dyn AccessControl> {
        &self.access
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.login_throttle
    }

    /// The per-address connection rate limit, when on.
    pub fn connection_rate(&self) -> Option<&ConnectionRate> {
        self.connection_rate.as_ref()
    }

    pub fn client_auth(&self) -> Option<&Arc<ClientAuth>> {
        self.client_auth.as_ref()
    }

    /// The watch over connected clients' certificates, when OCSP is on.
    pub fn revocation(&self) -> Option<&Arc<RevocationWatch>> {
        self.revocation.as_ref()
    }

    pub fn persist(&self) -> &Persist {
        &self.persist
    }

    pub fn retained(&self) -> &dyn RetainedStore {
        &self.retained
    }

    /// How long the broker has been up.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Milliseconds since the broker started: the clock of keep-alive deadlines.
    pub fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// The session registry, by client id.
    pub fn sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every session, for a walk that locks each (the registry is not held meanwhile).
    pub fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions().values().cloned().collect()
    }

    pub fn index_read(&self) -> RwLockReadGuard<'_, SubscriptionIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> RwLockWriteGuard<'_, SubscriptionIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `subscriptions` of `session` into the index, reading with `identity` (a new
    /// subscription, a resumed session under its new connection's identity, a recovered one).
    pub fn index_subscriptions<'a>(
        &self,
        session: &Arc<Session>,
        subscriptions: impl IntoIterator<Item = &'a Subscription>,
        identity: &Arc<Identity>,
    ) {
        let mut index = self.index_write();
        for s in subscriptions {
            index.insert(&s.filter, Subscriber::new(session, s, identity));
        }
    }

    /// Removes `session`'s subscriptions to `filters` from the index.
    pub fn unindex<'a>(
        &self,
        session: &Session,
        filters: impl IntoIterator<Item = &'a codec::TopicFilter>,
    ) {
        let mut index = self.index_write();
        for filter in filters {
            index.remove(filter, session.id);
        }
    }

    /// Removes every subscription of a session that ends, from the session and the index.
    /// Takes no session lock while holding the index lock.
    pub fn unindex_session(&self, session: &Session) {
        let subscriptions = session.lock().take_subscriptions();
        self.unindex(session, subscriptions.iter().map(|s| &s.filter));
    }

    /// Starts the keep-alive sweeper once: twice a second it marks every passed deadline due and
    /// wakes its connection, which judges (see `keep_alive`). It ends when the broker is
    /// dropped.
    pub fn ensure_keep_alive_sweeper(self: &Arc<Self>) {
        self.keep_alive_sweeper.call_once(|| {
            tokio::spawn(sweep_keep_alive(Arc::downgrade(self)));
        });
    }

    /// Stores or clears the retained message of the message's topic, when it is retained.
    /// Returns the ticket of the change in the durable store (0 for none), or
    /// [`QuotaExceeded`] when keeping it would pass `max_retained_messages` or
    /// `max_retained_bytes` (nothing changes then).
    pub fn retain(&self, message: &Arc<Message>) -> Result<u64, QuotaExceeded> {
        if !message.retain {
            return Ok(0);
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
        // The broker's own `$SYS` topics are not counted against the users' quota.
        if let Some(new) = stored.as_ref().filter(|_| durable) {
            let old = self.retained.size_of(&message.topic);
            let options = &self.options;
            let too_many = old.is_none()
                && options
                    .max_retained_messages
                    .is_some_and(|max| self.retained.len() >= max.get() as usize);
            let too_big = options.max_retained_bytes.is_some_and(|max| {
                (self.retained.bytes() - old.unwrap_or(0) + new.size()) as u64 > max.get()
            });
            if too_many || too_big {
                self.stats.retained_refused.fetch_add(1, Ordering::Relaxed);
                return Err(QuotaExceeded);
            }
        }
        let ticket = if durable {
            self.persist.retained_set(&message.topic, stored.as_deref())
        } else {
            0
        };
        self.retained.set(&message.topic, stored);
        Ok(ticket)
    }

    /// Stores (if retained) and routes a message; see [`Shared::route`]. A retained message
    /// past the retained quota is neither kept nor routed.
    pub fn publish(&self, message: &Arc<Message>) -> Result<Routed, QuotaExceeded> {
        let retained = self.retain(message)?;
        let mut routed = self.route(message);
        routed.ticket = routed.ticket.max(retained);
        Ok(routed)
    }

    /// Delivers a message to every matching session: one copy per session at the highest
    /// matching QoS, carrying the identifiers of all matching subscriptions [MQTT-3.3.4-5];
    /// subscriptions that differ in Retain As Published get separate copies. Returns the number
    /// of sessions that got it, the ticket of what that stored (0 for nothing), and a session
    /// whose client is falling behind.
    pub fn route(&self, message: &Arc<Message>) -> Routed {
        // Read before the checks: a change of the rules meanwhile makes the subscriber's
        // connection check again before sending.
        let revision = self.access.revision();
        let index = self.index_read();
        let mut matches: Vec<&Subscriber> = Vec::new();
        // Checked before a shared group picks its member: one that may not read the topic
        // must not take the group's turn.
        let wants = |s: &Subscriber| {
            !(s.options.no_local && s.session.id == message.origin)
                && self.may_read(&s.identity, &s.session.client_id, message.topic.as_str())
        };
        index.matches(message.topic.as_str(), &mut matches, &wants);
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
            let delivery = Delivery::new(
                message.clone(),
                qos.min(message.qos),
                first.options.retain_as_published && message.retain,
                ids,
                revision,
            );
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
        let (queued, ticket) = session.enqueue(delivery, self.queue_limits, &self.persist);
        if queued == Enqueued::Dropped {
            self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
        (queued, ticket)
    }

    /// The highest durable ticket (`u64::MAX` without a store: everything is).
    pub fn durable(&self) -> u64 {
        self.persist.durable()
    }

    fn may_read(&self, identity: &Identity, client_id: &str, topic: &str) -> bool {
        self.access.may_read(identity, client_id, topic)
    }
}

/// A limit set by the operator would be passed (v5 reason 0x97).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaExceeded;

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

/// The keep-alive sweeper's loop (see [`Shared::ensure_keep_alive_sweeper`]).
async fn sweep_keep_alive(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = shared.clock_ms();
        for session in shared.sessions().values() {
            if session.keep_alive.mark_if_passed(now) {
                session.wake.nudge();
            }
        }
    }
}
