//! Message flows: fan-in, fan-out and fixed-rate latency. Publishers and subscribers are one task
//! each (a publisher's acknowledgements are read by a second task), write in batches, and
//! allocate nothing per message: each PUBLISH is encoded around a static zero payload and its
//! header patched in place. Every payload starts with the publisher id, a sequence number and the
//! send time, so subscribers count loss, duplicates and latency. With `--persistent` subscribers
//! hold persistent sessions (clean session 0), so a broker with a store writes their queued and
//! in-flight QoS 1/2 messages to it; after the run each checks the broker kept its session.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use codec::{
    Packet, PacketId, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::sync::{Notify, Semaphore};

use crate::args::{Args, Scenario};
use crate::conn::{self, Dialer, Tx, V};

/// Header of every payload: publisher id (4), sequence number (8), send time in ns (8).
pub const HEADER: usize = 20;
/// Largest payload offered.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// PUBLISH packets per write.
const BATCH: u64 = 64;

/// Payload bytes every PUBLISH is encoded with, so encoding needs no allocation; the header is
/// written over the encoded copy.
static ZEROS: [u8; MAX_PAYLOAD] = [0; MAX_PAYLOAD];

/// What a flow run measured.
pub struct Outcome {
    /// Messages expected over all subscribers.
    pub expected: u64,
    /// Messages received over all subscribers.
    pub received: u64,
    /// Messages missing (gaps in sequence numbers, or never arrived).
    pub lost: u64,
    /// Messages received twice or more.
    pub duplicates: u64,
    /// From the first publish to the last message received.
    pub elapsed: Duration,
    /// Latency percentiles in µs, sorted latencies (latency scenario only, else empty).
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    /// The latency at percentile `p` (0 to 1), in µs; 0 when none were kept.
    pub fn percentile(&self, p: f64) -> u32 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0;
        }
        let rank = ((n as f64 * p).ceil() as usize).clamp(1, n);
        self.latencies_us[rank - 1]
    }
}

/// What every client of one run shares.
struct Common {
    dialer: Dialer,
    qos: QoS,
    payload: usize,
    /// Messages per second per publisher; 0 for as fast as the window allows.
    rate: u64,
    /// QoS 1/2 messages a publisher keeps unacknowledged.
    window: u64,
    publishers: usize,
    /// Subscribers hold persistent sessions.
    persistent: bool,
    /// Time origin of the timestamps in payloads.
    base: Instant,
    deadline: tokio::time::Instant,
}

#[derive(Default)]
struct Tally {
    received: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
}

/// Runs a fan-in, fan-out or latency scenario.
pub async fn run(a: &Args) -> anyhow::Result<Outcome> {
    let (publishers, subscribers, rate) = match a.scenario {
        Scenario::FanIn => (a.clients, 1, 0),
        Scenario::FanOut => (1, a.clients, 0),
        Scenario::Latency => (1, 1, a.rate),
        Scenario::Idle => bail!("idle is not a message flow"),
    };
    let filter = if a.scenario == Scenario::FanIn {
        "lg/+"
    } else {
        "lg/0"
    };
    let expected_per_sub = a.count * publishers as u64;
    let common = Arc::new(Common {
        dialer: Dialer::new(a.addr, a.transport, a.ca.as_deref())?,
        qos: a.qos,
        payload: a.payload,
        rate,
        window: a.window,
        publishers,
        persistent: a.persistent,
        base: Instant::now(),
        deadline: tokio::time::Instant::now() + a.timeout,
    });
    let tally = Arc::new(Tally::default());
    let ready = Arc::new(Semaphore::new(0));
    let keep_latency = a.scenario == Scenario::Latency;
    let mut subs = Vec::new();
    for i in 0..subscribers {
        subs.push(tokio::spawn(subscriber(
            common.clone(),
            i,
            filter,
            expected_per_sub,
            tally.clone(),
            ready.clone(),
            keep_latency,
        )));
    }
    // Publishing starts once every subscription is acknowledged. A subscriber that fails first
    // closes `ready`, and its own error is the one reported.
    let all = u32::try_from(subscribers).context("too many subscribers")?;
    match tokio::time::timeout_at(common.deadline, ready.acquire_many(all)).await {
        Ok(Ok(permits)) => permits.forget(),
        Ok(Err(_)) => {
            for s in subs {
                s.await??;
            }
            bail!("a subscriber failed before subscribing");
        }
        Err(_) => bail!("subscribers not subscribed by the deadline"),
    }
    let start = Instant::now();
    let mut pubs = Vec::new();
    for i in 0..publishers {
        pubs.push(tokio::spawn(publisher(
            common.clone(),
            u32::try_from(i).context("too many publishers")?,
            format!("lg/{i}"),
            a.count,
        )));
    }
    for p in pubs {
        p.await??;
    }
    let mut latencies_us = Vec::new();
    let mut last = start;
    for s in subs {
        let (l, at) = s.await??;
        latencies_us.extend(l);
        last = last.max(at.unwrap_or(start));
    }
    latencies_us.sort_unstable();
    let received = tally.received.load(Ordering::Relaxed);
    let expected = expected_per_sub * subscribers as u64;
    Ok(Outcome {
        expected,
        received,
        lost: tally
            .lost
            .load(Ordering::Relaxed)
            .max(expected.saturating_sub(received)),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        // Up to the last message received: a subscriber waiting for messages the broker dropped
        // (QoS 0) does not stretch the time.
        elapsed: last.duration_since(start),
        latencies_us,
    })
}

/// Subscribes to `filter`, then counts messages until `expected` arrived (and, at QoS 2, every
/// PUBREL is answered) or the deadline passes. Returns the latencies in µs when `keep_latency`,
/// and when the last message arrived.
async fn subscriber(
    c: Arc<Common>,
    id: usize,
    filter: &'static str,
    expected: u64,
    tally: Arc<Tally>,
    ready: Arc<Semaphore>,
    keep_latency: bool,
) -> anyhow::Result<(Vec<u32>, Option<Instant>)> {
    let result = subscribe_and_count(&c, id, filter, expected, &tally, &ready, keep_latency).await;
    if result.is_err() {
        ready.close();
    }
    result
}

async fn subscribe_and_count(
    c: &Common,
    id: usize,
    filter: &str,
    expected: u64,
    tally: &Tally,
    ready: &Semaphore,
    keep_latency: bool,
) -> anyhow::Result<(Vec<u32>, Option<Instant>)> {
    let client_id = format!("lg-sub-{id}");
    let (mut rx, mut tx, mut buf) = if c.persistent {
        c.dialer.open_persistent(&client_id).await?
    } else {
        c.dialer.open(&client_id, None).await?
    };
    let mut out = BytesMut::with_capacity(4096);
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).context("packet id 1")?,
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from(filter)?,
            SubscriptionOptions::with_qos(c.qos),
        )],
    })
    .encode(V, &mut out)?;
    tx.send(&mut out).await?;
    let mut last_seq = vec![0u64; c.publishers];
    let mut latencies = Vec::with_capacity(if keep_latency { expected as usize } else { 0 });
    let mut last_receive = None;
    let (mut got, mut awaiting_rel) = (0u64, 0u64);
    let mut subscribed = false;
    while got < expected || awaiting_rel > 0 {
        while let Some(p) = codec::decode(&mut buf, V, u32::MAX)? {
            match p {
                Packet::SubAck(_) if !subscribed => {
                    subscribed = true;
                    ready.add_permits(1);
                }
                Packet::Publish(p) => {
                    got += 1;
                    last_receive = Some(Instant::now());
                    let Some(h) = p.payload.get(..HEADER) else {
                        bail!(
                            "subscriber {id}: a {}-byte payload, shorter than the header",
                            p.payload.len()
                        );
                    };
                    let field = |r: std::ops::Range<usize>| {
                        h[r].iter().fold(0u64, |v, b| (v << 8) | u64::from(*b))
                    };
                    let (publisher, seq, sent) = (field(0..4), field(4..12), field(12..20));
                    if let Some(last) = last_seq.get_mut(publisher as usize) {
                        if seq <= *last {
                            tally.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            if seq > *last + 1 {
                                tally.lost.fetch_add(seq - *last - 1, Ordering::Relaxed);
                            }
                            *last = seq;
                        }
                    }
                    if keep_latency {
                        let now = c.base.elapsed().as_nanos() as u64;
                        latencies.push(
                            u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX),
                        );
                    }
                    match p.qos {
                        QosPid::AtLeastOnce(pid) => {
                            Packet::PubAck(PubAck::new(pid)).encode(V, &mut out)?
                        }
                        QosPid::ExactlyOnce(pid) => {
                            awaiting_rel += 1;
                            Packet::PubRec(PubRec::new(pid)).encode(V, &mut out)?
                        }
                        QosPid::AtMostOnce => {}
                    }
                }
                Packet::PubRel(r) => {
                    awaiting_rel = awaiting_rel.saturating_sub(1);
                    Packet::PubComp(PubComp::new(r.packet_id)).encode(V, &mut out)?
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            tx.send(&mut out).await?;
        }
        if got >= expected && awaiting_rel == 0 {
            break;
        }
        match tokio::time::timeout_at(c.deadline, rx.read(&mut buf)).await {
            Ok(Ok(0)) => bail!("subscriber {id}: connection closed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    tally.received.fetch_add(got, Ordering::Relaxed);
    if c.persistent {
        // The last PUBACKs are processed before the check reconnects; a broker that treated the
        // session as clean would have measured something else.
        conn::disconnect_and_wait(&client_id, &mut rx, &mut tx, &mut buf).await?;
        if !c.dialer.session_kept(&client_id).await? {
            bail!(
                "subscriber {id}: the broker did not keep the persistent session (session present 0)"
            );
        }
    } else {
        disconnect(&mut tx, &mut out).await;
    }
    Ok((latencies, last_receive))
}

/// A publisher's acknowledgement state, written by its reader task.
#[derive(Default)]
struct Acks {
    /// Flows completed: PUBACK (QoS 1) or PUBCOMP (QoS 2).
    completed: AtomicU64,
    /// PUBREC'd packet ids the writer must release (QoS 2).
    to_release: Mutex<Vec<PacketId>>,
    /// The broker closed the connection or sent something undecodable.
    closed: AtomicBool,
    /// Wakes the writer after any of the above.
    changed: Notify,
}

/// Publishes `count` messages on `topic`, `rate` per second when non-zero, else as fast as the
/// window allows; at QoS 1/2 waits until every flow is complete.
async fn publisher(c: Arc<Common>, id: u32, topic: String, count: u64) -> anyhow::Result<()> {
    let (mut rx, mut tx, mut buf) = c.dialer.open(&format!("lg-pub-{id}"), None).await?;
    let acks = Arc::new(Acks::default());
    let reader = {
        let acks = acks.clone();
        tokio::spawn(async move {
            'read: loop {
                loop {
                    match codec::decode(&mut buf, V, u32::MAX) {
                        Ok(Some(Packet::PubAck(_) | Packet::PubComp(_))) => {
                            acks.completed.fetch_add(1, Ordering::Release);
                        }
                        Ok(Some(Packet::PubRec(r))) => {
                            acks.to_release
                                .lock()
                                .expect(
                                    "the release list's lock is never poisoned: no panics under it",
                                )
                                .push(r.packet_id);
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break 'read,
                    }
                    acks.changed.notify_one();
                }
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            acks.closed.store(true, Ordering::Release);
            acks.changed.notify_one();
        })
    };
    let result = publish_all(&c, id, &topic, count, &mut tx, &acks).await;
    reader.abort();
    result
}

async fn publish_all(
    c: &Common,
    id: u32,
    topic: &str,
    count: u64,
    tx: &mut Tx,
    acks: &Acks,
) -> anyhow::Result<()> {
    let mut p = Publish::new(
        TopicName::try_from(topic)?,
        Bytes::from_static(&ZEROS[..c.payload]),
    );
    let mut out = BytesMut::with_capacity(BATCH as usize * (c.payload + topic.len() + 8));
    let mut releasing = Vec::with_capacity(c.window as usize);
    let started = tokio::time::Instant::now();
    let mut seq = 0u64;
    loop {
        let completed = acks.completed.load(Ordering::Acquire);
        std::mem::swap(
            &mut releasing,
            &mut acks
                .to_release
                .lock()
                .expect("the release list's lock is never poisoned: no panics under it"),
        );
        for pid in releasing.drain(..) {
            Packet::PubRel(PubRel::new(pid)).encode(V, &mut out)?;
        }
        let room = match c.qos {
            QoS::AtMostOnce => BATCH,
            _ => c.window.saturating_sub(seq - completed).min(BATCH),
        };
        let mut n = room.min(count - seq);
        if n > 0
            && let Some(offset) = (seq * 1_000_000_000).checked_div(c.rate)
        {
            n = 1;
            tokio::time::sleep_until(started + Duration::from_nanos(offset)).await;
        }
        for _ in 0..n {
            seq += 1;
            // Packet ids cycle through 1..=65535; at most `window` are in use at once.
            let pid = PacketId::new(((seq - 1) % 65_535 + 1) as u16).context("non-zero id")?;
            p.qos = match c.qos {
                QoS::AtMostOnce => QosPid::AtMostOnce,
                QoS::AtLeastOnce => QosPid::AtLeastOnce(pid),
                QoS::ExactlyOnce => QosPid::ExactlyOnce(pid),
            };
            p.encode(&mut out, false)?;
            let at = out.len() - c.payload;
            let sent = c.base.elapsed().as_nanos() as u64;
            out[at..at + 4].copy_from_slice(&id.to_be_bytes());
            out[at + 4..at + 12].copy_from_slice(&seq.to_be_bytes());
            out[at + 12..at + 20].copy_from_slice(&sent.to_be_bytes());
        }
        if !out.is_empty() {
            tx.send(&mut out).await?;
        }
        if seq == count && (c.qos == QoS::AtMostOnce || completed == count) {
            break;
        }
        if n == 0 {
            // The window is full, or everything is sent: wait for the broker.
            if acks.closed.load(Ordering::Acquire) {
                bail!(
                    "publisher {id}: connection closed with {completed} of {count} flows complete"
                );
            }
            if tokio::time::timeout_at(c.deadline, acks.changed.notified())
                .await
                .is_err()
            {
                bail!("publisher {id}: {completed} of {count} flows complete at the deadline");
            }
        }
    }
    disconnect(tx, &mut out).await;
    Ok(())
}

/// Sends DISCONNECT; the run is over, so a failure here changes nothing.
async fn disconnect(tx: &mut Tx, out: &mut BytesMut) {
    out.clear();
    if Packet::Disconnect(Default::default())
        .encode(V, out)
        .is_ok()
    {
        let _ = tx.send(out).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(latencies_us: Vec<u32>) -> Outcome {
        Outcome {
            expected: 0,
            received: 0,
            lost: 0,
            duplicates: 0,
            elapsed: Duration::ZERO,
            latencies_us,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let o = outcome((1..=1000).collect());
        assert_eq!(o.percentile(0.50), 500);
        assert_eq!(o.percentile(0.99), 990);
        assert_eq!(o.percentile(0.999), 999);
        assert_eq!(o.percentile(1.0), 1000);
        assert_eq!(outcome(vec![]).percentile(0.5), 0);
        assert_eq!(outcome(vec![7]).percentile(0.999), 7);
    }
}
