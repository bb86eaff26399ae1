//! The report of a run: the Markdown table of medians, issue #8's durable-store comparison, and
//! `results.md` with the machine, date, versions and command, beside the two charts.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

use super::plot::{self, Group};
use super::{Chart, Figure, Options, thousands};

/// One row of the table: both brokers' medians.
pub struct RowResult {
    /// The key of the scenario it comes from.
    pub scenario: &'static str,
    /// What is measured, with its unit.
    pub name: String,
    /// Where it is drawn.
    pub chart: Chart,
    /// Our broker's median.
    pub ours: Figure,
    /// mosquitto's median.
    pub mosquitto: Figure,
    /// Median share of messages lost (QoS 0 may lose; QoS 1/2 loss fails the run).
    pub ours_lost: Option<f64>,
    /// The same for mosquitto.
    pub mosquitto_lost: Option<f64>,
}

/// The Markdown table: scenario, ours, mosquitto, ours / mosquitto.
pub fn table(rows: &[RowResult]) -> String {
    let mut out =
        String::from("| scenario | ours | mosquitto | ours / mosquitto |\n|---|---:|---:|---:|\n");
    for r in rows {
        let ratio = ratio(r.ours, r.mosquitto);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} |",
            r.name,
            cell(r.ours, r.ours_lost),
            cell(r.mosquitto, r.mosquitto_lost)
        );
    }
    out
}

/// A table cell: the figure, with the share lost when there is one.
fn cell(f: Figure, lost: Option<f64>) -> String {
    match f {
        Figure::Value(v) => {
            let loss = match lost {
                Some(l) if l > 0.0 => format!(" ({:.0} % lost)", l * 100.0),
                _ => String::new(),
            };
            format!("{}{loss}", thousands(v))
        }
        Figure::Failed => "failed".to_owned(),
        Figure::NotApplicable => "n/a".to_owned(),
        Figure::NotMeasured => "–".to_owned(),
    }
}

/// `a / b` to two decimals, or a dash when either is missing.
fn ratio(a: Figure, b: Figure) -> String {
    match (a.value(), b.value()) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    }
}

/// Issue #8's comparison when `persist-qos1` or `persist-qos1-mem` ran: QoS 1 fan-in to a
/// persistent subscriber with our store on (a), off (b), and mosquitto with `persistence true`
/// (c), with the ratios (a)/(b) (the aim: at least 0.5) and (a)/(c).
pub fn durability(rows: &[RowResult]) -> Option<String> {
    let on = rows.iter().find(|r| r.scenario == "persist-qos1");
    let off = rows.iter().find(|r| r.scenario == "persist-qos1-mem");
    if on.is_none() && off.is_none() {
        return None;
    }
    let a = on.map_or(Figure::NotMeasured, |r| r.ours);
    let b = off.map_or(Figure::NotMeasured, |r| r.ours);
    let c = on.map_or(Figure::NotMeasured, |r| r.mosquitto);
    let mut out = String::from(
        "| fan-in 4→1, QoS 1, persistent subscriber, msg/s | (a) ours, store on (`batch`) \
         | (b) ours, store off (`path: null`) | (c) mosquitto, `persistence true` \
         | (a) / (b), aim ≥ 0.5 | (a) / (c) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| median of the rounds | {} | {} | {} | {} | {} |",
        cell(a, None),
        cell(b, None),
        cell(c, None),
        ratio(a, b),
        ratio(a, c),
    );
    Some(out)
}

/// Facts about the run that make its figures comparable.
pub struct Meta {
    date: String,
    cpus: String,
    cpu_model: String,
    mosquitto: String,
    ours: String,
    rustc: String,
    command: String,
    rounds: usize,
    quick: bool,
    pinning: String,
    ws_missing: Option<String>,
}

impl Meta {
    /// Reads the machine, the versions and the date.
    pub fn collect(o: &Options, pinned: bool, ws_missing: Option<String>) -> Self {
        let first_line = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .and_then(|out| {
                    // `mosquitto -h` exits 3 and prints its version first.
                    let text = String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr);
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .map(|l| l.trim().to_owned())
                })
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let mut ours = first_line("git", &["rev-parse", "--short", "HEAD"]);
        if Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|out| !out.stdout.is_empty())
        {
            ours += " with uncommitted changes";
        }
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let now = time::OffsetDateTime::now_utc();
        let pinning = match (o.cores, pinned) {
            (1, true) => "one core: each broker pinned to CPU 0, loadgen to CPU 1 (taskset)",
            (1, false) => "one core asked, but taskset is missing: nothing pinned",
            _ => "two cores: brokers not pinned; loadgen shares both cores with the broker",
        };
        Self {
            date: format!("{} {:02}:{:02} UTC", now.date(), now.hour(), now.minute()),
            cpus: first_line("nproc", &[]),
            cpu_model,
            mosquitto: first_line("mosquitto", &["-h"]),
            ours: format!("harper-mqtt at git {ours}"),
            rustc: first_line("rustc", &["-V"]),
            command: o.command.clone(),
            rounds: o.rounds,
            quick: o.quick,
            pinning: pinning.to_owned(),
            ws_missing,
        }
    }
}

/// Writes `results.md`, `throughput.svg` and `latency.svg` into `dir`.
pub fn write(dir: &Path, meta: &Meta, table: &str, rows: &[RowResult]) -> anyhow::Result<()> {
    let durability = durability(rows);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let subtitle = format!(
        "median of {} round(s), {}; {}",
        meta.rounds,
        meta.date,
        if meta.quick {
            "QUICK smoke run: small counts, not a figure"
        } else {
            "64-byte payloads unless stated, loopback"
        }
    );
    let throughput: Vec<Group> = rows
        .iter()
        .filter(|r| r.chart == Chart::Throughput)
        .map(|r| Group {
            label: &r.name,
            ours: r.ours,
            mosquitto: r.mosquitto,
        })
        .collect();
    let latency: Vec<Group> = rows
        .iter()
        .filter_map(|r| match r.chart {
            Chart::Latency(label) => Some(Group {
                label,
                ours: r.ours,
                mosquitto: r.mosquitto,
            }),
            _ => None,
        })
        .collect();
    let mut charts = String::new();
    if !throughput.is_empty() {
        std::fs::write(
            dir.join("throughput.svg"),
            plot::throughput(&throughput, &subtitle),
        )?;
        charts += "![throughput per scenario, ours and mosquitto](throughput.svg)\n\n";
    }
    if !latency.is_empty() {
        std::fs::write(
            dir.join("latency.svg"),
            plot::latency(
                &latency,
                "Latency at 2,000 msg/s, QoS 1 (lower is better)",
                &subtitle,
            ),
        )?;
        charts += "![latency percentiles, ours and mosquitto](latency.svg)\n\n";
    }
    std::fs::write(
        dir.join("results.md"),
        results_md(meta, table, durability.as_deref(), &charts),
    )?;
    Ok(())
}

fn results_md(meta: &Meta, table: &str, durability: Option<&str>, charts: &str) -> String {
    let mut md = String::from("# Benchmark: harper-mqtt and mosquitto\n\n");
    if meta.quick {
        md += "**Quick smoke run** (small counts, one round): it shows the scenarios work, its \
               figures mean nothing.\n\n";
    }
    let _ = write!(
        md,
        "- date: {}\n- machine: {} CPUs, {}\n- pinning: {}\n- brokers: {}; {} (Debian)\n\
         - built with: {}\n- command: `{}`\n- figures: medians of {} round(s), rounds alternating \
         between the brokers, each run started once both brokers are idle\n\n",
        meta.date,
        meta.cpus,
        meta.cpu_model,
        meta.pinning,
        meta.ours,
        meta.mosquitto,
        meta.rustc,
        meta.command,
        meta.rounds,
    );
    md += table;
    md += "\n";
    md += "- Rates count messages delivered to subscribers per second, from the first publish to \
           the last delivery; fan-out counts each delivery. 64-byte payloads unless stated; every \
           payload carries its publisher, sequence number and send time, so loss, duplicates and \
           latency are counted by the subscribers.\n\
           - QoS 0 may drop (the broker's queue policy) and the loss is shown; loss or a duplicate \
           at QoS 1 or 2 fails the run, which then counts as failed, not as a figure.\n\
           - Latency and RSS per connection: lower is better; ours / mosquitto below 1 favours \
           ours there. RSS per connection is the broker's VmRSS after holding the idle \
           connections minus before opening them (a freshly started broker), over the count.\n\
           - Idle connections use MQTT 3.1.1 with a 600 s keep alive; after holding them the \
           harness checks the broker still answers a QoS 1 round trip on a new connection.\n\
           - TLS: TLS 1.3 with the generated test PKI (`xtask::pki`, ECDSA P-256). WebSocket: \
           binary frames, subprotocol `mqtt`; mosquitto's WebSocket listener runs in a second \
           mosquitto process (2.0.11 polls libwebsockets on every turn of its main loop, which \
           would slow its other figures, and will not start with a WebSocket listener alone).\n";
    if let Some(why) = &meta.ws_missing {
        let _ = writeln!(md, "- mosquitto's WebSocket listener did not start: {why}.");
    }
    md += "\n";
    if let Some(durability) = durability {
        md += "## Durable store: QoS 1 to a persistent subscriber (issue #8)\n\n";
        md += durability;
        md += PERSIST_NOTES;
        md += "\n";
    }
    md += charts;
    md
}

/// How to read the `persist-qos1` and `persist-qos1-mem` rows.
const PERSIST_NOTES: &str = "\n\
- Scenarios `persist-qos1` (rows \"…, store on\": (a) and (c)) and `persist-qos1-mem` (row \
\"…, store off\": (b); mosquitto is not measured there): fan-in 4→1 at QoS 1 as in `fanin-qos1`, \
but the subscriber holds a persistent session (MQTT 3.1.1 clean session 0, `loadgen \
--persistent`; any old session is first cleared by a clean connection, and after the run \
loadgen checks that the broker kept the session). Every message is then queued for a session \
that must survive a restart. Publishers use clean sessions. Each run restarts the broker from \
an empty data directory.\n\
- Ours, store on: the redb store in `<root>/mqtt-data` with `mqtt.storage.durability: batch` \
(the default): a PUBACK to a publisher waits until the batch holding its message is synced, and \
a subscriber's PUBACK arriving before that batch commits cancels the write. Ours, store off: \
`mqtt.storage.path: null`, everything in memory. The harness fails a run whose data directory \
does not match (missing with the store on, present with it off); `store_kib` in the run lines \
is the directory's size after the run.\n\
- mosquitto, `persistence true` (`persistence_location` in the run directory): mosquitto 2.0 \
writes its database only every `autosave_interval` (1800 s, its default) and at shutdown, so \
during a run it writes nothing, and a crash loses everything since the last save, acknowledged \
messages included. (a) / (c) therefore compares durable acknowledgements with a broker that \
keeps them in memory; mosquitto with `persistence false` to a clean subscriber is the \
`fanin-qos1` row.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_loss_failures_and_ratio() {
        let rows = [
            RowResult {
                scenario: "fanin-qos0",
                name: "fan-in 4→1, QoS 0, msg/s".to_owned(),
                chart: Chart::Throughput,
                ours: Figure::Value(427_343.0),
                mosquitto: Figure::Value(183_881.0),
                ours_lost: Some(0.73),
                mosquitto_lost: Some(0.0),
            },
            RowResult {
                scenario: "fanin-qos1-ws",
                name: "fan-in 4→1, QoS 1, WebSocket, msg/s".to_owned(),
                chart: Chart::Throughput,
                ours: Figure::Failed,
                mosquitto: Figure::NotApplicable,
                ours_lost: None,
                mosquitto_lost: None,
            },
        ];
        let t = table(&rows);
        assert!(t.contains("| fan-in 4→1, QoS 0, msg/s | 427,343 (73 % lost) | 183,881 | 2.32 |"));
        assert!(t.contains("| fan-in 4→1, QoS 1, WebSocket, msg/s | failed | n/a | – |"));
        assert_eq!(durability(&rows), None);
    }

    fn persist_row(scenario: &'static str, ours: Figure, mosquitto: Figure) -> RowResult {
        RowResult {
            scenario,
            name: scenario.to_owned(),
            chart: Chart::Throughput,
            ours,
            mosquitto,
            ours_lost: Some(0.0),
            mosquitto_lost: Some(0.0),
        }
    }

    #[test]
    fn durability_table_gives_both_ratios() {
        let rows = [
            persist_row(
                "persist-qos1",
                Figure::Value(120_000.0),
                Figure::Value(60_000.0),
            ),
            persist_row(
                "persist-qos1-mem",
                Figure::Value(300_000.0),
                Figure::NotMeasured,
            ),
        ];
        assert!(table(&rows).contains("| persist-qos1-mem | 300,000 | – | – |"));
        let d = durability(&rows).unwrap();
        assert!(d.contains("| median of the rounds | 120,000 | 300,000 | 60,000 | 0.40 | 2.00 |"));
        // Only the store-on scenario ran: (b) and its ratio are dashes.
        let d = durability(&rows[..1]).unwrap();
        assert!(d.contains("| 120,000 | – | 60,000 | – | 2.00 |"));
    }
}
