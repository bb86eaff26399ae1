//! The broker processes of a benchmark run: ours and Debian's mosquitto, each configured by the
//! harness on loopback ports, optionally pinned to CPU 0 and given a raised open-files limit, with
//! its persistence on disk or in memory ([`Storage`]). Every start begins from an empty data
//! directory.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Our broker's listeners: plain MQTT, TLS, WebSocket (`http.port`).
pub const OURS: Ports = Ports {
    tcp: 18_830,
    tls: 18_831,
    ws: 18_832,
};
/// mosquitto's listeners. Its WebSocket listener is a second process (see [`mosquitto_ws`]).
pub const MOSQUITTO: Ports = Ports {
    tcp: 18_840,
    tls: 18_841,
    ws: 18_842,
};
/// The plain listener the WebSocket-only mosquitto needs to start at all: mosquitto 2.0.11 exits
/// with "Unable to start any listening sockets" when its only listener is a websockets one.
const MOSQUITTO_WS_PLAIN: u16 = 18_843;

/// Loopback ports of one broker's listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain MQTT.
    pub tcp: u16,
    /// MQTT over TLS.
    pub tls: u16,
    /// MQTT over WebSocket.
    pub ws: u16,
}

/// Where a broker keeps sessions and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Ours: the durable store in `<root>/mqtt-data` with `mqtt.storage.durability: batch` (the
    /// default), acknowledging only what is synced. mosquitto: `persistence true`, which writes a
    /// snapshot at `autosave_interval` (default 1800 s) and at shutdown only, so it writes nothing
    /// during a run and acknowledges what it has not stored.
    Disk,
    /// Ours: `mqtt.storage.path: null`. mosquitto: `persistence false`.
    Memory,
}

/// How broker processes are launched.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Where configurations and data go.
    pub dir: PathBuf,
    /// The generated test PKI (`ca.pem`, `server.pem`, `server.key`).
    pub certs: PathBuf,
    /// CPUs for `taskset -c`, or none to leave the process unpinned.
    pub cpus: Option<&'static str>,
    /// Open-files limit (soft, hard) to set with `prlimit`, when the current one is too low.
    pub nofile: Option<(u64, u64)>,
}

impl Launch {
    /// `program args…` wrapped in `prlimit` and `taskset` as configured; both exec the program,
    /// so the child's pid is the program's.
    pub fn command(&self, program: &Path, cpus: Option<&str>) -> Command {
        let mut argv: Vec<String> = Vec::new();
        if let Some((soft, hard)) = self.nofile {
            argv.extend(["prlimit".to_owned(), format!("--nofile={soft}:{hard}")]);
        }
        if let Some(cpus) = cpus {
            argv.extend(["taskset".to_owned(), "-c".to_owned(), cpus.to_owned()]);
        }
        argv.push(program.display().to_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// A running broker process, killed when dropped.
pub struct Broker {
    name: &'static str,
    child: Child,
}

impl Broker {
    fn spawn(
        name: &'static str,
        launch: &Launch,
        program: &Path,
        args: &[&str],
        env: &[(&str, &Path)],
        port: u16,
    ) -> anyhow::Result<Self> {
        let mut cmd = launch.command(program, launch.cpus);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(launch.dir.join(format!("{name}.log")))?;
        let child = cmd
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let mut broker = Self { name, child };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            broker.check_running()?;
            if Instant::now() > deadline {
                bail!("{name} did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// The process id, whose `/proc/<pid>/status` loadgen reads.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited, with its status and where its log is.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); see {}.log in the run directory",
                self.name,
                self.name
            ),
        }
    }

    /// SIGTERM, then waits for the process.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our broker's data directory (`mqtt.storage.path` defaults to `<root>/mqtt-data`).
pub fn ours_data(launch: &Launch) -> PathBuf {
    launch.dir.join("ours").join("mqtt-data")
}

/// Our broker with plain, TLS and WebSocket listeners on [`OURS`], anonymous access to every
/// topic, queue limits high enough to measure delivery rather than drops, and `storage`. Its root
/// directory, store included, is deleted first.
pub fn ours(server: &Path, launch: &Launch, storage: Storage) -> anyhow::Result<Broker> {
    let root = launch.dir.join("ours");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let storage = match storage {
        Storage::Disk => "  storage:\n    durability: batch\n",
        Storage::Memory => "  storage:\n    path: null\n",
    };
    let certs = &launch.certs;
    let path = |name: &str| certs.join(name).display().to_string();
    let Ports { tcp, tls, ws } = OURS;
    std::fs::write(
        root.join("harperdb-config.yaml"),
        format!(
            "mqtt:\n  network:\n    port: \"127.0.0.1:{tcp}\"\n    securePort: \"127.0.0.1:{tls}\"\n  \
             webSocket: true\n  requireAuthentication: false\n  limits:\n    maxQueuedMessages: 100000\n    \
             maxInflight: 1024\n    receiveMaximum: 1024\n{storage}\
             http:\n  port: \"127.0.0.1:{ws}\"\n\
             tls:\n  certificate: {}\n  privateKey: {}\n  certificateAuthority: {}\n\
             logging:\n  level: error\n",
            path("server.pem"),
            path("server.key"),
            path("ca.pem"),
        ),
    )?;
    // Anonymous clients may do everything here: the benchmark measures routing, not rules.
    std::fs::write(
        root.join("users.yaml"),
        "roles:\n  anonymous:\n    permissions:\n      - { topic: \"#\", read: true, insert: true }\n",
    )?;
    let root_arg = root.to_str().context("run directory is not UTF-8")?;
    Broker::spawn(
        "ours",
        launch,
        server,
        &["--root", root_arg],
        &[("HOME", &root)],
        tcp,
    )
}

/// Settings both mosquitto processes share: unlimited connections and queue, 1024 in flight,
/// anonymous access, errors only in the log. `user root` keeps a mosquitto started by root from
/// switching to the `mosquitto` user, who could not read the generated server key (mode 0600);
/// started by anyone else it has no effect.
const MOSQUITTO_COMMON: &str = "allow_anonymous true\nmax_connections -1\nmax_queued_messages 0\n\
     max_inflight_messages 1024\nlog_type error\nuser root\n";

/// mosquitto's persistence directory (`persistence_location`).
fn mosquitto_data(launch: &Launch) -> PathBuf {
    launch.dir.join("mosquitto-data")
}

/// mosquitto with plain and TLS listeners on [`MOSQUITTO`] and `storage`. With
/// [`Storage::Disk`] its persistence directory is emptied first; `autosave_interval` is written
/// out at its default, 1800 s, to show that a run never reaches a save: mosquitto 2.0 writes
/// `mosquitto.db` only then and at shutdown.
pub fn mosquitto(launch: &Launch, storage: Storage) -> anyhow::Result<Broker> {
    let Ports { tcp, tls, .. } = MOSQUITTO;
    let certs = &launch.certs;
    let persistence = match storage {
        Storage::Disk => {
            let data = mosquitto_data(launch);
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data)?;
            // The trailing slash matters: mosquitto appends the file name to the location.
            format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1800\n",
                data.display()
            )
        }
        Storage::Memory => "persistence false\n".to_owned(),
    };
    let conf = launch.dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{MOSQUITTO_COMMON}{persistence}listener {tcp} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            certs.join("ca.pem").display(),
            certs.join("server.pem").display(),
            certs.join("server.key").display(),
        ),
    )?;
    let conf_arg = conf.to_str().context("run directory is not UTF-8")?;
    Broker::spawn(
        "mosquitto",
        launch,
        Path::new("mosquitto"),
        &["-c", conf_arg],
        &[],
        tcp,
    )
}

/// mosquitto serving MQTT over WebSocket on [`MOSQUITTO`]`.ws`, in a process of its own:
/// mosquitto 2.0 services libwebsockets with an extra poll on every turn of its main loop, which
/// would slow its plain-TCP figures if the listeners shared a process.
pub fn mosquitto_ws(launch: &Launch) -> anyhow::Result<Broker> {
    let conf = launch.dir.join("mosquitto-ws.conf");
    std::fs::write(
        &conf,
        format!(
            "{MOSQUITTO_COMMON}persistence false\nlistener {MOSQUITTO_WS_PLAIN} 127.0.0.1\n\
             listener {} 127.0.0.1\nprotocol websockets\n",
            MOSQUITTO.ws
        ),
    )?;
    let conf_arg = conf.to_str().context("run directory is not UTF-8")?;
    Broker::spawn(
        "mosquitto-ws",
        launch,
        Path::new("mosquitto"),
        &["-c", conf_arg],
        &[],
        MOSQUITTO.ws,
    )
}
