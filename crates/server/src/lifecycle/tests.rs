//! Unit tests of the lifecycle on a broker without sockets, on tokio's paused clock: take-over,
//! clean start, expiry, and wills with their delay.

use std::sync::Arc;
use std::time::Duration;

use auth::AllowAll;
use bytes::Bytes;
use codec::{LastWill, QoS, SubscriptionOptions, TopicFilter, TopicName, WillProperties};
use tokio::sync::oneshot;

use super::*;
use crate::options::BrokerOptions;
use crate::persist::Persist;
use crate::session::Subscription;

fn broker() -> Arc<Shared> {
    Arc::new(Shared::new(
        BrokerOptions::default(),
        Arc::new(AllowAll),
        None,
        Persist::default(),
    ))
}

/// Attaches a connection for `client_id`; the receiver hears its eviction.
fn connect(
    shared: &Shared,
    client_id: &str,
    clean_start: bool,
    expiry: Expiry,
) -> (Attached, oneshot::Receiver<Eviction>) {
    connect_as(shared, client_id, clean_start, expiry, None).expect("the same (anonymous) owner")
}

/// Attaches a connection of `user` (`None`: anonymous).
fn connect_as(
    shared: &Shared,
    client_id: &str,
    clean_start: bool,
    expiry: Expiry,
    user: Option<&str>,
) -> Result<(Attached, oneshot::Receiver<Eviction>), NotOwner> {
    let (evict, rx) = oneshot::channel();
    let identity = Arc::new(auth::Identity {
        user: user.map(Arc::from),
    });
    attach(
        shared,
        Attach {
            client_id: &Arc::from(client_id),
            clean_start,
            expiry,
            identity: &identity,
            evict,
            keep_alive_ms: 60_000,
            will: None,
        },
    )
    .map(|attached| (attached, rx))
}

fn subscribe(shared: &Shared, session: &Arc<Session>, filter: &str) {
    let subscription = Subscription {
        filter: TopicFilter::try_from(filter).unwrap(),
        options: SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        id: None,
    };
    session.lock().subscribe(subscription.clone());
    shared.index_subscriptions(session, [&subscription], &Arc::default());
}

fn will(delay_secs: Option<u32>) -> LastWill {
    LastWill {
        topic: TopicName::try_from("wills/c1").unwrap(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay_secs,
            ..Default::default()
        },
    }
}

fn leave(shared: &Arc<Shared>, attached: &Attached, will: Option<LastWill>, close: Close) {
    detach(
        shared,
        Detach {
            session: &attached.session,
            generation: attached.generation,
            identity: &Arc::default(),
            will,
            close,
        },
    );
}

/// A connected subscriber of `wills/#`: its queue shows which wills went out.
fn watcher(shared: &Shared) -> (Arc<Session>, oneshot::Receiver<Eviction>) {
    let (attached, rx) = connect(shared, "watcher", true, Expiry::OnClose);
    subscribe(shared, &attached.session, "wills/#");
    (attached.session, rx)
}

fn registered(shared: &Shared, client_id: &str) -> bool {
    shared.sessions().contains_key(client_id)
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() {
    let shared = broker();
    let (first, mut first_rx) = connect(&shared, "c1", false, Expiry::Never);
    subscribe(&shared, &first.session, "a/#");
    assert!(!first.present);
    let (second, _rx) = connect(&shared, "c1", false, Expiry::Never);
    assert_eq!(first_rx.try_recv(), Ok(Eviction::TakenOver));
    assert!(second.present);
    assert!(Arc::ptr_eq(&first.session, &second.session));
    assert_eq!(second.generation, first.generation + 1);
    // The old connection's end changes nothing: the new one owns the session.
    leave(&shared, &first, None, Close::TakenOver);
    assert!(second.session.lock().is_connected());
    assert_eq!(shared.index_read().len(), 1, "subscription kept");
}

#[tokio::test]
async fn only_the_owner_attaches_to_a_session() {
    let shared = broker();
    let (alice, mut alice_rx) =
        connect_as(&shared, "c1", false, Expiry::Never, Some("alice")).unwrap();
    for (user, clean_start) in [(Some("bob"), false), (Some("bob"), true), (None, false)] {
        let refused = connect_as(&shared, "c1", clean_start, Expiry::Never, user);
        assert_eq!(
            refused.err().map(|_| ()),
            Some(()),
            "{user:?} {clean_start}"
        );
    }
    assert!(alice_rx.try_recv().is_err(), "the owner was not told to go");
    assert!(alice.session.lock().is_connected());
    assert!(Arc::ptr_eq(&shared.sessions()["c1"], &alice.session));
    // The owner itself takes over as before.
    let (again, _rx) = connect_as(&shared, "c1", false, Expiry::Never, Some("alice")).unwrap();
    assert!(again.present);
    assert_eq!(alice_rx.try_recv(), Ok(Eviction::TakenOver));
}

#[tokio::test]
async fn clean_start_discards_the_old_session() {
    let shared = broker();
    let (first, mut first_rx) = connect(&shared, "c1", false, Expiry::Never);
    subscribe(&shared, &first.session, "a/#");
    let (second, _rx) = connect(&shared, "c1", true, Expiry::Never);
    assert_eq!(first_rx.try_recv(), Ok(Eviction::TakenOver));
    assert!(!second.present);
    assert!(!Arc::ptr_eq(&first.session, &second.session));
    assert_eq!(
        shared.index_read().len(),
        0,
        "the old subscriptions left the index"
    );
    assert!(
        first.session.lock().generation() != first.generation,
        "the old connection no longer owns the old session"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_ends_when_its_expiry_runs_out() {
    let shared = broker();
    let (attached, _rx) = connect(&shared, "c1", false, Expiry::After(Duration::from_secs(10)));
    subscribe(&shared, &attached.session, "a/#");
    leave(&shared, &attached, None, Close::Normal);
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(registered(&shared, "c1"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!registered(&shared, "c1"));
    assert_eq!(shared.index_read().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_within_the_expiry_keeps_the_session() {
    let shared = broker();
    let expiry = Expiry::After(Duration::from_secs(10));
    let (attached, _rx) = connect(&shared, "c1", false, expiry);
    leave(&shared, &attached, None, Close::Normal);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (back, _rx2) = connect(&shared, "c1", false, expiry);
    assert!(back.present);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(registered(&shared, "c1"));
}

#[tokio::test]
async fn a_clean_session_ends_with_its_connection_and_its_will_goes_out_at_once() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let (attached, _rx) = connect(&shared, "c1", true, Expiry::OnClose);
    leave(&shared, &attached, Some(will(Some(30))), Close::WithWill);
    assert!(!registered(&shared, "c1"));
    assert_eq!(
        watcher.lock().queued(),
        1,
        "a delay is capped by an expiry of 0"
    );
}

#[tokio::test]
async fn a_normal_disconnect_discards_the_will() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let (attached, _rx) = connect(&shared, "c1", true, Expiry::OnClose);
    leave(&shared, &attached, Some(will(None)), Close::Normal);
    assert_eq!(watcher.lock().queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_will_goes_out_after_its_delay() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let (attached, _rx) = connect(&shared, "c1", false, Expiry::After(Duration::from_secs(60)));
    leave(&shared, &attached, Some(will(Some(5))), Close::WithWill);
    tokio::time::sleep(Duration::from_millis(4_900)).await;
    assert_eq!(watcher.lock().queued(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watcher.lock().queued(), 1);
    assert!(registered(&shared, "c1"), "the session outlives its will");
}

#[tokio::test(start_paused = true)]
async fn the_will_delay_is_capped_by_the_session_expiry() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let (attached, _rx) = connect(&shared, "c1", false, Expiry::After(Duration::from_secs(10)));
    leave(&shared, &attached, Some(will(Some(300))), Close::WithWill);
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert_eq!(watcher.lock().queued(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watcher.lock().queued(), 1);
    assert!(!registered(&shared, "c1"));
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_within_the_will_delay_cancels_the_will() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let expiry = Expiry::Never;
    let (attached, _rx) = connect(&shared, "c1", false, expiry);
    leave(&shared, &attached, Some(will(Some(5))), Close::WithWill);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_back, _rx2) = connect(&shared, "c1", false, expiry);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(watcher.lock().queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_taken_over_connection_sends_only_an_immediate_will() {
    let shared = broker();
    let (watcher, _w) = watcher(&shared);
    let (first, _rx) = connect(&shared, "c1", false, Expiry::Never);
    let (_second, _rx2) = connect(&shared, "c1", false, Expiry::Never);
    leave(&shared, &first, Some(will(Some(5))), Close::TakenOver);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(watcher.lock().queued(), 0, "the delayed will is dropped");
    leave(&shared, &first, Some(will(None)), Close::TakenOver);
    assert_eq!(watcher.lock().queued(), 1, "an immediate one goes out");
}
