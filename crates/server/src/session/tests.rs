//! Unit tests of the session without a socket: the QoS 1/2 flows both ways, what each step tells
//! the durable store, the queue policy and the expiry mapping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::{PacketId, QoS, TopicName};
use tokio::sync::oneshot;

use super::flows::ReceiveMaximumExceeded;
use super::*;
use crate::message::Message;
use crate::persist::testing::Recorder;

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn delivery(qos: QoS) -> Delivery {
    let message = Message::new(
        TopicName::try_from("t/1").unwrap(),
        Bytes::from_static(b"x"),
        qos,
        false,
    );
    Delivery::new(Arc::new(message), qos, false, Vec::new(), 0)
}

/// A session with a connection attached (generation 1); the receiver keeps it connected.
fn connected(expiry: Expiry) -> (Arc<Session>, oneshot::Receiver<Eviction>) {
    let session = Session::new(Arc::from("c1"), expiry);
    let (tx, rx) = oneshot::channel();
    let generation = session.lock().attach(tx, expiry);
    assert_eq!(generation, 1);
    (session, rx)
}

/// Queues one message of `qos` under a limit of 100 messages.
fn queue(session: &Session, persist: &Persist, qos: QoS) {
    session.enqueue(delivery(qos), QueueLimits::messages(100), persist);
}

/// Offers one message of `qos` (no store) under a limit of `max` messages: what happened.
fn offer(session: &Session, qos: QoS, max: usize) -> Enqueued {
    session
        .enqueue(delivery(qos), QueueLimits::messages(max), &NO_STORE)
        .0
}

/// A broker store that records ops, and the `Persist` in front of it.
fn recorder() -> (Arc<Recorder>, Persist) {
    let recorder = Arc::new(Recorder::default());
    (recorder.clone(), Persist::new(recorder))
}

fn owner<'a>(session: &'a Session, persist: &'a Persist) -> Owner<'a> {
    Owner {
        client_id: &session.client_id,
        generation: 1,
        persist,
    }
}

static NO_STORE: Persist = Persist::none();

/// Queues one message of `qos` (no store) and sends it under packet id 1.
fn one_in_flight(session: &Session, qos: QoS) -> MutexGuard<'_, SessionState> {
    session.enqueue(delivery(qos), QueueLimits::messages(100), &NO_STORE);
    let mut state = session.lock();
    let owner = owner(session, &NO_STORE);
    let (d, id) = state.next_to_send(10, Instant::now(), owner).unwrap();
    assert_eq!(id, Some(pid(1)));
    state.sent(d, id, true, owner);
    state
}

#[test]
fn qos1_goes_in_flight_within_the_window_until_puback() {
    let (session, _rx) = connected(Expiry::OnClose);
    queue(&session, &NO_STORE, QoS::AtLeastOnce);
    queue(&session, &NO_STORE, QoS::AtLeastOnce);
    let mut state = session.lock();
    let owner = owner(&session, &NO_STORE);
    let now = Instant::now();

    let (first, id) = state.next_to_send(1, now, owner).unwrap();
    assert_eq!(id, Some(pid(1)));
    assert_eq!(state.sent(first, id, true, owner), 0);
    assert!(
        state.next_to_send(1, now, owner).is_none(),
        "window of one is full"
    );
    assert_eq!(state.in_flight().count(), 1);

    assert!(
        !state.acknowledged(pid(1), Awaiting::PubComp, owner),
        "a PUBCOMP does not end a QoS 1 flow"
    );
    assert!(!state.acknowledged(pid(9), Awaiting::PubAck, owner));
    assert!(state.acknowledged(pid(1), Awaiting::PubAck, owner));
    assert!(!state.acknowledged(pid(1), Awaiting::PubAck, owner), "once");

    let (second, id) = state.next_to_send(1, now, owner).unwrap();
    assert_eq!(id, Some(pid(2)));
    state.sent(second, id, true, owner);
    assert!(!state.has_queued());
}

#[test]
fn qos2_flows_through_pubrec_and_pubcomp() {
    let (session, _rx) = connected(Expiry::OnClose);
    let owner = owner(&session, &NO_STORE);
    let mut state = one_in_flight(&session, QoS::ExactlyOnce);

    assert!(
        !state.acknowledged(pid(1), Awaiting::PubComp, owner),
        "PUBREC first"
    );
    assert_eq!(
        state.pubrec(pid(1), true, owner),
        PubRecOutcome::Release { ticket: 0 }
    );
    assert_eq!(state.pubrec(pid(1), true, owner), PubRecOutcome::Ignored);
    assert_eq!(state.in_flight().next().unwrap().state, Awaiting::PubComp);
    assert!(state.acknowledged(pid(1), Awaiting::PubComp, owner));
    assert_eq!(state.in_flight().count(), 0);
    assert_eq!(state.pubrec(pid(1), true, owner), PubRecOutcome::Unknown);
}

#[test]
fn a_failure_pubrec_ends_the_flow() {
    let (session, _rx) = connected(Expiry::OnClose);
    let owner = owner(&session, &NO_STORE);
    let mut state = one_in_flight(&session, QoS::ExactlyOnce);
    assert_eq!(state.pubrec(pid(1), false, owner), PubRecOutcome::Ended);
    assert_eq!(state.in_flight().count(), 0);
}

#[test]
fn packet_ids_skip_zero_and_those_in_flight() {
    let (session, _rx) = connected(Expiry::OnClose);
    for _ in 0..3 {
        queue(&session, &NO_STORE, QoS::AtLeastOnce);
    }
    let mut state = session.lock();
    let owner = owner(&session, &NO_STORE);
    let now = Instant::now();
    let (d, id) = state.next_to_send(10, now, owner).unwrap();
    state.sent(d, id, true, owner);
    // Wrap the counter round to just before the id still in flight.
    state.next_packet_id = u16::MAX;
    let (d, id) = state.next_to_send(10, now, owner).unwrap();
    assert_eq!(id, Some(pid(2)), "skips 0 and 1 (in flight)");
    state.sent(d, id, true, owner);
}

#[test]
fn qos0_goes_out_without_an_id_past_a_full_window() {
    let (session, _rx) = connected(Expiry::OnClose);
    queue(&session, &NO_STORE, QoS::AtLeastOnce);
    queue(&session, &NO_STORE, QoS::AtMostOnce);
    let mut state = session.lock();
    let owner = owner(&session, &NO_STORE);
    let (d, id) = state.next_to_send(1, Instant::now(), owner).unwrap();
    state.sent(d, id, true, owner);
    let (d, id) = state.next_to_send(1, Instant::now(), owner).unwrap();
    assert_eq!((d.qos, id), (QoS::AtMostOnce, None));
    assert_eq!(state.sent(d, id, true, owner), 0);
    assert_eq!(state.in_flight().count(), 1, "QoS 0 is never in flight");
}

#[test]
fn inbound_qos2_ids_are_remembered_until_pubrel() {
    let (session, _rx) = connected(Expiry::OnClose);
    let mut state = session.lock();
    let owner = owner(&session, &NO_STORE);
    assert_eq!(
        state.inbound_publish(pid(5), true, 2, owner),
        Ok(InboundQos2::New { ticket: 0 })
    );
    state.inbound_routed(pid(5), 42);
    assert_eq!(
        state.inbound_publish(pid(5), true, 2, owner),
        Ok(InboundQos2::Duplicate { ticket: 42 }),
        "a repeat is answered no sooner than the first"
    );
    // Refused (not authorized): answered, not remembered.
    assert_eq!(
        state.inbound_publish(pid(6), false, 2, owner),
        Ok(InboundQos2::New { ticket: 0 })
    );
    assert_eq!(
        state.inbound_publish(pid(6), false, 2, owner),
        Ok(InboundQos2::New { ticket: 0 })
    );
    state.inbound_publish(pid(7), true, 2, owner).unwrap();
    assert_eq!(
        state.inbound_publish(pid(8), true, 2, owner),
        Err(ReceiveMaximumExceeded)
    );
    assert_eq!(state.inbound_release(pid(5), owner), Some(0));
    assert_eq!(state.inbound_release(pid(5), owner), None, "released once");
    state.inbound_publish(pid(8), true, 2, owner).unwrap();
}

#[test]
fn expired_messages_are_dropped_when_their_turn_comes() {
    let (session, _rx) = connected(Expiry::OnClose);
    let mut expiring = delivery(QoS::AtLeastOnce);
    let message = Message::new(
        TopicName::try_from("t/1").unwrap(),
        Bytes::new(),
        QoS::AtLeastOnce,
        false,
    );
    let mut message = message;
    message.expires_at = Some(Instant::now());
    expiring.message = Arc::new(message);
    session.enqueue(expiring, QueueLimits::messages(100), &NO_STORE);
    queue(&session, &NO_STORE, QoS::AtMostOnce);
    let mut state = session.lock();
    let later = Instant::now() + Duration::from_millis(1);
    let (d, id) = state
        .next_to_send(10, later, owner(&session, &NO_STORE))
        .unwrap();
    assert_eq!(
        (d.qos, id),
        (QoS::AtMostOnce, None),
        "the expired one was skipped"
    );
}

#[test]
fn a_stored_session_tells_the_store_each_step() {
    let (ops, persist) = recorder();
    let (session, _rx) = connected(Expiry::Never);
    let owner = owner(&session, &persist);
    let ticket = session.lock().store_attached(owner, None, Some("alice"));
    assert!(ticket > 0);
    assert_eq!(ops.take(), ["PutSession c1"]);

    queue(&session, &persist, QoS::AtLeastOnce);
    queue(&session, &persist, QoS::ExactlyOnce);
    queue(&session, &persist, QoS::AtMostOnce);
    assert_eq!(
        ops.take(),
        [
            "PutMessage 1",
            "Enqueue 1 Queued None",
            "PutMessage 2",
            "Enqueue 2 Queued None"
        ],
        "QoS 0 is never stored"
    );

    let mut state = session.lock();
    let now = Instant::now();
    let (d, id) = state.next_to_send(10, now, owner).unwrap();
    assert_eq!(
        state.sent(d, id, true, owner),
        0,
        "a QoS 1 PUBLISH waits for nothing"
    );
    let (d, id) = state.next_to_send(10, now, owner).unwrap();
    let gate = state.sent(d, id, true, owner);
    assert!(gate > 0, "a QoS 2 PUBLISH waits for its packet id on disk");
    let (d, id) = state.next_to_send(10, now, owner).unwrap();
    state.sent(d, id, true, owner);
    assert_eq!(
        ops.take(),
        [
            "UpdateEntry 1 AwaitingPubAck Some(1) delivered=true",
            "UpdateEntry 2 AwaitingPubRec Some(2) delivered=false"
        ]
    );

    state.acknowledged(pid(1), Awaiting::PubAck, owner);
    let PubRecOutcome::Release { ticket } = state.pubrec(pid(2), true, owner) else {
        panic!("PUBREL follows");
    };
    assert!(ticket > gate, "the PUBREL waits for the new state");
    state.acknowledged(pid(2), Awaiting::PubComp, owner);
    assert_eq!(
        ops.take(),
        [
            "Dequeue 1",
            "UpdateEntry 2 AwaitingPubComp Some(2) delivered=false",
            "Dequeue 2"
        ]
    );

    state.inbound_publish(pid(9), true, 10, owner).unwrap();
    state.inbound_release(pid(9), owner);
    assert_eq!(ops.take(), ["InboundAdd 9", "InboundRemove 9"]);
}

#[test]
fn a_taken_over_connection_changes_nothing_stored() {
    let (ops, persist) = recorder();
    let (session, _rx) = connected(Expiry::Never);
    let old = owner(&session, &persist);
    session.lock().store_attached(old, None, None);
    queue(&session, &persist, QoS::AtLeastOnce);
    let (tx, _rx2) = oneshot::channel();
    let mut state = session.lock();
    assert_eq!(state.attach(tx, Expiry::Never), 2);
    ops.take();
    let (d, id) = state.next_to_send(10, Instant::now(), old).unwrap();
    state.sent(d, id, true, old);
    state.acknowledged(pid(1), Awaiting::PubAck, old);
    state.inbound_publish(pid(3), true, 10, old).unwrap();
    assert_eq!(state.store_record(old, None, None, None), 0);
    assert!(
        ops.take().is_empty(),
        "generation 1 no longer owns the stored session"
    );
    assert!(!state.detach(1), "nor can it detach its successor");
    assert!(state.is_connected());
}

#[test]
fn a_session_that_becomes_persistent_stores_what_it_holds() {
    let (ops, persist) = recorder();
    let (session, _rx) = connected(Expiry::OnClose);
    queue(&session, &persist, QoS::AtLeastOnce);
    queue(&session, &persist, QoS::AtMostOnce);
    queue(&session, &persist, QoS::ExactlyOnce);
    let mut state = session.lock();
    let owner = owner(&session, &persist);
    let (d, id) = state.next_to_send(10, Instant::now(), owner).unwrap();
    state.sent(d, id, true, owner);
    state.inbound_publish(pid(4), true, 10, owner).unwrap();
    assert!(ops.take().is_empty(), "nothing stored while not persistent");

    state.set_expiry(Expiry::After(Duration::from_secs(60)));
    state.store_attached(owner, None, None);
    assert!(state.is_stored());
    assert_eq!(
        ops.take(),
        [
            "PutSession c1",
            "PutMessage 1",
            "Enqueue 1 Queued None",
            "PutMessage 2",
            "Enqueue 2 AwaitingPubAck Some(1)",
            "InboundAdd 4"
        ],
        "queued QoS 1/2 first, then in flight, then inbound ids"
    );

    // Back to a clean session: it leaves the store.
    state.set_expiry(Expiry::OnClose);
    assert!(state.store_attached(owner, None, None) > 0);
    assert!(!state.is_stored());
    assert_eq!(ops.take(), ["DeleteSession c1"]);
}

#[test]
fn a_full_queue_drops_qos0_first_and_counts_every_drop() {
    let (session, _rx) = connected(Expiry::OnClose);
    assert_eq!(
        offer(&session, QoS::AtMostOnce, 2),
        Enqueued::Queued { congested: true }
    );
    session.enqueue(
        delivery(QoS::AtLeastOnce),
        QueueLimits::messages(2),
        &NO_STORE,
    );
    // Full: a QoS 1 message takes the place of the queued QoS 0 one.
    assert!(matches!(
        offer(&session, QoS::AtLeastOnce, 2),
        Enqueued::Queued { .. }
    ));
    assert_eq!(offer(&session, QoS::AtLeastOnce, 2), Enqueued::Dropped);
    assert_eq!(session.dropped.load(Ordering::Relaxed), 2);
    let state = session.lock();
    assert_eq!(state.queued(), 2);
    assert!(state.queue.iter().all(|d| d.qos == QoS::AtLeastOnce));
}

#[test]
fn qos0_is_not_kept_for_an_offline_client() {
    let session = Session::new(Arc::from("c1"), Expiry::Never);
    assert_eq!(offer(&session, QoS::AtMostOnce, 10), Enqueued::Offline);
    assert!(matches!(
        offer(&session, QoS::AtLeastOnce, 10),
        Enqueued::Queued { congested: false }
    ));
}

#[test]
fn expiry_intervals_map_under_the_cap() {
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(Expiry::from_interval(0, hour), (Expiry::OnClose, false));
    assert_eq!(
        Expiry::from_interval(60, hour),
        (Expiry::After(Duration::from_secs(60)), false)
    );
    assert_eq!(
        Expiry::from_interval(7200, hour),
        (Expiry::After(Duration::from_secs(3600)), true)
    );
    assert_eq!(
        Expiry::from_interval(u32::MAX, hour),
        (Expiry::After(Duration::from_secs(3600)), true)
    );
    assert_eq!(
        Expiry::from_interval(u32::MAX, None),
        (Expiry::Never, false)
    );
}

#[test]
fn eviction_reaches_the_attached_connection_once() {
    let (session, mut rx) = connected(Expiry::OnClose);
    let mut state = session.lock();
    assert!(state.evict(Eviction::TakenOver));
    assert!(!state.evict(Eviction::Shutdown), "already told");
    assert_eq!(rx.try_recv(), Ok(Eviction::TakenOver));
    assert!(state.detach(1));
    assert!(!state.is_connected());
}

#[test]
fn a_message_larger_than_the_byte_limit_does_not_empty_the_queue() {
    let (session, _rx) = connected(Expiry::OnClose);
    let limits = QueueLimits {
        messages: 100,
        bytes: 100,
    };
    session.enqueue(delivery(QoS::AtMostOnce), limits, &NO_STORE);
    session.enqueue(delivery(QoS::AtMostOnce), limits, &NO_STORE);
    let big = Message::new(
        TopicName::try_from("t/1").unwrap(),
        Bytes::from(vec![b'x'; 200]),
        QoS::AtLeastOnce,
        false,
    );
    let big = Delivery::new(Arc::new(big), QoS::AtLeastOnce, false, Vec::new(), 0);
    assert_eq!(session.enqueue(big, limits, &NO_STORE).0, Enqueued::Dropped);
    assert_eq!(session.lock().queued(), 2, "the QoS 0 messages stay");
}

#[test]
fn properties_count_towards_a_message_size() {
    let mut properties = codec::PublishProperties::default();
    properties.user_properties.push((
        codec::MqttString::try_from("k").unwrap(),
        codec::MqttString::try_from("v".repeat(1000).as_str()).unwrap(),
    ));
    properties.correlation_data = Some(Bytes::from(vec![0u8; 500]));
    let message = Message::new(
        TopicName::try_from("t/1").unwrap(),
        Bytes::from_static(b"x"),
        QoS::AtMostOnce,
        false,
    )
    .with_properties(properties);
    assert_eq!(message.size(), 3 + 1 + 1 + 1000 + 500);
}
