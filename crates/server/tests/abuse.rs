//! What a hostile client can make the broker binary spend (issue #16), measured from outside:
//! the log lines of a flood of failed logins (bounded, escaped, cut short), and the memory that
//! topic aliases keep.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use codec::{Connect, MqttString, Packet, ProtocolVersion, Publish, TopicName};
use common::Running;

const V5: ProtocolVersion = ProtocolVersion::V5;

fn send(stream: &mut TcpStream, packet: Packet) {
    let mut out = BytesMut::new();
    packet.encode(V5, &mut out).unwrap();
    stream.write_all(&out).unwrap();
}

/// The next packet, or `None` once the broker closed the connection.
fn recv(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        if let Some(packet) = codec::decode(buf, V5, u32::MAX).unwrap() {
            return Some(packet);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn connect(addr: &str, user: &str, password: &[u8]) -> (TcpStream, BytesMut, Option<Packet>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut connect = Connect::new(V5, MqttString::try_from("").unwrap(), 60);
    connect.username = Some(MqttString::try_from(user).unwrap());
    connect.password = Some(Bytes::copy_from_slice(password));
    connect.properties.topic_alias_maximum = Some(0);
    send(&mut stream, Packet::Connect(Box::new(connect)));
    let mut buf = BytesMut::new();
    let ack = recv(&mut stream, &mut buf);
    (stream, buf, ack)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn start(root: &Path, extra: &[(&str, &str)]) -> Running {
    let mut env = vec![
        ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
        ("MQTT_NETWORK_SECUREPORT", "0"),
        ("MQTT_WEBSOCKET", "false"),
        ("HDB_ADMIN_USERNAME", "admin"),
        ("HDB_ADMIN_PASSWORD", "right-password"),
    ];
    env.extend_from_slice(extra);
    Running(common::start(root, &env, Stdio::null()))
}

#[test]
fn a_flood_of_failed_logins_writes_a_few_short_escaped_lines() {
    let root = tempfile::tempdir().unwrap();
    let started = start(root.path(), &[("MQTT_LIMITS_CONNECTTIMEOUT", "1s")]);
    let addr = started.0.only_tcp_address();
    // 50 guesses at once, each with a 20 KB user name that tries to forge a log line.
    let user = format!("eve\nFORGED ERROR admin logged in{}", "A".repeat(20_000));
    let guesses: Vec<_> = (0..50)
        .map(|_| {
            let (addr, user) = (addr.clone(), user.clone());
            std::thread::spawn(move || connect(&addr, &user, b"wrong").2)
        })
        .collect();
    let mut codes = Vec::new();
    for g in guesses {
        match g.join().unwrap() {
            Some(Packet::ConnAck(ack)) => codes.push(ack.reason_code),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        codes.contains(&codec::ReasonCode::BadUserNameOrPassword),
        "{codes:?}"
    );
    drop(started);
    let log = std::fs::read_to_string(root.path().join("log/hdb.log")).unwrap();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert_eq!(failures.len(), 1, "one line per address per 10 s:\n{log}");
    let line = failures[0];
    println!("{line}");
    assert!(line.contains("127.0.0.1"), "the peer: {line}");
    assert!(line.contains("client_id"), "the client id: {line}");
    assert!(
        line.contains("user=eve\\nFORGED"),
        "escaped, as text: {line}"
    );
    assert!(line.contains("…("), "cut short: {line}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "no forged line:\n{log}"
    );
    assert!(log.len() < 16 * 1024, "{} bytes of log", log.len());
}

#[test]
fn topic_aliases_do_not_keep_whole_packets() {
    let root = tempfile::tempdir().unwrap();
    let started = start(root.path(), &[]);
    let pid = started.0.child.id();
    let addr = started.0.only_tcp_address();
    let (mut stream, mut buf, ack) = connect(&addr, "admin", b"right-password");
    assert!(matches!(ack, Some(Packet::ConnAck(a)) if a.reason_code.is_success()));
    let before = rss_kib(pid);
    // 48 aliases, each set by a PUBLISH of almost 1 MiB (the default maximum packet size).
    let payload = Bytes::from(vec![b'x'; 1_000_000]);
    for alias in 1..=48u16 {
        let mut p = Publish::new(
            TopicName::try_from(format!("t/{alias}").as_str()).unwrap(),
            payload.clone(),
        );
        p.properties.topic_alias = std::num::NonZeroU16::new(alias);
        send(&mut stream, Packet::Publish(p));
    }
    send(&mut stream, Packet::PingReq);
    assert_eq!(recv(&mut stream, &mut buf), Some(Packet::PingResp));
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    drop(started);
    // Each alias used to keep its whole 1 MB packet buffer alive: 48 MB.
    assert!(grown_mib < 16, "RSS grew {grown_mib} MiB");
}
