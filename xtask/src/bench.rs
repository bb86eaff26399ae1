//! `cargo xtask bench`: our broker and mosquitto side by side on loopback, the same scenarios
//! against both in alternating rounds, with the `loadgen` of the `bench` crate; prints a table
//! of medians and the ratio ours / mosquitto.
//!
//! Each broker is pinned to CPU 0 and the load generator to CPU 1 when `taskset` exists.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// One measured scenario: loadgen arguments, and what to read from its result line.
struct Scenario {
    name: &'static str,
    args: &'static str,
    /// The result field: `rate` (higher is better) or `p99_us` (lower is better).
    field: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "fan-in 4→1, QoS 0, msg/s",
        args: "fanin --qos 0 --clients 4 --count 250000 --timeout 5",
        field: "rate",
    },
    Scenario {
        name: "fan-in 4→1, QoS 1, msg/s",
        args: "fanin --qos 1 --clients 4 --count 100000",
        field: "rate",
    },
    Scenario {
        name: "fan-out 1→10, QoS 0, deliveries/s",
        args: "fanout --qos 0 --clients 10 --count 100000 --timeout 5",
        field: "rate",
    },
    Scenario {
        name: "fan-out 1→10, QoS 1, deliveries/s",
        args: "fanout --qos 1 --clients 10 --count 50000",
        field: "rate",
    },
    Scenario {
        name: "2k msg/s QoS 1, p50 latency µs",
        args: "latency --qos 1 --rate 2000 --count 6000",
        field: "p50_us",
    },
    Scenario {
        name: "2k msg/s QoS 1, p99 latency µs",
        args: "latency --qos 1 --rate 2000 --count 6000",
        field: "p99_us",
    },
];

const OURS_PORT: u16 = 18_830;
const MOSQUITTO_PORT: u16 = 18_840;

/// Runs the benchmark; `rounds` per scenario and broker.
pub fn run(rounds: usize) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "server", "-p", "bench"])
        .status()
        .context("building the release binaries")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("release");
    let dir = target.join("bench-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let pin = has("taskset");
    let mut ours = Broker::start_ours(&target.join("server"), &dir, pin)?;
    let mut mosquitto = Broker::start_mosquitto(&dir, pin)?;
    let loadgen = target.join("loadgen");
    println!("| scenario | ours | mosquitto | ours / mosquitto |\n|---|---:|---:|---:|");
    for s in SCENARIOS {
        let mut ours_values = Vec::new();
        let mut their_values = Vec::new();
        let (mut ours_lost, mut their_lost) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            // A failed run (loss at QoS 1, a timeout) is reported, not averaged in.
            match measure(&loadgen, OURS_PORT, s, pin) {
                Ok((v, l)) => {
                    ours_values.push(v);
                    ours_lost.push(l);
                }
                Err(e) => eprintln!("ours: {e:#}"),
            }
            match measure(&loadgen, MOSQUITTO_PORT, s, pin) {
                Ok((v, l)) => {
                    their_values.push(v);
                    their_lost.push(l);
                }
                Err(e) => eprintln!("mosquitto: {e:#}"),
            }
        }
        let lost = |l: &mut Vec<f64>| match median(l) {
            Some(l) if l > 0.0 => format!(" ({:.0} % lost)", l * 100.0),
            _ => String::new(),
        };
        let (ours_loss, their_loss) = (lost(&mut ours_lost), lost(&mut their_lost));
        let cell =
            |v: Option<f64>, loss: &str| v.map_or("failed".to_owned(), |v| format!("{v:.0}{loss}"));
        let (a, b) = (median(&mut ours_values), median(&mut their_values));
        let ratio = match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {} | {} | {ratio} |",
            s.name,
            cell(a, &ours_loss),
            cell(b, &their_loss)
        );
    }
    ours.stop();
    mosquitto.stop();
    Ok(())
}

/// The scenario's figure and the share of messages lost (QoS 0 may lose; QoS 1 loss fails).
fn measure(loadgen: &Path, port: u16, s: &Scenario, pin: bool) -> anyhow::Result<(f64, f64)> {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(loadgen);
        c
    } else {
        Command::new(loadgen)
    };
    let out = cmd
        .args(s.args.split_whitespace())
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_BACKTRACE", "0")
        .output()
        .context("running loadgen")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} on port {port} failed: {text}{}",
            s.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| -> anyhow::Result<f64> {
        let value = text
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .with_context(|| format!("no {name} in {text}"))?;
        Ok(value.parse()?)
    };
    let lost = field("lost")? / field("expected")?.max(1.0);
    Ok((field(s.field)?, lost))
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Broker(Child);

impl Broker {
    fn spawn(
        program: &Path,
        args: &[&str],
        pin: bool,
        port: u16,
        env: &[(&str, &Path)],
    ) -> anyhow::Result<Self> {
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let broker = Broker(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr}", program.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    fn start_ours(server: &Path, dir: &Path, pin: bool) -> anyhow::Result<Self> {
        let root = dir.join("ours");
        std::fs::create_dir_all(&root)?;
        std::fs::write(
            root.join("harperdb-config.yaml"),
            format!(
                "mqtt:\n  network:\n    port: \"127.0.0.1:{OURS_PORT}\"\n    securePort: null\n  webSocket: false\n  \
                 requireAuthentication: false\n  limits:\n    maxQueuedMessages: 100000\n    maxInflight: 1024\n    \
                 receiveMaximum: 1024\nlogging:\n  level: error\n"
            ),
        )?;
        // Anonymous clients may do everything here: the benchmark measures routing, not rules.
        std::fs::write(
            root.join("users.yaml"),
            "roles:\n  anonymous:\n    permissions:\n      - { topic: \"#\", read: true, insert: true }\n",
        )?;
        let root_arg = root.to_str().context("temp dir is not UTF-8")?;
        Self::spawn(
            server,
            &["--root", root_arg],
            pin,
            OURS_PORT,
            &[("HOME", &root)],
        )
    }

    fn start_mosquitto(dir: &Path, pin: bool) -> anyhow::Result<Self> {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {MOSQUITTO_PORT} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n\
                 max_queued_messages 0\nmax_inflight_messages 1024\npersistence false\n"
            ),
        )?;
        let conf_arg = conf.to_str().context("temp dir is not UTF-8")?;
        Self::spawn(
            Path::new("mosquitto"),
            &["-c", conf_arg],
            pin,
            MOSQUITTO_PORT,
            &[],
        )
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
