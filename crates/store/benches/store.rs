//! Store throughput: `cargo bench -p store`. Each publish is one `PutMessage` and ten
//! `Enqueue`s (one message to ten persistent sessions), as the broker submits it.
//!
//! - pipelined: one thread submits without waiting, then waits for the last ticket (the
//!   writer's ceiling);
//! - acked: 32 publishers, each waiting for its ticket before the next publish (as a QoS 1
//!   publisher waiting for PUBACK);
//! - then every entry is dequeued (pipelined), deleting the messages with their last entry.
//!
//! Under `never` tickets are durable at once, so that run times the writer catching up instead
//! (`interval` commits once a period: its throughput is the pipelined one). The data directory is a temporary directory under `STORE_BENCH_DIR`
//! (default: the system's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::{PublishProperties, QoS, TopicName};
use store::{
    EntryState, MessageRecord, Op, Policy, QueueEntry, SessionExpiry, SessionRecord, Store,
};

const SESSIONS: usize = 10;
const PIPELINED: u64 = 20_000;
const PUBLISHERS: u64 = 32;
const ACKED_PER_PUBLISHER: u64 = 200;

fn publish(store: &Store, clients: &[Arc<str>], seq: u64) -> Vec<Op> {
    let id = store.next_message_id();
    let message = Arc::new(MessageRecord {
        topic: TopicName::try_from("bench/topic").expect("valid topic"),
        payload: Bytes::from_static(&[0x5A; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
    });
    let mut ops = Vec::with_capacity(1 + clients.len());
    ops.push(Op::PutMessage { id, message });
    for client in clients {
        ops.push(Op::Enqueue {
            client_id: Arc::clone(client),
            seq,
            entry: QueueEntry {
                message_id: id,
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Vec::new(),
                packet_id: None,
                state: EntryState::Queued,
            },
        });
    }
    ops
}

/// Waits until the writer has committed `ops` ops: under `never` tickets are
/// durable at once, so the ticket says nothing about the writer.
fn settle(store: &Store, ops: u64) {
    while {
        let s = store.stats();
        s.ops_written + s.ops_cancelled < ops
    } {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn run(name: &str, policy: Policy, rt: &tokio::runtime::Runtime) {
    let base = std::env::var_os("STORE_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into());
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let (store, _) = Store::open(dir.path(), policy).expect("store opens");
    let clients: Vec<Arc<str>> = (0..SESSIONS)
        .map(|i| format!("client-{i}").into())
        .collect();
    let sessions = clients.iter().map(|c| {
        Op::PutSession(Box::new(SessionRecord {
            client_id: c.to_string(),
            expiry: SessionExpiry::Never,
            disconnected_at: None,
            subscriptions: Vec::new(),
            will: None,
            username: None,
        }))
    });
    rt.block_on(store.wait(store.submit(sessions)));

    let start = Instant::now();
    let mut last = store.durable();
    for seq in 0..PIPELINED {
        last = store.submit(publish(&store, &clients, seq));
    }
    rt.block_on(store.wait(last));
    let ops_per_publish = (1 + SESSIONS) as u64;
    let mut submitted = SESSIONS as u64 + PIPELINED * ops_per_publish;
    settle(&store, submitted);
    let pipelined = start.elapsed();
    let after_pipelined = store.stats();

    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..PUBLISHERS {
            let store = store.clone();
            let clients = clients.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..ACKED_PER_PUBLISHER {
                    let seq = PIPELINED + p * ACKED_PER_PUBLISHER + i;
                    let ticket = store.submit(publish(&store, &clients, seq));
                    store.wait(ticket).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("publisher task");
        }
    });
    submitted += PUBLISHERS * ACKED_PER_PUBLISHER * ops_per_publish;
    settle(&store, submitted);
    let acked = start.elapsed();
    let acked_stats = store.stats();

    let start = Instant::now();
    let total = PIPELINED + PUBLISHERS * ACKED_PER_PUBLISHER;
    for seq in 0..total {
        let acks = clients.iter().map(|c| Op::Dequeue {
            client_id: Arc::clone(c),
            seq,
        });
        last = store.submit(acks);
    }
    rt.block_on(store.wait(last));
    settle(&store, submitted + total * SESSIONS as u64);
    let dequeued = start.elapsed();
    let stats = store.stats();
    store.close();

    let ops_per_publish = ops_per_publish as f64;
    let rate = |n: f64, d: Duration| n / d.as_secs_f64();
    println!(
        "{name:>8}  pipelined: {:>9.0} publishes/s {:>10.0} ops/s ({} batches)   acked x{PUBLISHERS}: {:>8.0} publishes/s {:>9.0} ops/s ({} batches)   dequeue: {:>10.0} ops/s",
        rate(PIPELINED as f64, pipelined),
        rate(PIPELINED as f64 * ops_per_publish, pipelined),
        after_pipelined.batches,
        rate((PUBLISHERS * ACKED_PER_PUBLISHER) as f64, acked),
        rate(
            (PUBLISHERS * ACKED_PER_PUBLISHER) as f64 * ops_per_publish,
            acked
        ),
        acked_stats.batches - after_pipelined.batches,
        rate((total * SESSIONS as u64) as f64, dequeued),
    );
    assert_eq!(stats.write_errors, 0);
}

fn main() {
    // `cargo test --benches` runs this binary too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let batch = Policy::default();
    for (name, policy) in [
        ("batch", batch),
        ("always", Policy::Always),
        ("never", Policy::Never),
    ] {
        run(name, policy, &rt);
    }
}
