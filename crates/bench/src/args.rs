//! The command line of `loadgen`: a scenario name followed by `--flag value` pairs and the
//! switch `--persistent`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use codec::QoS;

use crate::flow::{HEADER, MAX_PAYLOAD};

/// Usage text, printed with a missing or unknown scenario.
pub const USAGE: &str = "\
usage: loadgen SCENARIO [--flag value]...

scenarios:
  fanin     --clients N publishers on lg/0..N, one subscriber on lg/+
  fanout    one publisher on lg/0, --clients N subscribers on lg/0
  latency   one publisher at --rate msg/s, one subscriber; p50/p90/p99/p99.9 from payload timestamps
  idle      --clients N connections held idle, connects/s, broker RSS per connection
            (--broker-pid), then one pub/sub round trip on a fresh connection

flags (defaults in brackets):
  --addr IP:PORT          broker address, loopback only [127.0.0.1:1883]
  --transport tcp|tls|ws  [tcp]; ws speaks binary frames with subprotocol `mqtt`
  --ca PATH               CA certificate (PEM) trusted for tls
  --qos 0|1|2             [0]
  --clients N             [1]
  --count N               messages per publisher [10000]
  --payload BYTES         payload size, 20 to 65536 [64]
  --rate N                latency: messages per second [2000]
  --window N              QoS 1/2 messages a publisher keeps unacknowledged, 1 to 65535 [64]
  --timeout SECS          the whole run's deadline [60]
  --broker-pid PID        idle: the broker process whose VmRSS is read
  --hold SECS             idle: how long the connections are held [3]
  --parallel N            idle: connections being opened at once [64]
  --persistent            fanin/fanout/latency: subscribers hold persistent sessions (MQTT 3.1.1
                          clean session 0), each cleared first by a clean connection, and are
                          checked to be kept by the broker after the run; publishers stay clean
";

/// How clients reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain MQTT over TCP.
    Tcp,
    /// MQTT over TLS (rustls, `ring`), trusting `--ca`.
    Tls,
    /// MQTT over WebSocket: binary frames, subprotocol `mqtt`.
    Ws,
}

/// The measurement asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Many publishers, one subscriber on a wildcard.
    FanIn,
    /// One publisher, many subscribers on its topic.
    FanOut,
    /// One publisher at a fixed rate, one subscriber.
    Latency,
    /// Many connections doing nothing.
    Idle,
}

impl Scenario {
    /// The name on the command line and in the result line.
    pub fn name(self) -> &'static str {
        match self {
            Self::FanIn => "fanin",
            Self::FanOut => "fanout",
            Self::Latency => "latency",
            Self::Idle => "idle",
        }
    }
}

/// Everything the command line says.
#[derive(Debug, Clone)]
pub struct Args {
    /// The measurement.
    pub scenario: Scenario,
    /// The broker's address; loopback only by convention of the harness.
    pub addr: SocketAddr,
    /// Transport of every client.
    pub transport: Transport,
    /// CA certificate for TLS.
    pub ca: Option<PathBuf>,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Publishers (fan-in), subscribers (fan-out) or idle connections.
    pub clients: usize,
    /// Messages per publisher.
    pub count: u64,
    /// Payload size, at least [`HEADER`].
    pub payload: usize,
    /// Latency scenario: messages per second.
    pub rate: u64,
    /// Deadline of the whole run.
    pub timeout: Duration,
    /// Idle scenario: the broker whose memory is read.
    pub broker_pid: Option<u32>,
    /// Idle scenario: how long connections are held before the round trip.
    pub hold: Duration,
    /// Idle scenario: connections being opened at once.
    pub parallel: usize,
    /// Subscribers connect with clean session 0, after clearing any old session.
    pub persistent: bool,
    /// QoS 1/2 messages a publisher keeps unacknowledged.
    pub window: u64,
}

impl Args {
    /// Parses `loadgen SCENARIO [--flag value]...` (program name excluded).
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut it = args.into_iter();
        let scenario = match it.next().as_deref() {
            Some("fanin") => Scenario::FanIn,
            Some("fanout") => Scenario::FanOut,
            Some("latency") => Scenario::Latency,
            Some("idle") => Scenario::Idle,
            Some(other) => bail!("unknown scenario `{other}`\n\n{USAGE}"),
            None => bail!("no scenario given\n\n{USAGE}"),
        };
        let mut a = Self {
            scenario,
            addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
            transport: Transport::Tcp,
            ca: None,
            qos: QoS::AtMostOnce,
            clients: 1,
            count: 10_000,
            payload: 64,
            rate: 2000,
            timeout: Duration::from_secs(60),
            broker_pid: None,
            hold: Duration::from_secs(3),
            parallel: 64,
            persistent: false,
            window: 64,
        };
        while let Some(flag) = it.next() {
            if flag == "--persistent" {
                a.persistent = true;
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let bad = || format!("{flag}: bad value `{value}`");
            match flag.as_str() {
                "--addr" => a.addr = value.parse().with_context(bad)?,
                "--transport" => {
                    a.transport = match value.as_str() {
                        "tcp" => Transport::Tcp,
                        "tls" => Transport::Tls,
                        "ws" => Transport::Ws,
                        _ => bail!("--transport: expected tcp, tls or ws, got `{value}`"),
                    }
                }
                "--ca" => a.ca = Some(PathBuf::from(value)),
                "--qos" => {
                    a.qos = QoS::from_u8(value.parse().with_context(bad)?)
                        .map_err(|e| anyhow::anyhow!("--qos: {e}"))?
                }
                "--clients" => a.clients = value.parse().with_context(bad)?,
                "--count" => a.count = value.parse().with_context(bad)?,
                "--payload" => a.payload = value.parse().with_context(bad)?,
                "--rate" => a.rate = value.parse().with_context(bad)?,
                "--timeout" => a.timeout = Duration::from_secs(value.parse().with_context(bad)?),
                "--broker-pid" => a.broker_pid = Some(value.parse().with_context(bad)?),
                "--hold" => a.hold = Duration::from_secs(value.parse().with_context(bad)?),
                "--parallel" => a.parallel = value.parse().with_context(bad)?,
                "--window" => a.window = value.parse().with_context(bad)?,
                other => bail!("unknown option `{other}`\n\n{USAGE}"),
            }
        }
        // The benchmark is a load test: it never leaves the machine.
        if !a.addr.ip().is_loopback() {
            bail!("--addr {}: loadgen only targets loopback addresses", a.addr);
        }
        if !(HEADER..=MAX_PAYLOAD).contains(&a.payload) {
            bail!(
                "--payload {}: expected {HEADER} to {MAX_PAYLOAD} bytes (the payload carries a {HEADER}-byte header)",
                a.payload
            );
        }
        if a.clients == 0 || a.parallel == 0 {
            bail!("--clients and --parallel must be at least 1");
        }
        // Packet identifiers are 16 bits; a window past them would reuse ids still in flight.
        if !(1..=65_535).contains(&a.window) {
            bail!("--window {}: expected 1 to 65535", a.window);
        }
        if a.scenario == Scenario::Latency && a.rate == 0 {
            bail!("--rate must be at least 1 for latency");
        }
        if a.persistent && a.scenario == Scenario::Idle {
            bail!("--persistent applies to fanin, fanout and latency, not idle");
        }
        if a.transport == Transport::Tls && a.ca.is_none() {
            bail!("--transport tls needs --ca PATH");
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(line: &str) -> anyhow::Result<Args> {
        Args::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn reads_flags_after_the_scenario() {
        let a =
            parse("fanin --qos 2 --clients 4 --count 50 --payload 4096 --transport ws").unwrap();
        assert_eq!(a.scenario, Scenario::FanIn);
        assert_eq!(a.qos, QoS::ExactlyOnce);
        assert_eq!((a.clients, a.count, a.payload), (4, 50, 4096));
        assert_eq!(a.transport, Transport::Ws);
    }

    #[test]
    fn rejects_tls_without_a_ca_and_short_payloads() {
        assert!(parse("fanin --transport tls").is_err());
        assert!(parse("fanin --payload 10").is_err());
        assert!(parse("fanin --payload 70000").is_err());
        assert!(parse("fanin --addr 192.0.2.1:1883").is_err());
        assert!(parse("fanin --addr [::1]:1883").is_ok());
    }

    #[test]
    fn window_defaults_to_64_and_stays_within_packet_ids() {
        assert_eq!(parse("fanin --qos 1").unwrap().window, 64);
        assert_eq!(parse("fanin --qos 1 --window 256").unwrap().window, 256);
        assert!(parse("fanin --window 0").is_err());
        assert!(parse("fanin --window 65536").is_err());
    }

    #[test]
    fn persistent_is_a_switch_for_message_flows() {
        let a = parse("fanin --persistent --qos 1").unwrap();
        assert!(a.persistent);
        assert_eq!(a.qos, QoS::AtLeastOnce);
        assert!(!parse("fanin --qos 1").unwrap().persistent);
        assert!(parse("idle --persistent").is_err());
    }

    #[test]
    fn rejects_unknown_scenarios_and_flags() {
        assert!(parse("fanx").is_err());
        assert!(parse("idle --bogus 1").is_err());
        assert!(parse("idle --clients").is_err());
    }
}
