//! `kill -9` while writing: every op whose ticket was reported durable is there after reopen.
//!
//! The test runs this test binary again as a child (`crash_child`, which does nothing unless
//! `STORE_CRASH_DIR` is set). The child enqueues messages from several threads, waits for each
//! ticket and prints `durable <thread> <seq>` only then; the parent kills it with SIGKILL
//! mid-stream, reopens the store and checks every printed entry and its message.
//!
//! Under `never` a ticket is durable at once, so that child waits instead until the writer has
//! committed the op (to the file, unsynced): a process crash must not lose it either.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use store::{Policy, Store};

const THREADS: u64 = 4;
const DIR_VAR: &str = "STORE_CRASH_DIR";
const POLICY_VAR: &str = "STORE_CRASH_POLICY";

fn payload(thread: u64, seq: u64) -> Vec<u8> {
    format!("message {thread}/{seq}").into_bytes()
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let never = std::env::var(POLICY_VAR).is_ok_and(|p| p == "never");
    let policy = if never {
        Policy::Never
    } else {
        Policy::Batch {
            max_delay: Duration::from_millis(1),
            max_size: 64,
        }
    };
    let (store, recovered) = Store::open(dir.as_ref(), policy).unwrap();
    assert!(recovered.sessions.is_empty());
    let sessions: Vec<_> = (0..THREADS)
        .map(|t| put_session(session(&format!("client-{t}"))))
        .collect();
    // Ops submitted so far, counted in submission order (under `never`, the writer has
    // committed an op once it has committed that many).
    let submitted = Mutex::new(THREADS);
    let committed = |n| {
        while {
            let s = store.stats();
            s.ops_written + s.ops_cancelled < n
        } {
            std::thread::sleep(Duration::from_micros(100));
        }
    };
    store.submit(sessions);
    committed(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, submitted, committed) = (&store, &submitted, &committed);
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let client: Arc<str> = format!("client-{t}").into();
                for seq in 0.. {
                    let id = store.next_message_id();
                    let ops = [
                        put_message(id, plain_message("crash/test", &payload(t, seq))),
                        store::Op::Enqueue {
                            client_id: Arc::clone(&client),
                            seq,
                            entry: entry(id),
                        },
                    ];
                    let (ticket, upto) = {
                        let mut n = submitted.lock().unwrap();
                        *n += 2;
                        (store.submit(ops), *n)
                    };
                    rt.block_on(store.wait(ticket));
                    if never {
                        committed(upto);
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "durable {t} {seq}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn batch_loses_nothing_reported_durable_on_sigkill() {
    sigkill_loses_nothing_reported_durable("batch");
}

#[test]
fn never_loses_nothing_written_on_sigkill() {
    sigkill_loses_nothing_reported_durable("never");
}

fn sigkill_loses_nothing_reported_durable(policy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir.path())
        .env(POLICY_VAR, policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // A child that stops printing must not hang the test: kill it after a minute whatever.
    let child = Arc::new(Mutex::new(child));
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    let watched = Arc::clone(&child);
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = watched.lock().unwrap().kill();
        }
    });
    let mut durable: HashMap<u64, u64> = HashMap::new();
    let mut count = 0;
    let mut record = |line: &str| {
        if let Some(rest) = line.strip_prefix("durable ") {
            let (t, seq) = rest.split_once(' ').unwrap();
            let (t, seq): (u64, u64) = (t.parse().unwrap(), seq.parse().unwrap());
            let max = durable.entry(t).or_default();
            *max = (*max).max(seq + 1);
            true
        } else {
            false
        }
    };
    // Kill mid-stream: after a good number of acknowledged ops.
    while count < 2000 {
        let Some(line) = lines.next() else { break };
        if record(&line.unwrap()) {
            count += 1;
        }
    }
    {
        let mut child = child.lock().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let _ = done.send(());
    // Lines printed before the kill still count: they were reported durable.
    for line in lines {
        record(&line.unwrap());
    }
    assert!(
        count >= 100,
        "{policy}: the child reported only {count} durable ops"
    );

    let (_, recovered) = Store::open(dir.path(), Policy::Always).unwrap();
    assert_eq!(recovered.sessions.len(), THREADS as usize);
    for (t, session) in recovered.sessions.iter().enumerate() {
        let t = t as u64;
        assert_eq!(session.record.client_id, format!("client-{t}"));
        let acked = durable.get(&t).copied().unwrap_or(0);
        assert!(
            session.queue.len() as u64 >= acked,
            "client-{t}: {} entries, {acked} reported durable",
            session.queue.len()
        );
        for (i, (seq, _, message)) in session.queue.iter().enumerate() {
            assert_eq!(*seq, i as u64, "client-{t}: entries are contiguous");
            assert_eq!(
                &message.payload[..],
                payload(t, *seq),
                "client-{t} seq {seq}"
            );
        }
    }
}
