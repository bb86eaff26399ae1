//! `loadgen`: drives an MQTT broker on loopback with raw codec clients (MQTT 3.1.1 over TCP, TLS
//! or WebSocket) and prints one result line of `key=value` fields, which `cargo xtask bench`
//! reads. Loss or duplicates at QoS 1/2 print the line and then fail the run: such a run is a
//! failure, not a figure.
//!
//! ```text
//! loadgen fanin   --addr 127.0.0.1:1883 --qos 0 --clients 4 --count 100000 --payload 64
//! loadgen fanout  --addr 127.0.0.1:1883 --qos 2 --clients 10 --count 20000
//! loadgen fanin   --addr 127.0.0.1:8883 --qos 1 --clients 4 --transport tls --ca certs/ca.pem
//! loadgen fanin   --addr 127.0.0.1:9926 --qos 1 --clients 4 --transport ws
//! loadgen latency --addr 127.0.0.1:1883 --qos 1 --rate 2000 --count 10000
//! loadgen fanin   --addr 127.0.0.1:1883 --qos 1 --clients 4 --persistent
//! loadgen idle    --addr 127.0.0.1:1883 --clients 10000 --broker-pid 4242 --hold 3
//! ```

mod args;
mod conn;
mod fd_limit;
mod flow;
mod idle;

use anyhow::bail;
use codec::QoS;

use args::{Args, Scenario, Transport};

/// File descriptors beyond one per client: the runtime, stdio, the round-trip client.
const SPARE_FDS: u64 = 256;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse(std::env::args().skip(1))?;
    fd_limit::ensure(a.clients as u64 + SPARE_FDS)?;
    let transport = match a.transport {
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
    };
    if a.scenario == Scenario::Idle {
        let o = idle::run(&a).await?;
        let secs = o.connect_time.as_secs_f64().max(1e-9);
        let mut line = format!(
            "scenario=idle transport={transport} clients={} connected={} secs={secs:.3} connects_per_s={:.0} closed={} roundtrip_us={}",
            a.clients,
            o.connected,
            o.connected as f64 / secs,
            o.closed_by_broker,
            o.round_trip.as_micros(),
        );
        if let (Some(before), Some(held), Some(per)) =
            (o.rss_before_kib, o.rss_held_kib, o.rss_per_connection())
        {
            line +=
                &format!(" rss_before_kib={before} rss_held_kib={held} rss_per_conn_b={per:.0}");
        }
        println!("{line}");
        if o.connected < a.clients || o.closed_by_broker > 0 {
            bail!(
                "{} of {} idle connections held ({} closed by the broker)",
                o.connected - o.closed_by_broker,
                a.clients,
                o.closed_by_broker
            );
        }
        return Ok(());
    }
    let o = flow::run(&a).await?;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    println!(
        "scenario={} transport={transport} session={} qos={} clients={} payload={} received={} expected={} secs={secs:.3} rate={:.0} lost={} dup={} p50_us={} p90_us={} p99_us={} p999_us={}",
        a.scenario.name(),
        if a.persistent { "persistent" } else { "clean" },
        a.qos as u8,
        a.clients,
        a.payload,
        o.received,
        o.expected,
        o.received as f64 / secs,
        o.lost,
        o.duplicates,
        o.percentile(0.50),
        o.percentile(0.90),
        o.percentile(0.99),
        o.percentile(0.999),
    );
    if a.qos != QoS::AtMostOnce && (o.lost > 0 || o.duplicates > 0) {
        bail!(
            "{} lost and {} duplicated at QoS {}: a failure, not a figure",
            o.lost,
            o.duplicates,
            a.qos as u8
        );
    }
    Ok(())
}
