//! Durability end to end: the real binary under QoS 1 and QoS 2 load is killed with SIGKILL and
//! restarted on the same data directory; every message whose PUBACK or PUBREC the publisher got
//! reaches the persistent subscribers, QoS 2 exactly once, and retained messages and sessions are
//! all there.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use codec::{
    Connect, MqttString, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, Subscribe, SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;
const WAIT: Duration = Duration::from_secs(10);

/// A data root under the temp dir, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("server-crash-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("harperdb-config.yaml"),
            "mqtt:\n  webSocket: false\n  network:\n    securePort: null\n  limits:\n    maxQueuedMessages: 100000\n",
        )
        .expect("config");
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The broker binary on a free loopback port, its data under `root`.
fn start(root: &Path) -> (Child, SocketAddr) {
    let started = common::start(
        root,
        &[
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
        Stdio::null(),
    );
    let addr = started.only_tcp_address().parse().expect("an address");
    // Keep draining stdout so the broker never blocks on it.
    let lines = started.lines;
    std::thread::spawn(move || for _ in lines {});
    (started.child, addr)
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    /// Connects with a persistent session (expiry 1 h); returns the client and Session Present.
    async fn connect(addr: SocketAddr, client_id: &str, clean_start: bool) -> (Client, bool) {
        Self::connect_with_expiry(addr, client_id, clean_start, 3600).await
    }

    /// Connects as the super user with the given Session Expiry Interval (0: not persistent);
    /// returns the client and Session Present.
    async fn connect_with_expiry(
        addr: SocketAddr,
        client_id: &str,
        clean_start: bool,
        expiry: u32,
    ) -> (Client, bool) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
        };
        let mut connect = Connect::new(V5, MqttString::try_from(client_id).expect("id"), 60);
        connect.clean_start = clean_start;
        connect.properties.session_expiry_interval = Some(expiry);
        // The super user the first start created from HDB_ADMIN_*.
        connect.username = Some(MqttString::try_from("admin").expect("user"));
        connect.password = Some(Bytes::from_static(b"secret"));
        client.send(&[Packet::Connect(Box::new(connect))]).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => {
                assert!(ack.reason_code.is_success(), "{ack:?}");
                (client, ack.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packets: &[Packet]) {
        let mut out = BytesMut::new();
        for p in packets {
            p.encode(V5, &mut out).expect("encode");
        }
        // A write to a killed broker fails; the next read tells.
        let _ = self.stream.write_all(&out).await;
    }

    /// The next packet; `None` when the connection closed or `WAIT` passed.
    async fn recv_within(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = codec::decode(&mut self.buf, V5, u32::MAX).expect("decode") {
                return Some(p);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT).await
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.send(&[Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).expect("id"),
            properties: Default::default(),
            filters: vec![(
                TopicFilter::try_from(filter).expect("filter"),
                SubscriptionOptions::with_qos(qos),
            )],
        })])
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => assert!(ack.reason_codes[0].is_success()),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}

fn publish(topic: &str, qos: QosPid, n: u32, retain: bool) -> Packet {
    let mut p = Publish::new(
        TopicName::try_from(topic).expect("topic"),
        Bytes::copy_from_slice(&n.to_be_bytes()),
    );
    p.qos = qos;
    p.retain = retain;
    Packet::Publish(p)
}

/// Every number in `acked` is in `delivered`, and with `exactly_once` none is there twice.
fn assert_none_lost(id: &str, acked: &[u32], delivered: &[u32], exactly_once: bool) {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for n in delivered {
        *counts.entry(*n).or_default() += 1;
    }
    let lost: Vec<u32> = acked
        .iter()
        .filter(|n| !counts.contains_key(n))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "{id}: {} of {} acknowledged messages lost, first {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    if exactly_once {
        let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "{id}: delivered twice at QoS 2: {twice:?}"
        );
    }
}

/// Publishes `count` messages at `qos` to `topic` with up to 32 unacknowledged; returns the
/// numbers acknowledged (PUBACK / PUBREC) before the connection broke.
async fn publish_until_killed(addr: SocketAddr, topic: &str, qos: QoS, count: u32) -> Vec<u32> {
    let (mut client, _) = Client::connect(addr, &format!("pub-{topic}"), true).await;
    let mut acked = Vec::new();
    let mut in_flight: HashMap<u16, u32> = HashMap::new();
    let mut next = 0u32;
    loop {
        while in_flight.len() < 32 && next < count {
            let id = u16::try_from(next % 60_000 + 1).expect("fits");
            let qos_pid = match qos {
                QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::new(id).expect("id")),
                _ => QosPid::ExactlyOnce(PacketId::new(id).expect("id")),
            };
            in_flight.insert(id, next);
            client.send(&[publish(topic, qos_pid, next, false)]).await;
            next += 1;
        }
        if in_flight.is_empty() {
            return acked;
        }
        match client.recv_within(Duration::from_secs(3)).await {
            Some(Packet::PubAck(PubAck { packet_id, .. })) => {
                acked.extend(in_flight.remove(&packet_id.get()));
            }
            Some(Packet::PubRec(PubRec { packet_id, .. })) => {
                acked.extend(in_flight.remove(&packet_id.get()));
                client.send(&[Packet::PubRel(PubRel::new(packet_id))]).await;
            }
            Some(Packet::PubComp(_)) => {}
            Some(other) => panic!("unexpected {other:?}"),
            None => return acked,
        }
    }
}

/// Reads deliveries until 2 s of silence, acknowledging them; returns message numbers in order
/// of arrival and how many PUBLISH packets came with DUP set.
async fn drain(client: &mut Client) -> (Vec<u32>, usize) {
    let mut got = Vec::new();
    let mut dups = 0;
    while let Some(p) = client.recv_within(Duration::from_secs(2)).await {
        match p {
            Packet::Publish(p) => {
                if p.dup {
                    dups += 1;
                }
                let n = u32::from_be_bytes(p.payload[..4].try_into().expect("4 bytes"));
                match p.qos {
                    QosPid::AtMostOnce => {}
                    QosPid::AtLeastOnce(id) => {
                        client.send(&[Packet::PubAck(PubAck::new(id))]).await;
                    }
                    QosPid::ExactlyOnce(id) => {
                        client.send(&[Packet::PubRec(PubRec::new(id))]).await;
                    }
                }
                got.push(n);
            }
            Packet::PubRel(r) => {
                client
                    .send(&[Packet::PubComp(PubComp::new(r.packet_id))])
                    .await
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (got, dups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_the_broker_is_killed_mid_stream() {
    let root = Root::new("stream");
    let (mut broker, addr) = start(&root.0);

    // Two persistent subscribers, then offline, so everything queues in their sessions.
    for (id, filter, qos) in [
        ("sub-1", "crash/q1", QoS::AtLeastOnce),
        ("sub-2", "crash/q2", QoS::ExactlyOnce),
    ] {
        let (mut c, present) = Client::connect(addr, id, true).await;
        assert!(!present);
        c.subscribe(filter, qos).await;
        c.send(&[Packet::Disconnect(codec::Disconnect::new(
            codec::ReasonCode::Success,
        ))])
        .await;
    }
    // A retained message, acknowledged before the kill.
    let (mut r, _) = Client::connect(addr, "retainer", true).await;
    r.send(&[publish(
        "crash/retained",
        QosPid::AtLeastOnce(PacketId::new(7).expect("id")),
        4242,
        true,
    )])
    .await;
    assert!(matches!(r.recv().await, Some(Packet::PubAck(_))));

    // QoS 1 and QoS 2 streams; SIGKILL once both are well under way.
    let q1 = tokio::spawn(publish_until_killed(
        addr,
        "crash/q1",
        QoS::AtLeastOnce,
        20_000,
    ));
    let q2 = tokio::spawn(publish_until_killed(
        addr,
        "crash/q2",
        QoS::ExactlyOnce,
        20_000,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    kill9(&mut broker);
    let acked_q1 = q1.await.expect("publisher 1");
    let acked_q2 = q2.await.expect("publisher 2");
    assert!(
        acked_q1.len() > 100 && acked_q1.len() < 20_000,
        "QoS 1 stream killed mid-way: {} acknowledged",
        acked_q1.len()
    );
    assert!(
        acked_q2.len() > 100 && acked_q2.len() < 20_000,
        "QoS 2 stream killed mid-way: {} acknowledged",
        acked_q2.len()
    );

    let (mut broker, addr) = start(&root.0);
    for (id, acked, exactly_once) in [("sub-1", &acked_q1, false), ("sub-2", &acked_q2, true)] {
        let (mut c, present) = Client::connect(addr, id, false).await;
        assert!(present, "{id}: the session survived");
        let (got, _) = drain(&mut c).await;
        assert_none_lost(id, acked, &got, exactly_once);
        // The session keeps its subscription: a new message arrives.
    }
    // The retained message is there for a new subscriber.
    let (mut s, _) = Client::connect(addr, "late", true).await;
    s.subscribe("crash/retained", QoS::AtLeastOnce).await;
    match s.recv().await {
        Some(Packet::Publish(p)) => {
            assert!(p.retain);
            assert_eq!(&p.payload[..], &4242u32.to_be_bytes());
        }
        other => panic!("expected the retained message, got {other:?}"),
    }
    // The sessions still hold their subscriptions after the restart.
    let (mut sub, present) = Client::connect(addr, "sub-1", false).await;
    assert!(present);
    let (mut p, _) = Client::connect(addr, "pub-after", true).await;
    p.send(&[publish(
        "crash/q1",
        QosPid::AtLeastOnce(PacketId::new(1).expect("id")),
        999_999,
        false,
    )])
    .await;
    let (got, _) = drain(&mut sub).await;
    assert!(got.contains(&999_999), "subscription kept: {got:?}");
    kill9(&mut broker);
}

/// A QoS 2 receiver as the spec describes it (§4.3.3, method B): a message is handed to the
/// application when its PUBLISH first arrives; its packet id is remembered until PUBREL, and a
/// PUBLISH with a remembered id is a duplicate. The state outlives connections, as a persistent
/// session's must.
#[derive(Default)]
struct Qos2Receiver {
    pending: std::collections::HashSet<u16>,
    delivered: Vec<u32>,
}

impl Qos2Receiver {
    /// Reads until `stop` or 2 s of silence, answering the flow.
    async fn run(&mut self, client: &mut Client, stop: Option<usize>) {
        while stop.is_none_or(|n| self.delivered.len() < n) {
            let Some(p) = client.recv_within(Duration::from_secs(2)).await else {
                return;
            };
            match p {
                Packet::Publish(p) => {
                    let QosPid::ExactlyOnce(id) = p.qos else {
                        panic!("expected QoS 2, got {:?}", p.qos)
                    };
                    if self.pending.insert(id.get()) {
                        let n = u32::from_be_bytes(p.payload[..4].try_into().expect("4 bytes"));
                        self.delivered.push(n);
                    } else {
                        assert!(p.dup, "a repeated packet id comes with DUP");
                    }
                    client.send(&[Packet::PubRec(PubRec::new(id))]).await;
                }
                Packet::PubRel(r) => {
                    self.pending.remove(&r.packet_id.get());
                    client
                        .send(&[Packet::PubComp(PubComp::new(r.packet_id))])
                        .await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_qos2_subscriber_gets_every_message_exactly_once_across_a_crash() {
    let root = Root::new("online");
    let (mut broker, addr) = start(&root.0);
    let (mut sub, _) = Client::connect(addr, "online-sub", true).await;
    sub.subscribe("online/q2", QoS::ExactlyOnce).await;
    let publisher = tokio::spawn(publish_until_killed(
        addr,
        "online/q2",
        QoS::ExactlyOnce,
        50_000,
    ));
    // Receive for a while with messages in flight both ways, then kill the broker.
    let mut receiver = Qos2Receiver::default();
    receiver.run(&mut sub, Some(500)).await;
    kill9(&mut broker);
    receiver.run(&mut sub, None).await;
    let acked = publisher.await.expect("publisher");
    assert!(
        acked.len() >= 500 && acked.len() < 50_000,
        "{}",
        acked.len()
    );

    let (_broker, addr) = start(&root.0);
    let mut broker = _broker;
    let (mut sub, present) = Client::connect(addr, "online-sub", false).await;
    assert!(present);
    receiver.run(&mut sub, None).await;
    assert_none_lost("online-sub", &acked, &receiver.delivered, true);
    kill9(&mut broker);
}

/// Connects (clean start off) with the given Session Expiry Interval, disconnects normally, and
/// returns Session Present.
async fn connect_with_expiry(addr: SocketAddr, client_id: &str, expiry: u32) -> bool {
    let (mut client, present) = Client::connect_with_expiry(addr, client_id, false, expiry).await;
    client
        .send(&[Packet::Disconnect(codec::Disconnect::new(
            codec::ReasonCode::Success,
        ))])
        .await;
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_clean_sessions_do_not_come_back_and_a_corrupt_store_stops_start_up() {
    let root = Root::new("expiry");
    let (mut broker, addr) = start(&root.0);
    assert!(!connect_with_expiry(addr, "short", 1).await);
    assert!(!connect_with_expiry(addr, "long", 3600).await);
    assert!(!connect_with_expiry(addr, "clean", 0).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill9(&mut broker);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut broker, addr) = start(&root.0);
    assert!(connect_with_expiry(addr, "long", 3600).await, "kept");
    assert!(!connect_with_expiry(addr, "short", 1).await, "expired");
    assert!(!connect_with_expiry(addr, "clean", 0).await, "never stored");
    kill9(&mut broker);

    // Garbage where the database was: start-up fails and names the file; the file stays.
    let file = root.0.join("mqtt-data").join("mqtt.redb");
    std::fs::write(&file, b"not a database at all, not even close").expect("overwrite");
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("HOME", &root.0)
        .args(["--root", root.0.to_str().expect("utf-8")])
        .env("MQTT_NETWORK_PORT", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the file: {stderr}"
    );
    assert_eq!(
        std::fs::read(&file).expect("still there"),
        b"not a database at all, not even close"
    );
}

/// With a `batchMaxDelay` of 20 s, a lone QoS 1 publisher to a persistent session still gets each
/// PUBACK at once: when the broker runs out of work it tells the store, whose batch then commits
/// after a short grace instead of at the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_broker_commits_without_waiting_for_the_batch_delay() {
    let root = Root::new("idle-commit");
    std::fs::write(
        root.0.join("harperdb-config.yaml"),
        "mqtt:\n  webSocket: false\n  network:\n    securePort: null\n  storage:\n    durability: batch\n    batchMaxDelay: 20000\n",
    )
    .expect("config");
    let (mut broker, addr) = start(&root.0);
    let (mut subscriber, _) = Client::connect(addr, "idle-sub", true).await;
    subscriber.subscribe("idle/t", QoS::AtLeastOnce).await;
    drop(subscriber);
    let (mut publisher, _) = Client::connect(addr, "idle-pub", true).await;
    let started = std::time::Instant::now();
    for n in 1..=3u16 {
        let id = PacketId::new(n).expect("id");
        publisher
            .send(&[publish(
                "idle/t",
                QosPid::AtLeastOnce(id),
                u32::from(n),
                false,
            )])
            .await;
        match publisher.recv().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, id),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    // Each waited for a sync, not for 20 s (the whole test would then take a minute).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    kill9(&mut broker);
    // The messages were stored for the offline subscriber before they were acknowledged.
    let (mut broker, addr) = start(&root.0);
    let (mut subscriber, present) = Client::connect(addr, "idle-sub", false).await;
    assert!(present);
    let (got, _) = drain(&mut subscriber).await;
    assert_eq!(got, [1, 2, 3]);
    kill9(&mut broker);
}

/// `/metrics` of a broker whose HTTP port (WebSocket listener) is `port`.
async fn metric(port: &str, name: &str) -> u64 {
    let mut http = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("the HTTP port");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    http.read_to_string(&mut body).await.expect("response");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_subscriber_that_keeps_up_has_its_messages_cancelled_not_written() {
    let root = Root::new("resumed-cancel");
    std::fs::write(
        root.0.join("harperdb-config.yaml"),
        "mqtt:\n  webSocket: true\n  network:\n    port: 127.0.0.1:0\n    securePort: null\nhttp:\n  port: 127.0.0.1:0\n",
    )
    .expect("config");
    let started = common::start(
        &root.0,
        &[
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
        Stdio::null(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", started.port_of("TCP"))
        .parse()
        .expect("an address");
    let http = started.port_of("WS");
    let mut broker = started.child;
    let lines = started.lines;
    std::thread::spawn(move || for _ in lines {});

    // A persistent session, resumed by a new connection: the store must still recognise the
    // changes of one queue entry as the same entry's.
    let (mut subscriber, _) = Client::connect(addr, "resumed-sub", true).await;
    subscriber.subscribe("resumed/t", QoS::AtLeastOnce).await;
    drop(subscriber);
    let (mut subscriber, present) = Client::connect(addr, "resumed-sub", false).await;
    assert!(present);
    let cancelled = r#"mqtt_store_ops_total{result="cancelled"}"#;
    let before = metric(&http, cancelled).await;

    let count = 200u32;
    let acker = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            match subscriber.recv().await {
                Some(Packet::Publish(p)) => {
                    if let QosPid::AtLeastOnce(id) = p.qos {
                        subscriber.send(&[Packet::PubAck(PubAck::new(id))]).await;
                    }
                    got += 1;
                }
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    });
    let (mut publisher, _) = Client::connect(addr, "resumed-pub", true).await;
    for n in 1..=count {
        let id = PacketId::new(u16::try_from(n).expect("small")).expect("id");
        publisher
            .send(&[publish("resumed/t", QosPid::AtLeastOnce(id), n, false)])
            .await;
    }
    for _ in 1..=count {
        match publisher.recv().await {
            Some(Packet::PubAck(_)) => {}
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    tokio::time::timeout(WAIT, acker)
        .await
        .expect("every message delivered")
        .expect("the subscriber task");
    // Acknowledgements that arrived before their batch was taken cancelled the message's
    // changes. With the entry's changes named through different allocations of the client id
    // (as a resumed session's were), none would.
    let after = metric(&http, cancelled).await;
    assert!(after > before, "nothing cancelled: {before} -> {after}");
    kill9(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_that_wait_for_the_store_do_not_wait_for_the_batch_delay() {
    let root = Root::new("gated");
    std::fs::write(
        root.0.join("harperdb-config.yaml"),
        "mqtt:\n  webSocket: false\n  network:\n    securePort: null\n  storage:\n    durability: batch\n    batchMaxDelay: 20000\n",
    )
    .expect("config");
    let (mut broker, addr) = start(&root.0);
    let started = std::time::Instant::now();

    // A connected persistent subscriber at QoS 2: each PUBLISH to it waits until its packet id
    // is stored, so no acknowledgement can cancel the entry before the batch commits.
    let (mut subscriber, _) = Client::connect(addr, "gated-sub", true).await;
    subscriber.subscribe("gated/q2", QoS::ExactlyOnce).await;
    let received = tokio::spawn(async move {
        let (got, _) = drain(&mut subscriber).await;
        got
    });
    // A clean publisher at QoS 2: the subscriber's entry is the only change to write.
    let (mut publisher, _) = Client::connect_with_expiry(addr, "gated-pub", true, 0).await;
    for n in 1..=3u16 {
        let id = PacketId::new(n).expect("id");
        publisher
            .send(&[publish(
                "gated/q2",
                QosPid::ExactlyOnce(id),
                u32::from(n),
                false,
            )])
            .await;
        match publisher.recv().await {
            Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, id),
            other => panic!("expected PUBREC, got {other:?}"),
        }
        publisher.send(&[Packet::PubRel(PubRel::new(id))]).await;
        match publisher.recv().await {
            Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, id),
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
    }
    assert_eq!(received.await.expect("the subscriber task"), [1, 2, 3]);

    // A persistent client subscribed to its own topic: its copy queues behind its PUBACK, which
    // waits for the store.
    let (mut own, _) = Client::connect(addr, "gated-self", true).await;
    own.subscribe("gated/self", QoS::AtLeastOnce).await;
    let id = PacketId::new(9).expect("id");
    own.send(&[publish("gated/self", QosPid::AtLeastOnce(id), 9, false)])
        .await;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match own.recv().await {
            Some(Packet::PubAck(ack)) => {
                assert_eq!(ack.packet_id, id);
                acked = true;
            }
            Some(Packet::Publish(p)) => {
                if let QosPid::AtLeastOnce(id) = p.qos {
                    own.send(&[Packet::PubAck(PubAck::new(id))]).await;
                }
                delivered = true;
            }
            other => panic!("expected PUBACK and PUBLISH, got {other:?}"),
        }
    }
    // Committed once the broker went idle, not after 20 s (the receives above would have
    // timed out).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    kill9(&mut broker);
}
