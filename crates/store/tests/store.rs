//! The store through its public API, on real files in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use codec::QoS;
use common::*;
use store::{
    EntryState, MessageRecord, Op, Policy, QueueEntry, SessionExpiry, Store, StoreError, Ticket,
};

fn batch() -> Policy {
    Policy::Batch {
        max_delay: Duration::from_millis(2),
        max_size: 1024,
    }
}

fn open(dir: &std::path::Path) -> (Store, store::Recovered) {
    Store::open(dir, batch()).unwrap()
}

/// A `batch` store whose batches do not commit by delay or size within a test (30 s, a million
/// ops): only cancelling out or idle submitters make them durable.
fn open_without_commits_of_its_own(dir: &std::path::Path) -> Store {
    let policy = Policy::Batch {
        max_delay: Duration::from_secs(30),
        max_size: 1_000_000,
    };
    Store::open(dir, policy).unwrap().0
}

/// Submits, waits until durable, and closes.
async fn write(dir: &std::path::Path, ops: Vec<Op>) -> store::StoreStats {
    let (store, _) = open(dir);
    let ticket = store.submit(ops);
    tokio::time::timeout(Duration::from_secs(10), store.wait(ticket))
        .await
        .expect("durable within 10 s");
    let stats = store.stats();
    store.close();
    stats
}

#[tokio::test]
async fn every_record_round_trips_through_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let message = Arc::new(full_message("a/b/c"));
    let mut entry = QueueEntry {
        message_id: 5,
        qos: QoS::ExactlyOnce,
        retain: true,
        subscription_ids: vec![sub_id(42), sub_id(268_435_455)],
        packet_id: Some(pid(65535)),
        state: EntryState::AwaitingPubRec,
    };
    let mut ops = vec![
        put_session(full_session("full")),
        put_session(session("bare")),
        Op::PutMessage {
            id: 5,
            message: Arc::clone(&message),
        },
    ];
    let states = [
        EntryState::Queued,
        EntryState::AwaitingPubAck,
        EntryState::AwaitingPubRec,
        EntryState::AwaitingPubComp,
    ];
    for (seq, state) in states.into_iter().enumerate() {
        entry.state = state;
        entry.packet_id = (state != EntryState::Queued).then(|| pid(seq as u16 + 1));
        ops.push(enqueue("full", seq as u64, entry.clone()));
    }
    ops.push(Op::InboundAdd {
        client_id: client("full"),
        packet_id: pid(9),
    });
    ops.push(Op::InboundAdd {
        client_id: client("full"),
        packet_id: pid(1),
    });
    ops.push(Op::Retain {
        topic: topic("a/b/c"),
        message: Some(Arc::clone(&message)),
    });
    ops.push(Op::Retain {
        topic: topic("plain"),
        message: Some(Arc::new(plain_message("plain", b"x"))),
    });
    write(dir.path(), ops).await;

    let (store, recovered) = open(dir.path());
    assert_eq!(recovered.sessions.len(), 2);
    let bare = &recovered.sessions[0];
    assert_eq!(bare.record, session("bare"));
    assert!(bare.queue.is_empty() && bare.inbound_qos2.is_empty());
    let full = &recovered.sessions[1];
    assert_eq!(full.record, full_session("full"));
    assert_eq!(full.inbound_qos2, vec![pid(1), pid(9)]);
    assert_eq!(full.queue.len(), 4);
    for (i, (seq, got, m)) in full.queue.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(got.state, states[i]);
        assert_eq!(got.subscription_ids, entry.subscription_ids);
        assert_eq!(**m, *message);
    }
    // One message, shared by every entry.
    assert!(Arc::ptr_eq(&full.queue[0].2, &full.queue[3].2));
    assert_eq!(
        recovered.retained,
        vec![(*message).clone(), plain_message("plain", b"x")]
    );
    assert!(store.next_message_id() > 5);
    store.close();
    assert_eq!(rows(dir.path(), "messages"), 1);
}

#[tokio::test]
async fn dropping_the_store_flushes_what_was_submitted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) =
            Store::open(dir.path(), Policy::Interval(Duration::from_secs(3600))).unwrap();
        store.submit_one(put_session(session("kept")));
    }
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.sessions[0].record.client_id, "kept");
}

#[tokio::test]
async fn delete_session_removes_entries_inbound_and_unused_messages() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        vec![
            put_session(session("gone")),
            put_session(session("stays")),
            put_message(1, plain_message("t", b"only gone")),
            put_message(2, plain_message("t", b"both")),
            enqueue("gone", 1, entry(1)),
            enqueue("gone", 2, entry(2)),
            enqueue("stays", 1, entry(2)),
            Op::InboundAdd {
                client_id: client("gone"),
                packet_id: pid(3),
            },
            Op::InboundAdd {
                client_id: client("stays"),
                packet_id: pid(4),
            },
        ],
    )
    .await;
    write(
        dir.path(),
        vec![Op::DeleteSession {
            client_id: "gone".into(),
        }],
    )
    .await;
    assert_eq!(rows(dir.path(), "queue"), 1);
    assert_eq!(rows(dir.path(), "inbound"), 1);
    assert_eq!(rows(dir.path(), "messages"), 1);
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.sessions.len(), 1);
    let stays = &recovered.sessions[0];
    assert_eq!(stays.record.client_id, "stays");
    assert_eq!(stays.queue.len(), 1);
    assert_eq!(&stays.queue[0].2.payload[..], b"both");
    assert_eq!(stays.inbound_qos2, vec![pid(4)]);
}

#[tokio::test]
async fn message_row_lives_while_an_entry_refers_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = vec![put_message(7, plain_message("t", b"shared"))];
    for c in ["a", "b", "c"] {
        ops.push(put_session(session(c)));
        ops.push(enqueue(c, 1, entry(7)));
    }
    write(dir.path(), ops).await;
    assert_eq!(rows(dir.path(), "messages"), 1);

    write(dir.path(), vec![dequeue("a", 1), dequeue("b", 1)]).await;
    assert_eq!(
        rows(dir.path(), "messages"),
        1,
        "one entry still refers to it"
    );
    let (store, recovered) = open(dir.path());
    let queues: Vec<usize> = recovered.sessions.iter().map(|s| s.queue.len()).collect();
    assert_eq!(queues, vec![0, 0, 1]);
    assert_eq!(&recovered.sessions[2].queue[0].2.payload[..], b"shared");
    // The counts were rebuilt at open: the last dequeue deletes the row.
    let ticket = store.submit_one(dequeue("c", 1));
    store.wait(ticket).await;
    store.close();
    assert_eq!(rows(dir.path(), "messages"), 0);
    assert_eq!(rows(dir.path(), "queue"), 0);
}

#[tokio::test]
async fn enqueue_then_dequeue_in_one_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stats = write(
        dir.path(),
        vec![
            put_session(session("s")),
            // Enqueued and acknowledged before the batch commits: nothing of it is written.
            put_message(1, plain_message("t", b"acked")),
            enqueue("s", 1, entry(1)),
            dequeue("s", 1),
            // A message no entry refers to is not written either.
            put_message(2, plain_message("t", b"nobody")),
            // Enqueued, then sent: the update folds into the entry.
            put_message(3, plain_message("t", b"in flight")),
            enqueue("s", 2, entry(3)),
            update("s", 2, Some(pid(10)), EntryState::AwaitingPubAck, false),
        ],
    )
    .await;
    // Cancelled: enqueue + dequeue (2), PutMessage 1 and 2, the folded update.
    assert_eq!(stats.ops_cancelled, 5);
    assert_eq!(stats.ops_written, 3);
    assert_eq!(stats.batches, 1);
    assert_eq!(rows(dir.path(), "messages"), 1);
    assert_eq!(rows(dir.path(), "queue"), 1);
    let (_, recovered) = open(dir.path());
    let (seq, e, m) = &recovered.sessions[0].queue[0];
    assert_eq!(*seq, 2);
    assert_eq!(e.packet_id, Some(pid(10)));
    assert_eq!(e.state, EntryState::AwaitingPubAck);
    assert_eq!(&m.payload[..], b"in flight");
}

#[tokio::test]
async fn a_batch_that_cancels_out_is_durable_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing would commit for 30 s: only cancelling out makes a batch durable here.
    let store = open_without_commits_of_its_own(dir.path());
    let queued = store.submit([
        put_message(1, plain_message("t", b"m")),
        enqueue("s", 1, entry(1)),
    ]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store.durable() < queued,
        "an entry to write waits for its batch"
    );

    // The subscriber acknowledges before the batch commits: nothing is left to write.
    let acked = store.submit_one(dequeue("s", 1));
    assert_eq!(acked, queued, "same batch");
    tokio::time::timeout(Duration::from_secs(5), store.wait(acked))
        .await
        .expect("durable without waiting for the batch's delay");
    let stats = store.stats();
    assert_eq!(stats.batches, 0, "no write transaction");
    assert_eq!(stats.batches_unwritten, 1);
    assert_eq!((stats.ops_written, stats.ops_cancelled), (0, 3));

    // A batch with something left to write is not cut short by a pair that cancels out.
    let kept = store.submit_one(put_session(session("s")));
    store.submit([
        put_message(2, plain_message("t", b"n")),
        enqueue("s", 2, entry(2)),
        dequeue("s", 2),
    ]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.durable() < kept, "the session waits for its batch");
    store.close();
    assert_eq!(store.stats().batches, 1);
    assert_eq!(rows(dir.path(), "sessions"), 1);
    assert_eq!(rows(dir.path(), "queue"), 0);
    assert_eq!(rows(dir.path(), "messages"), 0);
}

#[tokio::test]
async fn idle_submitters_wait_for_acknowledgements_of_delivered_entries_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_without_commits_of_its_own(dir.path());
    // An entry delivered to its (connected) client: only its acknowledgement is left to come.
    let sent = store.submit([
        put_message(1, plain_message("t", b"sent")),
        enqueue("online", 1, entry(1)),
        update("online", 1, Some(pid(1)), EntryState::AwaitingPubAck, true),
    ]);
    store.submitters_idle();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store.durable() < sent,
        "committed instead of waiting for the acknowledgement"
    );
    store.submit_one(dequeue("online", 1));
    assert!(
        store.durable() >= sent,
        "the acknowledgement cancelled the batch"
    );
    assert_eq!(store.stats().batches, 0);

    // An entry still queued (its client is away): nothing will cancel it, so the idle rule
    // commits it after the grace.
    let queued = store.submit([
        put_message(2, plain_message("t", b"queued")),
        enqueue("offline", 1, entry(2)),
    ]);
    store.submitters_idle();
    tokio::time::timeout(Duration::from_secs(10), store.wait(queued))
        .await
        .expect("committed once the submitters went idle");
    assert_eq!(store.stats().batches, 1);

    // An entry whose packet waits for this very change (a QoS 2 PUBLISH): its acknowledgement
    // cannot come before the commit, so the idle rule commits it too.
    let gated = store.submit([
        put_message(3, plain_message("t", b"qos 2")),
        enqueue("online", 2, entry(3)),
        update("online", 2, Some(pid(2)), EntryState::AwaitingPubRec, false),
    ]);
    store.submitters_idle();
    tokio::time::timeout(Duration::from_secs(10), store.wait(gated))
        .await
        .expect("committed once the submitters went idle");
    assert_eq!(store.stats().batches, 2);
    store.close();
    assert_eq!(rows(dir.path(), "queue"), 2);
}

#[tokio::test]
async fn ops_naming_a_client_through_another_allocation_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // The same client id, but not a clone of the Arc the entry was enqueued with: no coalescing,
    // and the same outcome.
    let other = |id: &str| -> Arc<str> { Arc::from(id) };
    let stats = write(
        dir.path(),
        vec![
            put_session(session("s")),
            put_message(1, plain_message("t", b"acked")),
            enqueue("s", 1, entry(1)),
            Op::Dequeue {
                client_id: other("s"),
                seq: 1,
            },
            put_message(2, plain_message("t", b"in flight")),
            enqueue("s", 2, entry(2)),
            Op::UpdateEntry {
                client_id: other("s"),
                seq: 2,
                packet_id: Some(pid(7)),
                state: EntryState::AwaitingPubAck,
                delivered: false,
            },
        ],
    )
    .await;
    // Everything written: the session, both messages (each was referred to), both entries, the
    // removal and the update.
    assert_eq!(
        (stats.ops_written, stats.ops_cancelled),
        (7, 0),
        "{stats:?}"
    );
    assert_eq!(rows(dir.path(), "queue"), 1);
    assert_eq!(rows(dir.path(), "messages"), 1);
    let (_, recovered) = open(dir.path());
    let (seq, e, m) = &recovered.sessions[0].queue[0];
    assert_eq!(
        (*seq, e.packet_id, e.state),
        (2, Some(pid(7)), EntryState::AwaitingPubAck)
    );
    assert_eq!(&m.payload[..], b"in flight");
}

#[tokio::test]
async fn update_and_dequeue_in_later_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let t1 = store.submit(vec![
        put_session(session("s")),
        put_message(1, plain_message("t", b"one")),
        enqueue("s", 1, entry(1)),
        enqueue("s", 2, entry(1)),
    ]);
    store.wait(t1).await;
    let t2 = store.submit(vec![
        update("s", 1, Some(pid(5)), EntryState::AwaitingPubRec, false),
        // Ignored: no such entry.
        update("s", 99, None, EntryState::Queued, false),
        dequeue("s", 2),
        Op::InboundAdd {
            client_id: client("s"),
            packet_id: pid(8),
        },
    ]);
    assert!(t2 > t1);
    store.wait(t2).await;
    let t3 = store.submit_one(Op::InboundRemove {
        client_id: client("s"),
        packet_id: pid(8),
    });
    store.wait(t3).await;
    assert_eq!(store.stats().ops_cancelled, 0);
    store.close();
    let (_, recovered) = open(dir.path());
    let s = &recovered.sessions[0];
    assert_eq!(s.queue.len(), 1);
    assert_eq!(s.queue[0].1.packet_id, Some(pid(5)));
    assert_eq!(s.queue[0].1.state, EntryState::AwaitingPubRec);
    assert!(s.inbound_qos2.is_empty());
}

#[tokio::test]
async fn retained_messages_are_replaced_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        vec![
            Op::Retain {
                topic: topic("a"),
                message: Some(Arc::new(plain_message("a", b"first"))),
            },
            Op::Retain {
                topic: topic("b"),
                message: Some(Arc::new(plain_message("b", b"b"))),
            },
            Op::Retain {
                topic: topic("a"),
                message: Some(Arc::new(plain_message("a", b"second"))),
            },
        ],
    )
    .await;
    write(
        dir.path(),
        vec![Op::Retain {
            topic: topic("b"),
            message: None,
        }],
    )
    .await;
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.retained, vec![plain_message("a", b"second")]);
}

#[tokio::test]
async fn expired_state_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let long_ago = now - Duration::from_secs(60);
    let expired_session = store::SessionRecord {
        expiry: SessionExpiry::After(Duration::from_secs(1)),
        disconnected_at: Some(long_ago),
        ..session("expired")
    };
    let not_yet = store::SessionRecord {
        expiry: SessionExpiry::After(Duration::from_secs(3600)),
        disconnected_at: Some(long_ago),
        ..session("not-yet")
    };
    // Still marked connected: returned as stored whatever its expiry.
    let connected = store::SessionRecord {
        expiry: SessionExpiry::After(Duration::ZERO),
        disconnected_at: None,
        ..session("connected")
    };
    let forever = store::SessionRecord {
        expiry: SessionExpiry::Never,
        disconnected_at: Some(long_ago),
        ..session("forever")
    };
    let stale = MessageRecord {
        expires_at: Some(long_ago),
        ..plain_message("t", b"stale")
    };
    let fresh = MessageRecord {
        expires_at: Some(now + Duration::from_secs(3600)),
        ..plain_message("t", b"fresh")
    };
    write(
        dir.path(),
        vec![
            put_session(expired_session),
            put_session(not_yet.clone()),
            put_session(connected.clone()),
            put_session(forever.clone()),
            put_message(1, stale.clone()),
            put_message(2, fresh.clone()),
            enqueue("expired", 1, entry(2)),
            Op::InboundAdd {
                client_id: client("expired"),
                packet_id: pid(1),
            },
            enqueue("not-yet", 1, entry(1)),
            enqueue("not-yet", 2, entry(2)),
            Op::Retain {
                topic: topic("stale"),
                message: Some(Arc::new(stale)),
            },
            Op::Retain {
                topic: topic("fresh"),
                message: Some(Arc::new(fresh.clone())),
            },
        ],
    )
    .await;
    assert_eq!(rows(dir.path(), "messages"), 2);

    let (store, recovered) = open(dir.path());
    let ids: Vec<&str> = recovered
        .sessions
        .iter()
        .map(|s| s.record.client_id.as_str())
        .collect();
    assert_eq!(ids, ["connected", "forever", "not-yet"]);
    assert_eq!(recovered.sessions[0].record, connected);
    let queue = &recovered.sessions[2].queue;
    assert_eq!(queue.len(), 1, "the entry of the expired message is gone");
    assert_eq!(queue[0].0, 2);
    assert_eq!(*queue[0].2, fresh);
    assert_eq!(recovered.retained, vec![fresh]);
    // Ids stay above the dropped message's.
    assert!(store.next_message_id() > 2);
    store.close();
    // The expired message and the expired session's rows are gone from the file too.
    assert_eq!(rows(dir.path(), "messages"), 1);
    assert_eq!(rows(dir.path(), "queue"), 1);
    assert_eq!(rows(dir.path(), "inbound"), 0);
    assert_eq!(rows(dir.path(), "retained"), 1);
    assert_eq!(rows(dir.path(), "sessions"), 3);
}

#[tokio::test]
async fn message_ids_continue_above_the_highest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    assert_eq!(store.next_message_id(), 1);
    let id = 1_000_000;
    let t = store.submit(vec![
        put_session(session("s")),
        put_message(id, plain_message("t", b"x")),
        enqueue("s", 1, entry(id)),
    ]);
    store.wait(t).await;
    store.close();
    let (store, _) = open(dir.path());
    assert!(store.next_message_id() > id);
}

#[test]
fn garbage_file_fails_naming_the_path_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(store::FILE_NAME);
    let garbage = b"this is not a database, but it is somebody's file".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(dir.path(), batch()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[tokio::test]
async fn truncated_file_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut ops = vec![put_session(session("s"))];
    for i in 0..200 {
        ops.push(put_message(i, plain_message("t", &[7; 1000])));
        ops.push(enqueue("s", i, entry(i)));
    }
    write(dir.path(), ops).await;
    let path = dir.path().join(store::FILE_NAME);
    let len = std::fs::metadata(&path).unwrap().len();
    for keep in [len / 2, 100] {
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep).unwrap();
        drop(file);
        let err = Store::open(dir.path(), batch()).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            keep,
            "never replaced"
        );
    }
}

#[test]
fn another_programs_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(store::FILE_NAME);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("theirs"))
            .unwrap()
            .insert("k", 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path(), batch()).unwrap_err();
    assert!(matches!(err, StoreError::WrongFormat { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn undecodable_value_fails_naming_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let path = dir.path().join(store::FILE_NAME);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("sessions"))
            .unwrap()
            .insert("client-9", &[1, 7, 7][..])
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path(), batch()).unwrap_err();
    let StoreError::Corrupt { table, key, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*table, key.as_str()), ("sessions", "\"client-9\""));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_store_open_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = open(dir.path());
    let err = Store::open(dir.path(), batch()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}

#[tokio::test]
async fn tickets_become_durable_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for policy in [
        Policy::Always,
        batch(),
        Policy::Batch {
            max_delay: Duration::from_secs(3600),
            max_size: 8,
        },
    ] {
        let (store, _) = Store::open(dir.path(), policy).unwrap();
        assert_eq!(store.durable(), Ticket(0));
        let mut watch = store.watch();
        let seen = tokio::spawn(async move {
            let mut seen = vec![*watch.borrow_and_update()];
            while watch.changed().await.is_ok() {
                seen.push(*watch.borrow_and_update());
                if *seen.last().unwrap() >= 50 {
                    break;
                }
            }
            seen
        });
        let mut tickets = Vec::new();
        for i in 0..400u64 {
            tickets.push(store.submit_one(put_session(session(&format!("c{}", i % 10)))));
            if i % 8 == 7 {
                // Batch with a long delay commits on size: 8 ops.
                tokio::time::timeout(
                    Duration::from_secs(10),
                    store.wait(*tickets.last().unwrap()),
                )
                .await
                .unwrap_or_else(|_| panic!("{policy:?}: ticket {i} not durable"));
            }
        }
        assert!(tickets.windows(2).all(|w| w[0] <= w[1]), "{policy:?}");
        assert!(store.durable() >= tickets[399]);
        let seen = tokio::time::timeout(Duration::from_secs(10), seen)
            .await
            .unwrap()
            .unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{policy:?}: {seen:?}");
        let stats = store.stats();
        assert_eq!(stats.ops_written, 400, "{policy:?}");
        assert!(
            stats.batches >= 50 && stats.batches <= 400,
            "{policy:?}: {stats:?}"
        );
        assert_eq!((stats.write_errors, stats.failing), (0, false));
        store.close();
    }
}

#[tokio::test]
async fn interval_and_never_count_as_durable_at_once() {
    for policy in [Policy::Interval(Duration::from_secs(3600)), Policy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), policy).unwrap();
        let t = store.submit_one(put_session(session("s")));
        assert!(t > Ticket(0));
        assert!(store.durable() >= t, "{policy:?}");
        store.wait(t).await;
        let t2 = store.submit_one(put_session(session("s2")));
        assert!(t2 >= t && store.durable() >= t2);
        store.close();
        let (_, recovered) = Store::open(dir.path(), policy).unwrap();
        assert_eq!(
            recovered.sessions.len(),
            2,
            "{policy:?}: close writes everything"
        );
    }
}

#[tokio::test]
async fn interval_commits_every_period() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), Policy::Interval(Duration::from_millis(50))).unwrap();
    for i in 0..20 {
        store.submit_one(put_session(session(&format!("c{i}"))));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.stats().ops_written < 20 {
        assert!(std::time::Instant::now() < deadline, "{:?}", store.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.stats().batches <= 2, "{:?}", store.stats());
}

#[tokio::test]
async fn empty_submit_returns_a_ticket_that_is_or_will_be_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let t = store.submit(Vec::new());
    assert_eq!(t, Ticket(0));
    store.wait(t).await;
    let t1 = store.submit_one(put_session(session("s")));
    let t2 = store.submit(Vec::new());
    assert!(t2 < t1 || t2 == Ticket(t1.0 - 1));
    tokio::time::timeout(Duration::from_secs(10), store.wait(t2))
        .await
        .unwrap();
}

#[test]
fn default_policy_is_group_commit_of_2_ms_and_1024_ops() {
    assert_eq!(
        Policy::default(),
        Policy::Batch {
            max_delay: Duration::from_millis(2),
            max_size: 1024
        }
    );
}

#[tokio::test]
async fn subscriptions_are_rows_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let subscription = |filter: &str| store::SubscriptionRecord {
        filter: codec::TopicFilter::try_from(filter).unwrap(),
        options: codec::SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        id: Some(sub_id(7)),
    };
    let put = |client: &str, filter: &str| Op::PutSubscription {
        client_id: client.to_owned(),
        subscription: subscription(filter),
    };
    write(
        dir.path(),
        vec![
            Op::PutSession(Box::new(session("c1"))),
            Op::PutSession(Box::new(session("c2"))),
            put("c1", "a/#"),
            put("c1", "b/+"),
            put("c1", "c"),
            put("c2", "a/#"),
            // A subscription of no session: dropped at recovery.
            put("nobody", "x"),
            Op::DeleteSubscription {
                client_id: "c1".to_owned(),
                filter: "b/+".to_owned(),
            },
        ],
    )
    .await;
    let (store, recovered) = open(dir.path());
    let filters = |client: &str| -> Vec<String> {
        let s = recovered
            .sessions
            .iter()
            .find(|s| s.record.client_id == client)
            .unwrap();
        s.subscriptions
            .iter()
            .map(|s| s.filter.as_str().to_owned())
            .collect()
    };
    assert_eq!(filters("c1"), ["a/#", "c"]);
    assert_eq!(filters("c2"), ["a/#"]);
    assert_eq!(
        recovered.sessions[0].subscriptions[0],
        subscription("a/#"),
        "options and identifier round-trip"
    );
    // Deleting a session deletes its subscriptions, and only its own.
    let ticket = store.submit([Op::DeleteSession {
        client_id: "c1".to_owned(),
    }]);
    tokio::time::timeout(Duration::from_secs(10), store.wait(ticket))
        .await
        .unwrap();
    store.close();
    write(dir.path(), vec![Op::PutSession(Box::new(session("c1")))]).await;
    let (_store, recovered) = open(dir.path());
    for s in &recovered.sessions {
        let expected = if s.record.client_id == "c2" { 1 } else { 0 };
        assert_eq!(s.subscriptions.len(), expected, "{}", s.record.client_id);
    }
}

#[test]
fn a_format_1_store_is_upgraded_and_keeps_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), batch()).unwrap());
    // Rewind the format record to 1, as a store of the previous release has it.
    {
        let db = redb::Database::open(dir.path().join(store::FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            let mut v1 = b"harper-mqtt store".to_vec();
            v1.extend_from_slice(&1u16.to_be_bytes());
            meta.insert("format", v1.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (store, _) = Store::open(dir.path(), batch()).unwrap();
    store.close();
    drop(store);
    // Reopened after the upgrade: still ours.
    assert!(Store::open(dir.path(), batch()).is_ok());
}

/// The permission bits of `path`, in octal.
#[cfg(unix)]
fn mode(path: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[cfg(unix)]
#[tokio::test]
async fn the_directories_and_the_file_it_creates_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    // The temporary directory exists: it keeps its mode. What the store creates below it (two
    // levels of directories and the file) only the owner may read: messages and user names.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("data").join("mqtt");
    write(&dir, vec![put_session(session("s"))]).await;
    assert_eq!(
        mode(tmp.path()),
        "755",
        "an existing directory is left alone"
    );
    assert_eq!(mode(&tmp.path().join("data")), "700");
    assert_eq!(mode(&dir), "700");
    assert_eq!(mode(&dir.join(store::FILE_NAME)), "600");
}
