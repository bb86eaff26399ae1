//! [`SessionState`]: what a session remembers, and the only code that changes it. The QoS 1/2
//! flows both ways are methods here (queue → in flight → acknowledged; inbound QoS 2 ids until
//! PUBREL), each also telling the durable store through [`Persist`] when the session is stored
//! and the caller's connection still owns it. The types those methods take and answer with are
//! in `flows.rs`.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime};

use codec::{PacketId, QoS, SubscriptionId, SubscriptionOptions, TopicFilter};
use store::{EntryState, SessionRecord, SubscriptionRecord, WillRecord};
use tokio::sync::oneshot;

use super::flows::{Awaiting, InboundQos2, Outbound, Owner, PubRecOutcome, ReceiveMaximumExceeded};
use super::{Eviction, Expiry};
use crate::message::Delivery;
use crate::persist::Persist;

/// One subscription of a session, as the session remembers it.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub filter: TopicFilter,
    pub options: SubscriptionOptions,
    pub id: Option<SubscriptionId>,
}

/// The mutable part of a session. Locked briefly by the owning connection and by publishers
/// adding to the queue; the fields are private to the session module.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// Bumped by every connection that attaches; a connection whose generation is stale has
    /// been replaced and must stop touching the queue.
    pub(super) generation: u64,
    /// Set while a connection is attached: the way to evict it.
    evict: Option<oneshot::Sender<Eviction>>,
    expiry: Expiry,
    subscriptions: HashMap<Box<str>, Subscription>,
    /// Waiting to be sent, oldest first. Changed only through `push_queued`, `pop_queued` and
    /// `remove_queued`, which keep `queued_bytes`.
    pub(super) queue: VecDeque<Delivery>,
    /// Bytes of topic and payload in `queue`.
    pub(super) queued_bytes: usize,
    /// Sent and not yet acknowledged, oldest first.
    outbound: VecDeque<Outbound>,
    pub(super) next_packet_id: u16,
    /// QoS 2 packet identifiers received and not yet released (PUBREC sent, PUBREL awaited),
    /// each with the store ticket its PUBREC waits for (0 for none).
    inbound_qos2: HashMap<PacketId, u64>,
    /// The last `Delivery::seq` given out; the next stored entry gets the one after.
    pub(super) next_seq: u64,
    /// The durable store holds this session.
    pub(super) stored: bool,
    /// The queue went past its high-water mark; publishers may be waiting on `Session::space`.
    pub(super) congested: bool,
}

impl SessionState {
    pub(super) fn new(expiry: Expiry) -> Self {
        Self {
            generation: 0,
            evict: None,
            expiry,
            subscriptions: HashMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            outbound: VecDeque::new(),
            next_packet_id: 0,
            inbound_qos2: HashMap::new(),
            next_seq: 0,
            stored: false,
            congested: false,
        }
    }

    // --- Connections: attach, evict, detach -------------------------------------------------

    /// The generation of the attached (or last attached) connection.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_connected(&self) -> bool {
        self.evict.is_some()
    }

    /// A connection attaches: it owns the state from now on (a new generation), is reachable
    /// through `evict`, and sets the session's `expiry`. Returns the new generation.
    pub fn attach(&mut self, evict: oneshot::Sender<Eviction>, expiry: Expiry) -> u64 {
        self.generation += 1;
        self.evict = Some(evict);
        self.expiry = expiry;
        self.generation
    }

    /// The session is being replaced by a fresh one: whichever connection still holds it stops
    /// draining it.
    pub fn retire(&mut self) {
        self.generation += 1;
    }

    /// Tells the attached connection to go; false when none is attached.
    pub fn evict(&mut self, why: Eviction) -> bool {
        match self.evict.take() {
            Some(tx) => {
                let _ = tx.send(why);
                true
            }
            None => false,
        }
    }

    /// Connection `generation` ended. Returns whether it was still the owner (then the session
    /// is detached; otherwise a newer connection has it and nothing changes).
    pub fn detach(&mut self, generation: u64) -> bool {
        let owner = self.generation == generation;
        if owner {
            self.evict = None;
        }
        owner
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The client changed its Session Expiry Interval (v5 DISCONNECT).
    pub fn set_expiry(&mut self, expiry: Expiry) {
        self.expiry = expiry;
    }

    /// The last store position given out (a fresh session for the same client continues after
    /// it: positions are never reused for one client id).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Continues store positions after `seq`.
    pub fn continue_seq_after(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    // --- Subscriptions ---------------------------------------------------------------------

    /// Adds or replaces a subscription; true when one with the same filter existed.
    pub fn subscribe(&mut self, subscription: Subscription) -> bool {
        self.subscriptions
            .insert(subscription.filter.as_str().into(), subscription)
            .is_some()
    }

    /// Removes the subscription of `filter`; false when there was none.
    pub fn unsubscribe(&mut self, filter: &str) -> bool {
        self.subscriptions.remove(filter).is_some()
    }

    /// Whether the session holds a subscription to `filter`.
    pub fn is_subscribed(&self, filter: &str) -> bool {
        self.subscriptions.contains_key(filter)
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    /// Removes and returns every subscription (the session ends).
    pub fn take_subscriptions(&mut self) -> Vec<Subscription> {
        self.subscriptions.drain().map(|(_, s)| s).collect()
    }

    // --- The durable store -------------------------------------------------------------------

    #[cfg(test)]
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// Whether connection `generation` may change the session's stored state: the store holds
    /// the session and no newer connection took it over.
    pub fn owns_stored(&self, generation: u64) -> bool {
        self.stored && self.generation == generation
    }

    /// The stored form of a subscription.
    fn subscription_record(s: &Subscription) -> SubscriptionRecord {
        SubscriptionRecord {
            filter: s.filter.clone(),
            options: s.options,
            id: s.id,
        }
    }

    /// Stores a subscription just added to the session (persistent sessions owned by
    /// `owner.generation` only); the ticket the SUBACK waits for.
    pub fn store_subscription(&self, owner: Owner<'_>, s: &Subscription) -> u64 {
        if !self.owns_stored(owner.generation) {
            return 0;
        }
        owner
            .persist
            .subscription_stored(owner.client_id, Self::subscription_record(s))
    }

    /// Removes a subscription just dropped from the store; the ticket the UNSUBACK waits for.
    pub fn forget_subscription(&self, owner: Owner<'_>, filter: &str) -> u64 {
        if !self.owns_stored(owner.generation) {
            return 0;
        }
        owner
            .persist
            .subscription_forgotten(owner.client_id, filter)
    }

    /// The stored form of the session, or `None` for one that is not persistent. Its
    /// subscriptions are stored as rows of their own (see [`SessionState::store_subscription`]).
    pub fn record(
        &self,
        client_id: &str,
        disconnected_at: Option<SystemTime>,
        will: Option<WillRecord>,
        username: Option<&str>,
    ) -> Option<SessionRecord> {
        let expiry = self.expiry.stored()?;
        Some(SessionRecord {
            client_id: client_id.to_owned(),
            expiry,
            disconnected_at,
            subscriptions: Vec::new(),
            will,
            username: username.map(str::to_owned),
        })
    }

    /// At CONNECT: a persistent session is stored (one that becomes persistent with everything
    /// it already holds); one that stopped being persistent leaves the store. The ticket the
    /// CONNACK waits for.
    pub fn store_attached(
        &mut self,
        owner: Owner<'_>,
        will: Option<WillRecord>,
        username: Option<&str>,
    ) -> u64 {
        if !owner.persist.is_on() {
            return 0;
        }
        match self.record(owner.client_id, None, will, username) {
            Some(record) if self.stored => owner.persist.session_stored(record),
            Some(record) => {
                self.stored = true;
                let SessionState {
                    queue,
                    outbound,
                    next_seq,
                    inbound_qos2,
                    subscriptions,
                    ..
                } = self;
                let queued = queue.iter_mut().filter(|d| d.qos > QoS::AtMostOnce);
                for delivery in queued.chain(outbound.iter_mut().map(|o| &mut o.delivery)) {
                    *next_seq += 1;
                    delivery.seq = *next_seq;
                }
                let queued = queue
                    .iter()
                    .filter(|d| d.qos > QoS::AtMostOnce)
                    .map(|d| (d, None));
                let in_flight = outbound
                    .iter()
                    .map(|o| (&o.delivery, Some((o.packet_id, o.state.stored()))));
                owner.persist.session_adopted(
                    record,
                    owner.client_id,
                    subscriptions.values().map(Self::subscription_record),
                    queued.chain(in_flight),
                    inbound_qos2.keys().copied(),
                )
            }
            None => self.forget_stored(owner.client_id, owner.persist),
        }
    }

    /// Writes the session's record as it is now (persistent sessions owned by `generation`
    /// only); a session that is no longer persistent leaves the store. The ticket to wait for.
    pub fn store_record(
        &mut self,
        owner: Owner<'_>,
        disconnected_at: Option<SystemTime>,
        will: Option<WillRecord>,
        username: Option<&str>,
    ) -> u64 {
        if !self.owns_stored(owner.generation) {
            return 0;
        }
        match self.record(owner.client_id, disconnected_at, will, username) {
            Some(record) => owner.persist.session_stored(record),
            None => self.forget_stored(owner.client_id, owner.persist),
        }
    }

    /// Deletes the session from the store if it is there; the ticket to wait for.
    pub fn forget_stored(&mut self, client_id: &str, persist: &Persist) -> u64 {
        if !self.stored {
            return 0;
        }
        self.stored = false;
        persist.session_forgotten(client_id)
    }

    /// A delivery left the session without being acknowledged (expired, too big for the
    /// client, or refused by a failure PUBREC): it leaves the store too.
    fn dequeued(&self, seq: u64, owner: Owner<'_>) {
        if seq != 0 && self.owns_stored(owner.generation) {
            owner.persist.dequeued(owner.client_id, seq);
        }
    }

    // --- Outbound QoS 1/2 ---------------------------------------------------------------------

    pub(super) fn push_queued(&mut self, delivery: Delivery) {
        self.queued_bytes += delivery.message.size();
        self.queue.push_back(delivery);
    }

    fn pop_queued(&mut self) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        self.queued_bytes -= delivery.message.size();
        Some(delivery)
    }

    pub(super) fn remove_queued(&mut self, i: usize) -> Option<Delivery> {
        let delivery = self.queue.remove(i)?;
        self.queued_bytes -= delivery.message.size();
        Some(delivery)
    }

    /// Whether anything waits in the queue.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next delivery to send, with the packet id it goes out under (QoS 1/2), or `None`
    /// when the queue is empty or the next one is QoS 1/2 and `window` messages are already in
    /// flight. Expired messages are dropped on the way. Follow with [`SessionState::sent`] or
    /// [`SessionState::not_sent`].
    pub fn next_to_send(
        &mut self,
        window: usize,
        now: Instant,
        owner: Owner<'_>,
    ) -> Option<(Delivery, Option<PacketId>)> {
        loop {
            let front = self.queue.front()?;
            if front.qos != QoS::AtMostOnce && self.outbound.len() >= window {
                return None;
            }
            let delivery = self.pop_queued()?;
            if delivery.message.is_expired(now) {
                self.dequeued(delivery.seq, owner);
                continue;
            }
            let id = (delivery.qos != QoS::AtMostOnce).then(|| self.allocate_packet_id());
            return Some((delivery, id));
        }
    }

    /// The next packet identifier not in flight [MQTT-2.2.1-3]. The window is smaller than
    /// the identifier space, so a free one always exists.
    fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let Some(id) = PacketId::new(self.next_packet_id) else {
                continue;
            };
            if !self.outbound.iter().any(|o| o.packet_id == id) {
                return id;
            }
        }
    }

    /// A delivery from [`SessionState::next_to_send`] was dropped instead of sent (larger than
    /// the client accepts).
    pub fn not_sent(&self, delivery: &Delivery, owner: Owner<'_>) {
        self.dequeued(delivery.seq, owner);
    }

    /// A delivery from [`SessionState::next_to_send`] went out under `packet_id`: a QoS 1/2 one
    /// is in flight until acknowledged, and a stored entry records its packet id. Returns the
    /// ticket the PUBLISH must wait for: a QoS 2 PUBLISH waits until its packet id is on disk
    /// (resent after a crash under another id, the client would take it for a new message).
    /// `undelayed`: the PUBLISH is written now, not held behind packets waiting for the store
    /// (see `store::Op::UpdateEntry::delivered`).
    pub fn sent(
        &mut self,
        delivery: Delivery,
        packet_id: Option<PacketId>,
        undelayed: bool,
        owner: Owner<'_>,
    ) -> u64 {
        let Some(packet_id) = packet_id else {
            return 0;
        };
        let state = if delivery.qos == QoS::AtLeastOnce {
            Awaiting::PubAck
        } else {
            Awaiting::PubRec
        };
        let mut ticket = 0;
        if delivery.seq != 0 && self.owns_stored(owner.generation) {
            let gated = state == Awaiting::PubRec;
            let t = owner.persist.entry_sent(
                owner.client_id,
                delivery.seq,
                packet_id,
                state.stored(),
                !gated && undelayed,
            );
            if gated {
                ticket = t;
            }
        }
        self.outbound.push_back(Outbound {
            packet_id,
            delivery,
            state,
        });
        ticket
    }

    /// PUBACK (`expected` PubAck) or PUBCOMP (PubComp) for `id`: the flow ends if the message
    /// was waiting for that. Returns whether it was.
    pub fn acknowledged(&mut self, id: PacketId, expected: Awaiting, owner: Owner<'_>) -> bool {
        let Some(i) = self.find_outbound(id) else {
            return false;
        };
        if self.outbound[i].state != expected {
            return false;
        }
        let Some(done) = self.outbound.remove(i) else {
            return false;
        };
        self.dequeued(done.delivery.seq, owner);
        true
    }

    /// PUBREC for `id`, successful or not.
    pub fn pubrec(&mut self, id: PacketId, success: bool, owner: Owner<'_>) -> PubRecOutcome {
        let Some(i) = self.find_outbound(id) else {
            return PubRecOutcome::Unknown;
        };
        if self.outbound[i].state != Awaiting::PubRec {
            return PubRecOutcome::Ignored;
        }
        let seq = self.outbound[i].delivery.seq;
        if !success {
            self.outbound.remove(i);
            self.dequeued(seq, owner);
            return PubRecOutcome::Ended;
        }
        self.outbound[i].state = Awaiting::PubComp;
        // A PUBREL must not go out before its state is on disk: after a crash the broker would
        // resend the PUBLISH, which the client, done with the id, would take for a new message.
        let ticket = if seq == 0 || !self.owns_stored(owner.generation) {
            0
        } else {
            owner
                .persist
                .entry_sent(owner.client_id, seq, id, EntryState::AwaitingPubComp, false)
        };
        PubRecOutcome::Release { ticket }
    }

    /// The in-flight entry with packet id `id`, checking the oldest first since
    /// acknowledgements usually come in order.
    fn find_outbound(&self, id: PacketId) -> Option<usize> {
        self.outbound.iter().position(|o| o.packet_id == id)
    }

    /// What is in flight, oldest first (resent with DUP when a client resumes the session).
    pub fn in_flight(&self) -> impl Iterator<Item = &Outbound> {
        self.outbound.iter()
    }

    /// Drops the in-flight messages not yet received by the client (awaiting PUBACK or PUBREC)
    /// that `keep` refuses, as if never sent; a flow past PUBREC is the client's already and
    /// stays. Returns how many were dropped.
    pub fn drop_in_flight(&mut self, keep: impl Fn(&Delivery) -> bool, owner: Owner<'_>) -> usize {
        let mut dropped = Vec::new();
        self.outbound.retain(|o| {
            let gone = o.state != Awaiting::PubComp && !keep(&o.delivery);
            if gone {
                dropped.push(o.delivery.seq);
            }
            !gone
        });
        for &seq in &dropped {
            self.dequeued(seq, owner);
        }
        dropped.len()
    }

    // --- Inbound QoS 2 -----------------------------------------------------------------------

    /// A QoS 2 PUBLISH with packet id `id` arrived; `accepted` when it will be delivered (an
    /// unauthorized one is answered but not remembered). At most `receive_maximum` ids await
    /// PUBREL at once.
    pub fn inbound_publish(
        &mut self,
        id: PacketId,
        accepted: bool,
        receive_maximum: usize,
        owner: Owner<'_>,
    ) -> Result<InboundQos2, ReceiveMaximumExceeded> {
        if let Some(&first) = self.inbound_qos2.get(&id) {
            return Ok(InboundQos2::Duplicate { ticket: first });
        }
        if self.inbound_qos2.len() >= receive_maximum {
            return Err(ReceiveMaximumExceeded);
        }
        let mut ticket = 0;
        if accepted {
            self.inbound_qos2.insert(id, 0);
            if self.owns_stored(owner.generation) {
                ticket = owner.persist.inbound_added(owner.client_id, id);
            }
        }
        Ok(InboundQos2::New { ticket })
    }

    /// The message of inbound id `id` was routed: its PUBREC (and a duplicate's) waits for
    /// `ticket`.
    pub fn inbound_routed(&mut self, id: PacketId, ticket: u64) {
        if let Some(t) = self.inbound_qos2.get_mut(&id) {
            *t = ticket;
        }
    }

    /// PUBREL for `id`: the id is free again. `None` when it was not awaiting PUBREL; else the
    /// ticket the PUBCOMP waits for.
    pub fn inbound_release(&mut self, id: PacketId, owner: Owner<'_>) -> Option<u64> {
        self.inbound_qos2.remove(&id)?;
        Some(if self.owns_stored(owner.generation) {
            owner.persist.inbound_released(owner.client_id, id)
        } else {
            0
        })
    }

    // --- Congestion ----------------------------------------------------------------------------

    pub fn is_congested(&self) -> bool {
        self.congested
    }

    /// Clears the congestion mark once the queue is down to `low_water`; true when it did
    /// (publishers waiting on `Session::space` are to be woken).
    pub fn relieve_congestion(&mut self, low_water: usize) -> bool {
        if self.congested && self.queue.len() <= low_water {
            self.congested = false;
            return true;
        }
        false
    }

    // --- Recovery ------------------------------------------------------------------------------

    /// Rebuilds a session the store recovered: its subscriptions, queued and in-flight entries
    /// and inbound ids, in the order stored. The session counts as stored.
    pub fn restore(
        &mut self,
        subscriptions: impl IntoIterator<Item = Subscription>,
        entries: impl IntoIterator<Item = (Delivery, Option<(PacketId, Awaiting)>)>,
        inbound_qos2: impl IntoIterator<Item = PacketId>,
    ) {
        self.stored = true;
        for s in subscriptions {
            self.subscribe(s);
        }
        for (delivery, flight) in entries {
            self.next_seq = self.next_seq.max(delivery.seq);
            match flight {
                Some((packet_id, state)) => self.outbound.push_back(Outbound {
                    packet_id,
                    delivery,
                    state,
                }),
                None => self.push_queued(delivery),
            }
        }
        self.inbound_qos2
            .extend(inbound_qos2.into_iter().map(|id| (id, 0)));
    }
}
