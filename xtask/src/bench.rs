//! `cargo xtask bench`: our broker and mosquitto side by side on loopback, the same scenarios
//! against both in alternating rounds, with the `loadgen` of the `bench` crate. Prints each run's
//! result line and a table of medians with the ratio ours / mosquitto, and writes `results.md`,
//! `throughput.svg` and `latency.svg` (default `docs/bench/`).
//!
//! With one core (the default) each broker is pinned to CPU 0 and loadgen to CPU 1 with `taskset`;
//! `--cores 2` pins nothing, so the broker may use both cores and loadgen shares them. Every run is
//! bounded in count and time (loadgen's `--timeout`, and a kill after it) and talks to 127.0.0.1
//! only. A run that fails (loss or duplicates at QoS 1/2, a timeout, a broker that stops
//! answering) is reported as failed, never averaged in, and makes the task exit non-zero.
//!
//! Each scenario names the storage of each broker ([`Storage`]); a broker running with another
//! one is restarted before the run, and scenarios marked `fresh` restart it before every run
//! (empty data directory, fresh memory). `persist-qos1` and `persist-qos1-mem` measure issue #8's
//! cost of the durable store: QoS 1 fan-in to a persistent subscriber with our store on
//! (`batch`) against mosquitto with `persistence true`, and with our store off.

mod broker;
mod plot;
mod report;
mod svg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use broker::{Broker, Launch, Ports, Storage};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Rounds per scenario and broker.
    pub rounds: usize,
    /// Scenario keys to run; all when `None`.
    pub only: Option<Vec<String>>,
    /// Small counts, one round: proves every scenario works.
    pub quick: bool,
    /// 1: broker on CPU 0, loadgen on CPU 1. 2: nothing pinned.
    pub cores: u8,
    /// Connections of the idle scenario, when given; see [`Options::idle_clients`].
    pub idle_clients: Option<usize>,
    /// Where the report goes.
    pub out: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

impl Options {
    /// Parses the arguments after `bench`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let args: Vec<String> = args.into_iter().collect();
        let mut o = Self {
            rounds: 3,
            only: None,
            quick: false,
            cores: 1,
            idle_clients: None,
            out: None,
            command: ["cargo xtask bench".to_owned()]
                .into_iter()
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut rounds = None;
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .with_context(|| format!("bench: {flag} needs a value"))
            };
            match flag.as_str() {
                "--rounds" => {
                    rounds = Some(value()?.parse().context("bench: --rounds needs a number")?)
                }
                "--only" => {
                    let names: Vec<String> = value()?.split(',').map(str::to_owned).collect();
                    for name in &names {
                        if !KEYS.contains(&name.as_str()) {
                            bail!(
                                "bench: unknown scenario `{name}`; known: {}",
                                KEYS.join(", ")
                            );
                        }
                    }
                    o.only = Some(names);
                }
                "--quick" => o.quick = true,
                "--cores" => {
                    o.cores = match value()?.as_str() {
                        "1" => 1,
                        "2" => 2,
                        other => bail!("bench: --cores takes 1 or 2, not `{other}`"),
                    }
                }
                "--idle-clients" => {
                    o.idle_clients = Some(
                        value()?
                            .parse()
                            .context("bench: --idle-clients needs a number")?,
                    )
                }
                "--out" => o.out = Some(PathBuf::from(value()?)),
                other => bail!("bench: unknown option `{other}`; run `cargo xtask help`"),
            }
        }
        o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 3 });
        if o.rounds == 0 || o.idle_clients == Some(0) {
            bail!("bench: --rounds and --idle-clients must be at least 1");
        }
        Ok(o)
    }

    /// Connections of the idle scenario: as given, else 500 in a quick run and 10,000 otherwise.
    fn idle_clients(&self) -> usize {
        self.idle_clients
            .unwrap_or(if self.quick { 500 } else { 10_000 })
    }
}

/// A scenario's figure for one broker.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Figure {
    /// The median of the rounds that succeeded.
    Value(f64),
    /// Every round failed.
    Failed,
    /// The broker does not offer what the scenario needs.
    NotApplicable,
    /// The scenario does not measure this broker.
    NotMeasured,
}

impl Figure {
    fn value(self) -> Option<f64> {
        match self {
            Self::Value(v) => Some(v),
            Self::Failed | Self::NotApplicable | Self::NotMeasured => None,
        }
    }
}

/// Which listener a scenario's clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Tcp,
    Tls,
    Ws,
}

/// Where a row's figure goes in the charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    /// A rate (higher is better) in the throughput chart.
    Throughput,
    /// A latency percentile (lower is better), labelled, in the latency chart.
    Latency(&'static str),
    /// Only in the table (lower is better).
    TableOnly,
}

/// One line of the table: a field of loadgen's result line.
struct Row {
    name: String,
    field: &'static str,
    chart: Chart,
}

impl Row {
    fn new(name: impl Into<String>, field: &'static str, chart: Chart) -> Self {
        Self {
            name: name.into(),
            field,
            chart,
        }
    }
}

/// One measured scenario: loadgen's arguments (full and quick) and the rows read from its result.
struct Scenario {
    /// The name for `--only`.
    key: &'static str,
    listener: Listener,
    /// loadgen arguments; `{ca}` and `{pid}` are replaced per run.
    args: String,
    rows: Vec<Row>,
    /// Restart the broker before each run: its memory is measured from a fresh process, its
    /// data directory starts empty.
    fresh: bool,
    /// Storage of ours and of mosquitto; `None`: that broker is not measured.
    storage: [Option<Storage>; 2],
}

/// Storage of ours and mosquitto in most scenarios: ours as `cargo run -p server` runs it (the
/// durable store, `batch`), mosquitto as Debian ships it (`persistence false`). With clean
/// sessions and no retained messages neither writes anything.
const STANDARD: [Option<Storage>; 2] = [Some(Storage::Disk), Some(Storage::Memory)];

/// Scenario keys, in run order.
const KEYS: &[&str] = &[
    "fanin-qos0",
    "fanin-qos1",
    "fanin-qos2",
    "fanout-qos0",
    "fanout-qos1",
    "fanout-qos2",
    "fanin-qos1-4k",
    "fanout-qos0-4k",
    "fanin-qos1-tls",
    "fanin-qos1-ws",
    "persist-qos1",
    "persist-qos1-mem",
    "latency",
    "idle",
];

/// Every scenario, with full or quick counts.
fn scenarios(o: &Options) -> Vec<Scenario> {
    let q = o.quick;
    // Full count, quick count.
    let n = |full: u64, quick: u64| if q { quick } else { full };
    // QoS 0 runs end at the deadline when the broker dropped messages: keep it short.
    let qos0_timeout = if q { 2 } else { 5 };
    let flow = |key, listener, args: String, name: &str| Scenario {
        key,
        listener,
        args,
        rows: vec![Row::new(name, "rate", Chart::Throughput)],
        fresh: false,
        storage: STANDARD,
    };
    // Issue #8: QoS 1 fan-in to one subscriber with a persistent session, from an empty data
    // directory each run.
    let persist = |key, name: &str, storage| Scenario {
        key,
        listener: Listener::Tcp,
        args: format!(
            "fanin --qos 1 --clients 4 --persistent --count {}",
            n(100_000, 2_000)
        ),
        rows: vec![Row::new(name, "rate", Chart::Throughput)],
        fresh: true,
        storage,
    };
    let idle = o.idle_clients();
    let idle_name = format!("{} idle connections", thousands(idle as f64));
    vec![
        flow(
            "fanin-qos0",
            Listener::Tcp,
            format!(
                "fanin --qos 0 --clients 4 --count {} --timeout {qos0_timeout}",
                n(250_000, 5_000)
            ),
            "fan-in 4→1, QoS 0, msg/s",
        ),
        flow(
            "fanin-qos1",
            Listener::Tcp,
            format!("fanin --qos 1 --clients 4 --count {}", n(100_000, 2_000)),
            "fan-in 4→1, QoS 1, msg/s",
        ),
        flow(
            "fanin-qos2",
            Listener::Tcp,
            format!("fanin --qos 2 --clients 4 --count {}", n(50_000, 1_000)),
            "fan-in 4→1, QoS 2, msg/s",
        ),
        flow(
            "fanout-qos0",
            Listener::Tcp,
            format!(
                "fanout --qos 0 --clients 10 --count {} --timeout {qos0_timeout}",
                n(100_000, 2_000)
            ),
            "fan-out 1→10, QoS 0, deliveries/s",
        ),
        flow(
            "fanout-qos1",
            Listener::Tcp,
            format!("fanout --qos 1 --clients 10 --count {}", n(50_000, 1_000)),
            "fan-out 1→10, QoS 1, deliveries/s",
        ),
        flow(
            "fanout-qos2",
            Listener::Tcp,
            format!("fanout --qos 2 --clients 10 --count {}", n(25_000, 500)),
            "fan-out 1→10, QoS 2, deliveries/s",
        ),
        flow(
            "fanin-qos1-4k",
            Listener::Tcp,
            format!(
                "fanin --qos 1 --clients 4 --payload 4096 --count {}",
                n(25_000, 500)
            ),
            "fan-in 4→1, QoS 1, 4 KiB, msg/s",
        ),
        flow(
            "fanout-qos0-4k",
            Listener::Tcp,
            format!(
                "fanout --qos 0 --clients 10 --payload 4096 --count {} --timeout {qos0_timeout}",
                n(25_000, 500)
            ),
            "fan-out 1→10, QoS 0, 4 KiB, deliveries/s",
        ),
        flow(
            "fanin-qos1-tls",
            Listener::Tls,
            format!(
                "fanin --qos 1 --clients 4 --count {} --transport tls --ca {{ca}}",
                n(100_000, 2_000)
            ),
            "fan-in 4→1, QoS 1, TLS, msg/s",
        ),
        flow(
            "fanin-qos1-ws",
            Listener::Ws,
            format!(
                "fanin --qos 1 --clients 4 --count {} --transport ws",
                n(100_000, 2_000)
            ),
            "fan-in 4→1, QoS 1, WebSocket, msg/s",
        ),
        persist(
            "persist-qos1",
            PERSIST_ON,
            [Some(Storage::Disk), Some(Storage::Disk)],
        ),
        persist(
            "persist-qos1-mem",
            PERSIST_OFF,
            [Some(Storage::Memory), None],
        ),
        Scenario {
            key: "latency",
            listener: Listener::Tcp,
            args: format!("latency --qos 1 --rate 2000 --count {}", n(6_000, 400)),
            rows: [
                ("p50", "p50_us"),
                ("p90", "p90_us"),
                ("p99", "p99_us"),
                ("p99.9", "p999_us"),
            ]
            .into_iter()
            .map(|(label, field)| {
                Row::new(
                    format!("2k msg/s QoS 1, {label} latency µs"),
                    field,
                    Chart::Latency(label),
                )
            })
            .collect(),
            fresh: false,
            storage: STANDARD,
        },
        Scenario {
            key: "idle",
            listener: Listener::Tcp,
            args: format!(
                "idle --clients {idle} --hold {} --timeout {} --broker-pid {{pid}}",
                if q { 1 } else { 3 },
                if q { 30 } else { 60 + idle / 500 },
            ),
            rows: vec![
                Row::new(
                    format!("{idle_name}: connects/s"),
                    "connects_per_s",
                    Chart::Throughput,
                ),
                Row::new(
                    format!("{idle_name}: broker RSS per connection, bytes"),
                    "rss_per_conn_b",
                    Chart::TableOnly,
                ),
            ],
            fresh: true,
            storage: STANDARD,
        },
    ]
}

/// Row of `persist-qos1`: ours with the store on (`batch`), mosquitto with `persistence true`.
const PERSIST_ON: &str = "fan-in 4→1, QoS 1, persistent, store on, msg/s";
/// Row of `persist-qos1-mem`: ours with the store off; mosquitto is not measured.
const PERSIST_OFF: &str = "fan-in 4→1, QoS 1, persistent, store off, msg/s";

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ours,
    Mosquitto,
}

/// One broker under test: its main process and, for mosquitto, the WebSocket one.
struct Side {
    kind: Kind,
    ports: Ports,
    main: Option<Broker>,
    /// The storage `main` runs with.
    storage: Storage,
    ws: Option<Broker>,
    /// Why the WebSocket listener is missing, when it is.
    ws_missing: Option<String>,
}

impl Side {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Ours => "ours",
            Kind::Mosquitto => "mosquitto",
        }
    }

    fn start(kind: Kind, env: &Env, want_ws: bool) -> anyhow::Result<Self> {
        let mut side = Self {
            kind,
            ports: match kind {
                Kind::Ours => broker::OURS,
                Kind::Mosquitto => broker::MOSQUITTO,
            },
            main: None,
            storage: Storage::Memory,
            ws: None,
            ws_missing: None,
        };
        let storage = STANDARD[side.index()].context("the standard scenarios measure both")?;
        side.restart(env, storage)?;
        if kind == Kind::Mosquitto && want_ws {
            match broker::mosquitto_ws(&env.launch) {
                Ok(b) => side.ws = Some(b),
                Err(e) => {
                    eprintln!("mosquitto: no WebSocket listener, its ws figures are n/a: {e:#}");
                    side.ws_missing = Some(format!("{e:#}"));
                }
            }
        }
        Ok(side)
    }

    /// Its column: 0 for ours, 1 for mosquitto.
    fn index(&self) -> usize {
        match self.kind {
            Kind::Ours => 0,
            Kind::Mosquitto => 1,
        }
    }

    /// (Re)starts the main process with `storage`, from an empty data directory.
    fn restart(&mut self, env: &Env, storage: Storage) -> anyhow::Result<()> {
        if let Some(old) = self.main.take() {
            old.stop();
        }
        self.main = Some(match self.kind {
            Kind::Ours => broker::ours(&env.server, &env.launch, storage)?,
            Kind::Mosquitto => broker::mosquitto(&env.launch, storage)?,
        });
        self.storage = storage;
        Ok(())
    }

    /// The process serving `listener`, checked to be running, and its port; `None` when this
    /// broker has no such listener.
    fn serving(&mut self, listener: Listener) -> anyhow::Result<Option<(u32, u16)>> {
        let (process, port) = match (self.kind, listener) {
            (_, Listener::Tcp) => (self.main.as_mut(), self.ports.tcp),
            (_, Listener::Tls) => (self.main.as_mut(), self.ports.tls),
            (Kind::Ours, Listener::Ws) => (self.main.as_mut(), self.ports.ws),
            (Kind::Mosquitto, Listener::Ws) => match self.ws.as_mut() {
                Some(ws) => (Some(ws), self.ports.ws),
                None => return Ok(None),
            },
        };
        let process = process.context("broker not started")?;
        process.check_running()?;
        Ok(Some((process.pid(), port)))
    }

    /// Restarts the main process if it has exited (a crash during a run).
    fn revive(&mut self, env: &Env) -> anyhow::Result<()> {
        let running = self
            .main
            .as_mut()
            .is_some_and(|b| b.check_running().is_ok());
        if !running {
            eprintln!("{}: exited; restarting it for the next run", self.name());
            self.restart(env, self.storage)?;
        }
        Ok(())
    }

    fn stop(mut self) {
        for b in [self.main.take(), self.ws.take()].into_iter().flatten() {
            b.stop();
        }
    }
}

/// What every run needs: binaries, directories, pinning.
struct Env {
    server: PathBuf,
    loadgen: PathBuf,
    launch: Launch,
    /// CPUs for loadgen's `taskset -c`.
    loadgen_cpus: Option<&'static str>,
}

/// Runs the benchmark.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives inside the workspace")?
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "server", "-p", "bench"])
        .current_dir(&root)
        .status()
        .context("building the release binaries")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release");
    let dir = target.join("bench-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let out = match (&o.out, o.quick, o.cores) {
        (Some(out), _, _) => out.clone(),
        (None, true, _) => target.join("bench-quick"),
        (None, false, 1) => root.join("docs/bench"),
        (None, false, _) => root.join("docs/bench/two-cores"),
    };

    let selected: Vec<Scenario> = scenarios(o)
        .into_iter()
        .filter(|s| {
            o.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|k| k == s.key))
        })
        .collect();
    let certs = dir.join("certs");
    xtask::pki::generate(&xtask::pki::PkiOptions::default())?.write_to(&certs)?;
    let pin = o.cores == 1 && has("taskset");
    if o.cores == 1 && !pin {
        eprintln!("taskset not found: nothing is pinned");
    }
    let idle_clients = selected
        .iter()
        .any(|s| s.key == "idle")
        .then_some(o.idle_clients());
    let env = Env {
        server: target.join("server"),
        loadgen: target.join("loadgen"),
        launch: Launch {
            dir: dir.clone(),
            certs: certs.clone(),
            cpus: pin.then_some("0"),
            nofile: match idle_clients {
                Some(n) => nofile_limit(n as u64 + 1024)?,
                None => None,
            },
        },
        loadgen_cpus: pin.then_some("1"),
    };
    let want_ws = selected.iter().any(|s| s.listener == Listener::Ws);
    let mut sides = [
        Side::start(Kind::Ours, &env, want_ws)?,
        Side::start(Kind::Mosquitto, &env, want_ws)?,
    ];
    let ca = certs.join("ca.pem");

    let mut results = Vec::new();
    let mut failures = Vec::new();
    for s in &selected {
        results.extend(run_scenario(
            &env,
            s,
            &mut sides,
            o.rounds,
            &ca,
            &mut failures,
        ));
    }
    let ws_missing = sides[1].ws_missing.clone();
    for side in sides {
        side.stop();
    }

    let table = report::table(&results);
    println!("\n{table}");
    if let Some(durability) = report::durability(&results) {
        println!("{durability}");
    }
    let meta = report::Meta::collect(o, pin, ws_missing);
    report::write(&out, &meta, &table, &results)?;
    println!("wrote {}", out.display());
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed; their figures are left out:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// Runs `rounds` rounds of one scenario against both brokers, alternating who goes first so drift
/// over time favours neither, and returns its rows. Failed runs are added to `failures` and left
/// out of the medians; a broker that died is restarted for the next run.
fn run_scenario(
    env: &Env,
    s: &Scenario,
    sides: &mut [Side; 2],
    rounds: usize,
    ca: &Path,
    failures: &mut Vec<String>,
) -> Vec<report::RowResult> {
    // Per side: the fields of every successful run.
    let mut runs: [Vec<HashMap<String, f64>>; 2] = [Vec::new(), Vec::new()];
    let mut not_applicable = [false, false];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            if s.storage[i].is_none() {
                continue;
            }
            settle(sides);
            let side = &mut sides[i];
            match measure(env, s, side, ca) {
                Ok(Some(fields)) => runs[i].push(fields),
                Ok(None) => not_applicable[i] = true,
                Err(e) => {
                    let line = format!("{} {} round {}: {e:#}", side.name(), s.key, round + 1);
                    eprintln!("FAILED {line}");
                    failures.push(line);
                    if let Err(e) = side.revive(env) {
                        failures.push(format!("{}: restarting failed: {e:#}", side.name()));
                    }
                }
            }
        }
    }
    let lost = |i: usize| {
        let mut shares: Vec<f64> = runs[i]
            .iter()
            .filter_map(|f| Some(f.get("lost")? / f.get("expected")?.max(1.0)))
            .collect();
        median(&mut shares)
    };
    s.rows
        .iter()
        .map(|row| {
            let figure = |i: usize| {
                if s.storage[i].is_none() {
                    return Figure::NotMeasured;
                }
                if not_applicable[i] {
                    return Figure::NotApplicable;
                }
                let mut values: Vec<f64> = runs[i]
                    .iter()
                    .filter_map(|f| f.get(row.field).copied())
                    .collect();
                median(&mut values).map_or(Figure::Failed, Figure::Value)
            };
            report::RowResult {
                scenario: s.key,
                name: row.name.clone(),
                chart: row.chart,
                ours: figure(0),
                mosquitto: figure(1),
                ours_lost: lost(0),
                mosquitto_lost: lost(1),
            }
        })
        .collect()
}

/// Waits until every broker process is idle: a broker may still be working off the previous
/// run (mosquitto spends about a second of CPU after a fan-in, on the core the next broker is
/// pinned to), which would slow the next run down. Idle means less than one clock tick of CPU
/// time in `SETTLE_WINDOW`; gives up after `SETTLE_MAX`.
fn settle(sides: &[Side; 2]) {
    let pids: Vec<u32> = sides
        .iter()
        .flat_map(|side| [side.main.as_ref(), side.ws.as_ref()])
        .flatten()
        .map(|b| b.pid())
        .collect();
    let cpu = || -> u64 { pids.iter().filter_map(|&pid| cpu_ticks(pid)).sum() };
    let start = std::time::Instant::now();
    let mut before = cpu();
    while start.elapsed() < SETTLE_MAX {
        std::thread::sleep(SETTLE_WINDOW);
        let now = cpu();
        if now == before {
            return;
        }
        before = now;
    }
    eprintln!("brokers still busy after {SETTLE_MAX:?}; running anyway");
}

const SETTLE_WINDOW: Duration = Duration::from_millis(300);
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// User plus system CPU time of a process, in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Runs loadgen for one scenario against one broker, restarted first with the scenario's
/// storage when it runs with another or the scenario is `fresh`, and returns the numeric fields
/// of its result line; `None` when the broker lacks the listener.
fn measure(
    env: &Env,
    s: &Scenario,
    side: &mut Side,
    ca: &Path,
) -> anyhow::Result<Option<HashMap<String, f64>>> {
    let storage = s.storage[side.index()].context("a side the scenario does not measure")?;
    if s.fresh || side.storage != storage {
        side.restart(env, storage)?;
    }
    let Some((pid, port)) = side.serving(s.listener)? else {
        return Ok(None);
    };
    let args = s
        .args
        .replace("{ca}", &ca.display().to_string())
        .replace("{pid}", &pid.to_string());
    let timeout = args
        .split_whitespace()
        .skip_while(|a| *a != "--timeout")
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(60);
    let mut cmd = env.launch.command(&env.loadgen, env.loadgen_cpus);
    cmd.args(args.split_whitespace())
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_BACKTRACE", "0");
    // loadgen stops itself at its deadline; this is the backstop.
    let (ok, stdout, stderr) = run_bounded(cmd, Duration::from_secs(timeout + 30))?;
    let mut line = stdout.lines().last().unwrap_or_default().to_owned();
    let store = (side.kind == Kind::Ours).then(|| store_size(&env.launch, storage));
    if let Some(Ok(Some(bytes))) = &store {
        line += &format!(" store_kib={}", bytes / 1024);
    }
    println!("  {:<9} {:<16} {line}", side.name(), s.key);
    if !ok {
        bail!("{line} {}", stderr.trim());
    }
    // Measured with the store on when it was meant to be off, or the reverse: not a figure.
    if let Some(Err(e)) = store {
        return Err(e);
    }
    let fields = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()?)))
        .collect();
    // The broker must survive the run: a crash after the last message would otherwise pass.
    side.serving(s.listener)?;
    Ok(Some(fields))
}

/// The size of our broker's data directory, checked against `storage`: `Some` with the store on,
/// `None` with it off; an error when the directory is missing or empty with the store on, or
/// exists with it off.
fn store_size(launch: &Launch, storage: Storage) -> anyhow::Result<Option<u64>> {
    let data = broker::ours_data(launch);
    let files: Vec<std::fs::Metadata> = match std::fs::read_dir(&data) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    match (storage, files.is_empty()) {
        (Storage::Disk, false) => Ok(Some(files.iter().map(|m| m.len()).sum())),
        (Storage::Disk, true) => bail!(
            "ours was to run with its store on, but {} holds no file",
            data.display()
        ),
        (Storage::Memory, _) if data.exists() => bail!(
            "ours was to run with its store off (mqtt.storage.path: null), but {} exists",
            data.display()
        ),
        (Storage::Memory, _) => Ok(None),
    }
}

/// Runs `cmd` to completion or kills it after `limit`; returns success, stdout and stderr.
fn run_bounded(mut cmd: Command, limit: Duration) -> anyhow::Result<(bool, String, String)> {
    let dir = std::env::temp_dir();
    let tag = format!("xtask-bench-{}", std::process::id());
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .context("starting loadgen")?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let mut stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    if status.is_none() {
        stderr += &format!("killed after {} s", limit.as_secs());
    }
    Ok((status.is_some_and(|s| s.success()), stdout, stderr))
}

/// The open-files limit (soft, hard) to give brokers and loadgen through `prlimit` so each can
/// hold `wanted` descriptors; `None` when the current soft limit (from `/proc/self/limits`, which
/// children inherit) already allows it. Raising the hard limit takes CAP_SYS_RESOURCE: without
/// it, asking for more than the hard limit fails here, before any broker starts.
fn nofile_limit(wanted: u64) -> anyhow::Result<Option<(u64, u64)>> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no `Max open files` in /proc/self/limits")?;
    let mut numbers = line
        .split_whitespace()
        .skip(3)
        .map(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    let (soft, hard) = (
        numbers.next().unwrap_or(u64::MAX),
        numbers.next().unwrap_or(u64::MAX),
    );
    if wanted <= soft {
        return Ok(None);
    }
    if wanted <= hard {
        return Ok(Some((wanted, hard)));
    }
    let allowed = Command::new("prlimit")
        .arg(format!("--nofile={wanted}:{wanted}"))
        .arg("true")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        bail!(
            "the idle scenario needs {wanted} open files per process, above the hard limit \
             {hard}, and this process may not raise it (CAP_SYS_RESOURCE); run as root on a \
             machine that allows it, or lower --idle-clients"
        );
    }
    Ok(Some((wanted, wanted)))
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied()
}

/// `1234567` as `1,234,567`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> anyhow::Result<Options> {
        Options::parse(args.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn defaults_to_three_rounds_of_everything_on_one_core() {
        let o = parse("").unwrap();
        assert_eq!(
            (o.rounds, o.quick, o.cores, o.idle_clients()),
            (3, false, 1, 10_000)
        );
        assert_eq!(o.only, None);
        assert_eq!(scenarios(&o).len(), KEYS.len());
    }

    #[test]
    fn quick_means_one_round_unless_rounds_is_given() {
        assert_eq!(parse("--quick").unwrap().rounds, 1);
        assert_eq!(parse("--quick --rounds 2").unwrap().rounds, 2);
        assert_eq!(parse("--rounds 5").unwrap().rounds, 5);
    }

    #[test]
    fn only_takes_known_names() {
        let o = parse("--only fanin-qos2,idle --cores 2").unwrap();
        assert_eq!(
            o.only,
            Some(vec!["fanin-qos2".to_owned(), "idle".to_owned()])
        );
        assert_eq!(o.cores, 2);
        assert!(parse("--only fanin-qos3").is_err());
        assert!(parse("--cores 4").is_err());
        assert!(parse("--rounds").is_err());
    }

    #[test]
    fn scenario_keys_match_the_list() {
        let o = parse("--quick").unwrap();
        let keys: Vec<&str> = scenarios(&o).iter().map(|s| s.key).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn cpu_time_of_a_running_process_is_read() {
        let before = cpu_ticks(std::process::id()).expect("own /proc stat");
        // Spin for more than a clock tick (10 ms at the usual 100 Hz).
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(start.elapsed());
        }
        let after = cpu_ticks(std::process::id()).expect("own /proc stat");
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_ticks(u32::MAX), None);
    }

    #[test]
    fn idle_rows_name_the_connection_count() {
        let o = parse("--idle-clients 100000").unwrap();
        let idle = scenarios(&o).into_iter().find(|s| s.key == "idle").unwrap();
        assert_eq!(idle.rows[0].name, "100,000 idle connections: connects/s");
        assert!(idle.args.contains("--clients 100000"));
    }

    #[test]
    fn persist_scenarios_use_a_persistent_subscriber_and_their_own_storage() {
        let o = parse("--only persist-qos1,persist-qos1-mem").unwrap();
        let all = scenarios(&o);
        let find = |key| all.iter().find(|s| s.key == key).unwrap();
        let (on, off) = (find("persist-qos1"), find("persist-qos1-mem"));
        for s in [on, off] {
            assert!(s.args.contains("--qos 1") && s.args.contains("--persistent"));
            assert!(s.fresh, "each run starts from an empty data directory");
        }
        assert_eq!(on.storage, [Some(Storage::Disk), Some(Storage::Disk)]);
        assert_eq!(off.storage, [Some(Storage::Memory), None]);
        assert_eq!(find("fanin-qos1").storage, STANDARD);
        assert!(!find("fanin-qos1").args.contains("--persistent"));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(427_343.0), "427,343");
        assert_eq!(thousands(73.0), "73");
        assert_eq!(thousands(1_690_202.4), "1,690,202");
    }
}
