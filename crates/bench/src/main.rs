//! `loadgen`: drives an MQTT broker on loopback with raw codec clients and prints one result
//! line. One task per client, batched writes, no allocation per message on the hot path; every
//! message carries its publisher, sequence number and send time, so the subscribers count loss,
//! duplicates and latency.
//!
//! ```text
//! loadgen fanin   --addr 127.0.0.1:1883 --qos 0 --clients 4 --count 100000 --payload 64
//! loadgen fanout  --addr 127.0.0.1:1883 --qos 1 --clients 10 --count 20000 --payload 64
//! loadgen latency --addr 127.0.0.1:1883 --qos 1 --rate 2000 --count 10000 --payload 64
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use codec::{
    Connect, MqttString, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, Publish, QoS,
    QosPid, Subscribe, SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

const V: ProtocolVersion = ProtocolVersion::V3_1_1;
/// Header of every payload: publisher id (4), sequence number (8), send time in ns (8).
const HEADER: usize = 20;
/// Unacknowledged QoS 1/2 messages per publisher.
const WINDOW: usize = 64;
/// PUBLISH packets per write.
const BATCH: usize = 64;

struct Args {
    scenario: String,
    addr: SocketAddr,
    qos: QoS,
    clients: usize,
    count: u64,
    payload: usize,
    rate: u64,
    timeout: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let scenario = it
        .next()
        .context("usage: loadgen fanin|fanout|latency [--options]")?;
    let mut a = Args {
        scenario,
        addr: "127.0.0.1:1883".parse()?,
        qos: QoS::AtMostOnce,
        clients: 1,
        count: 10_000,
        payload: 64,
        rate: 2000,
        timeout: Duration::from_secs(60),
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => a.addr = value.parse()?,
            "--qos" => a.qos = QoS::from_u8(value.parse()?).map_err(|e| anyhow::anyhow!("{e}"))?,
            "--clients" => a.clients = value.parse()?,
            "--count" => a.count = value.parse()?,
            "--payload" => a.payload = value.parse::<usize>()?.max(HEADER),
            "--rate" => a.rate = value.parse()?,
            "--timeout" => a.timeout = Duration::from_secs(value.parse()?),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

async fn connect(
    addr: SocketAddr,
    client_id: &str,
) -> anyhow::Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut out = BytesMut::new();
    let connect = Connect::new(V, MqttString::try_from(client_id)?, 600);
    Packet::Connect(Box::new(connect)).encode(V, &mut out)?;
    wr.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if let Some(p) = codec::decode(&mut buf, V, u32::MAX)? {
            match p {
                Packet::ConnAck(a) if a.reason_code.is_success() => return Ok((rd, wr, buf)),
                other => bail!("{client_id}: expected a successful CONNACK, got {other:?}"),
            }
        }
        if rd.read_buf(&mut buf).await? == 0 {
            bail!("{client_id}: closed before CONNACK");
        }
    }
}

#[derive(Default)]
struct Tally {
    received: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
}

/// Subscribes, then counts messages until `expected` arrived or the deadline passes. Returns
/// latencies in µs when `keep_latency`.
/// What every client of one run shares.
struct Common {
    addr: SocketAddr,
    qos: QoS,
    payload: usize,
    /// Messages per second per publisher; 0 for as fast as the window allows.
    rate: u64,
    publishers: usize,
    /// Time origin of the timestamps in payloads.
    base: Instant,
    deadline: tokio::time::Instant,
}

async fn subscriber(
    c: Arc<Common>,
    id: usize,
    filter: &'static str,
    expected: u64,
    tally: Arc<Tally>,
    ready: Arc<Semaphore>,
    keep_latency: bool,
) -> anyhow::Result<(Vec<u32>, Option<Instant>)> {
    let (addr, qos, publishers, base, deadline) = (c.addr, c.qos, c.publishers, c.base, c.deadline);
    let (mut rd, mut wr, mut buf) = connect(addr, &format!("lg-sub-{id}")).await?;
    let mut last_receive = None;
    let mut out = BytesMut::new();
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).context("id")?,
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from(filter)?,
            SubscriptionOptions::with_qos(qos),
        )],
    })
    .encode(V, &mut out)?;
    wr.write_all(&out).await?;
    out.clear();
    let mut last_seq = vec![0u64; publishers];
    let mut latencies = Vec::with_capacity(if keep_latency { expected as usize } else { 0 });
    let mut got = 0u64;
    let mut subscribed = false;
    while got < expected {
        while let Some(p) = codec::decode(&mut buf, V, u32::MAX)? {
            match p {
                Packet::SubAck(_) if !subscribed => {
                    subscribed = true;
                    ready.add_permits(1);
                }
                Packet::Publish(p) => {
                    got += 1;
                    last_receive = Some(Instant::now());
                    let b = &p.payload[..];
                    let publisher = u32::from_be_bytes(b[0..4].try_into()?) as usize;
                    let seq = u64::from_be_bytes(b[4..12].try_into()?);
                    let sent = u64::from_be_bytes(b[12..20].try_into()?);
                    if let Some(last) = last_seq.get_mut(publisher) {
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
                        let now = base.elapsed().as_nanos() as u64;
                        latencies.push(
                            u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX),
                        );
                    }
                    match p.qos {
                        QosPid::AtLeastOnce(id) => {
                            Packet::PubAck(PubAck::new(id)).encode(V, &mut out)?
                        }
                        QosPid::ExactlyOnce(id) => {
                            Packet::PubRec(PubRec::new(id)).encode(V, &mut out)?
                        }
                        QosPid::AtMostOnce => {}
                    }
                }
                Packet::PubRel(r) => {
                    Packet::PubComp(PubComp::new(r.packet_id)).encode(V, &mut out)?
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            out.clear();
        }
        if got >= expected {
            break;
        }
        match tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) => bail!("subscriber {id}: connection closed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    tally.received.fetch_add(got, Ordering::Relaxed);
    Ok((latencies, last_receive))
}

/// Publishes `count` messages on `topic`, `rate` per second when non-zero, else as fast as the
/// window allows.
async fn publisher(c: Arc<Common>, id: u32, topic: String, count: u64) -> anyhow::Result<()> {
    let (addr, qos, payload, rate, base) = (c.addr, c.qos, c.payload, c.rate, c.base);
    if qos == QoS::ExactlyOnce {
        bail!("QoS 2 publishing is not offered by loadgen yet");
    }
    let (mut rd, mut wr, mut buf) = connect(addr, &format!("lg-pub-{id}")).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let (acked, acks) = (acked.clone(), acks.clone());
        tokio::spawn(async move {
            loop {
                while let Ok(Some(p)) = codec::decode(&mut buf, V, u32::MAX) {
                    if let Packet::PubAck(_) = p {
                        acked.fetch_add(1, Ordering::Relaxed);
                        acks.notify_one();
                    }
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
    };
    let topic = TopicName::try_from(topic.as_str())?;
    let mut body = vec![0u8; payload];
    body[0..4].copy_from_slice(&id.to_be_bytes());
    let mut out = BytesMut::with_capacity(BATCH * (payload + topic.len() + 8));
    let mut seq = 0u64;
    let started = tokio::time::Instant::now();
    while seq < count {
        if qos != QoS::AtMostOnce {
            while seq - acked.load(Ordering::Relaxed) >= WINDOW as u64 {
                acks.notified().await;
            }
        }
        let room = if qos == QoS::AtMostOnce {
            BATCH as u64
        } else {
            (WINDOW as u64 - (seq - acked.load(Ordering::Relaxed))).min(BATCH as u64)
        };
        let mut n = room.min(count - seq);
        if let Some(offset) = (seq * 1_000_000_000).checked_div(rate) {
            n = 1;
            tokio::time::sleep_until(started + Duration::from_nanos(offset)).await;
        }
        for _ in 0..n {
            seq += 1;
            body[4..12].copy_from_slice(&seq.to_be_bytes());
            body[12..20].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            let mut p = Publish::new(topic.clone(), Bytes::copy_from_slice(&body));
            if qos == QoS::AtLeastOnce {
                let pid = PacketId::new(((seq - 1) % 65_535 + 1) as u16).context("id")?;
                p.qos = QosPid::AtLeastOnce(pid);
            }
            p.encode(&mut out, false)?;
        }
        wr.write_all(&out).await?;
        out.clear();
    }
    if qos != QoS::AtMostOnce {
        while acked.load(Ordering::Relaxed) < count {
            acks.notified().await;
        }
    }
    reader.abort();
    out.put_u8(0xE0);
    out.put_u8(0);
    let _ = wr.write_all(&out).await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let base = Instant::now();
    let deadline = tokio::time::Instant::now() + a.timeout;
    let (publishers, subscribers, rate) = match a.scenario.as_str() {
        "fanin" => (a.clients, 1, 0),
        "fanout" => (1, a.clients, 0),
        "latency" => (1, 1, a.rate),
        other => bail!("unknown scenario {other}"),
    };
    let filter = if a.scenario == "fanin" {
        "lg/+"
    } else {
        "lg/0"
    };
    let expected_per_sub = a.count
        * if a.scenario == "fanin" {
            publishers as u64
        } else {
            1
        };
    let common = Arc::new(Common {
        addr: a.addr,
        qos: a.qos,
        payload: a.payload,
        rate,
        publishers,
        base,
        deadline,
    });
    let tally = Arc::new(Tally::default());
    let ready = Arc::new(Semaphore::new(0));
    let mut subs = Vec::new();
    for i in 0..subscribers {
        subs.push(tokio::spawn(subscriber(
            common.clone(),
            i,
            filter,
            expected_per_sub,
            tally.clone(),
            ready.clone(),
            a.scenario == "latency",
        )));
    }
    let _all = ready.acquire_many(subscribers as u32).await?;
    let start = Instant::now();
    let mut pubs = Vec::new();
    for i in 0..publishers {
        pubs.push(tokio::spawn(publisher(
            common.clone(),
            i as u32,
            format!("lg/{i}"),
            a.count,
        )));
    }
    for p in pubs {
        p.await??;
    }
    let mut latencies = Vec::new();
    let mut last = start;
    for s in subs {
        let (l, at) = s.await??;
        latencies.extend(l);
        last = last.max(at.unwrap_or(start));
    }
    // Up to the last message received: a subscriber waiting for messages the broker dropped
    // (QoS 0) does not stretch the time.
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);
    let received = tally.received.load(Ordering::Relaxed);
    let expected = expected_per_sub * subscribers as u64;
    let missing = expected.saturating_sub(received);
    let lost = tally.lost.load(Ordering::Relaxed).max(missing);
    let dup = tally.duplicates.load(Ordering::Relaxed);
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "scenario={} qos={} clients={} payload={} received={received} expected={expected} secs={secs:.3} rate={:.0} lost={lost} dup={dup} p50_us={} p99_us={}",
        a.scenario,
        a.qos as u8,
        a.clients,
        a.payload,
        received as f64 / secs,
        pct(0.50),
        pct(0.99),
    );
    if a.qos != QoS::AtMostOnce && (lost > 0 || dup > 0) {
        bail!(
            "loss or duplicates at QoS {}: a failure, not a figure",
            a.qos as u8
        );
    }
    Ok(())
}
