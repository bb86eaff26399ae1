//! Idle connections: open many CONNECT/CONNACK'd clients, measure how fast they connect and how
//! much resident memory each costs the broker (VmRSS from `/proc/<pid>/status`, before and after),
//! hold them, then check the broker still answers with one pub/sub round trip on a fresh client.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use codec::{
    Packet, PacketId, PubAck, Publish, QoS, QosPid, Subscribe, SubscriptionOptions, TopicFilter,
    TopicName,
};

use crate::args::Args;
use crate::conn::{Dialer, Rx, Tx, V};

/// Client ports loadgen assigns itself on each loopback source address (see [`SourceSlots`]).
const FIRST_PORT: u16 = 10_000;
const PORTS_PER_SOURCE: usize = 50_000;
/// Source slots tried for one client before giving up (a slot is skipped when its port is taken).
const SLOT_TRIES: usize = 64;
/// How long the round trip after the hold may take before the broker counts as not answering.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// What an idle run measured.
pub struct Outcome {
    /// Connections opened and acknowledged.
    pub connected: usize,
    /// From the first connect to the last CONNACK.
    pub connect_time: Duration,
    /// Broker VmRSS before connecting, in KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker VmRSS after the hold, in KiB.
    pub rss_held_kib: Option<u64>,
    /// Connections the broker closed during the hold (plain TCP only).
    pub closed_by_broker: usize,
    /// The pub/sub round trip after the hold.
    pub round_trip: Duration,
}

impl Outcome {
    /// Resident memory the broker gained per held connection, in bytes.
    pub fn rss_per_connection(&self) -> Option<f64> {
        let (before, after) = (self.rss_before_kib?, self.rss_held_kib?);
        Some((after as f64 - before as f64) * 1024.0 / self.connected.max(1) as f64)
    }
}

/// Runs the idle-connections scenario.
pub async fn run(a: &Args) -> anyhow::Result<Outcome> {
    let dialer = Arc::new(Dialer::new(a.addr, a.transport, a.ca.as_deref())?.reset_on_close());
    let deadline = tokio::time::Instant::now() + a.timeout;
    let slots = Arc::new(SourceSlots::default());
    let explicit_sources = a.addr.ip().is_loopback() && a.addr.is_ipv4();
    let rss_before_kib = a.broker_pid.map(vm_rss_kib).transpose()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut openers = Vec::new();
    for _ in 0..a.parallel.min(a.clients) {
        let (dialer, next, slots, clients) =
            (dialer.clone(), next.clone(), slots.clone(), a.clients);
        openers.push(tokio::spawn(async move {
            let mut held: Vec<(Rx, Tx)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= clients {
                    return anyhow::Ok(held);
                }
                let id = format!("lg-idle-{i}");
                let mut tries = 0;
                let (rx, tx, _) = loop {
                    let source = explicit_sources.then(|| slots.take());
                    match dialer.open(&id, source).await {
                        Err(e) if source.is_some() && tries < SLOT_TRIES && port_taken(&e) => {
                            tries += 1
                        }
                        other => break other.with_context(|| format!("idle client {i}"))?,
                    }
                };
                held.push((rx, tx));
            }
        }));
    }
    let mut held = Vec::with_capacity(a.clients);
    for opener in openers {
        let batch = tokio::time::timeout_at(deadline, opener)
            .await
            .context("idle clients not connected by the deadline")???;
        held.extend(batch);
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(a.hold).await;
    let rss_held_kib = a.broker_pid.map(vm_rss_kib).transpose()?;
    let closed_by_broker = held.iter().filter(|(rx, _)| rx.is_closed()).count();
    let round_trip = tokio::time::timeout(ROUND_TRIP_TIMEOUT, round_trip(&dialer))
        .await
        .context("the broker did not answer a round trip while holding the idle clients")??;
    let outcome = Outcome {
        connected: held.len(),
        connect_time,
        rss_before_kib,
        rss_held_kib,
        closed_by_broker,
        round_trip,
    };
    // Dropping closes them with RST (see `Dialer::reset_on_close`).
    drop(held);
    Ok(outcome)
}

/// Source addresses and ports for idle clients, handed out in order: 127.0.0.2 ports 10000 to
/// 59999, then 127.0.0.3, … Choosing them here rather than letting the kernel pick an ephemeral
/// port matters: its search for a free port slows down as the range fills (with kernel-chosen
/// ports, 18,000 connections from one address opened at a quarter of the rate of 10,000; with
/// these, at the same rate), and one address has only about 28,000 ephemeral ports, too few for
/// 100,000 connections. 127.0.0.1 is left to everything else.
#[derive(Default)]
struct SourceSlots {
    next: AtomicUsize,
}

impl SourceSlots {
    fn take(&self) -> SocketAddr {
        slot_address(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

fn slot_address(slot: usize) -> SocketAddr {
    let host = u8::try_from(2 + slot / PORTS_PER_SOURCE).unwrap_or(u8::MAX);
    let port = FIRST_PORT + (slot % PORTS_PER_SOURCE) as u16;
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), port))
}

/// Whether connecting failed because the chosen source port is in use (another socket bound it,
/// or a wildcard listener holds it): the next slot may do.
fn port_taken(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
            )
        })
    })
}

/// VmRSS of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// One client subscribes to a topic of its own and publishes to it at QoS 1; done when both the
/// PUBACK and the message are back.
async fn round_trip(dialer: &Dialer) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (mut rx, mut tx, mut buf) = dialer.open("lg-idle-check", None).await?;
    let topic = "lg/idle-check";
    let mut out = BytesMut::new();
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).context("packet id 1")?,
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from(topic)?,
            SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        )],
    })
    .encode(V, &mut out)?;
    tx.send(&mut out).await?;
    let (mut subscribed, mut acked, mut delivered) = (false, false, false);
    while !(acked && delivered) {
        while let Some(p) = codec::decode(&mut buf, V, u32::MAX)? {
            match p {
                Packet::SubAck(_) if !subscribed => {
                    subscribed = true;
                    let mut publish = Publish::new(
                        TopicName::try_from(topic)?,
                        Bytes::from_static(b"still there?"),
                    );
                    publish.qos = QosPid::AtLeastOnce(PacketId::new(2).context("packet id 2")?);
                    publish.encode(&mut out, false)?;
                }
                Packet::PubAck(_) => acked = true,
                Packet::Publish(p) => {
                    delivered = true;
                    if let QosPid::AtLeastOnce(pid) = p.qos {
                        Packet::PubAck(PubAck::new(pid)).encode(V, &mut out)?;
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            tx.send(&mut out).await?;
        }
        if acked && delivered {
            break;
        }
        if rx.read(&mut buf).await? == 0 {
            bail!("the broker closed the round-trip client");
        }
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_vm_rss_from_proc_status() {
        let status =
            "Name:\tmosquitto\nVmPeak:\t   12000 kB\nVmRSS:\t    6844 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(6844));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn spreads_clients_over_loopback_sources_and_ports() {
        assert_eq!(slot_address(0), "127.0.0.2:10000".parse().unwrap());
        assert_eq!(slot_address(49_999), "127.0.0.2:59999".parse().unwrap());
        assert_eq!(slot_address(50_000), "127.0.0.3:10000".parse().unwrap());
        assert_eq!(slot_address(100_001), "127.0.0.4:10001".parse().unwrap());
    }

    #[test]
    fn a_taken_port_is_retried_other_errors_are_not() {
        let taken = anyhow::Error::from(io::Error::from(io::ErrorKind::AddrInUse))
            .context("binding a client socket");
        assert!(port_taken(&taken));
        let refused = anyhow::Error::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!port_taken(&refused));
    }
}
