//! The binary's defences, end to end with its real configuration: handshake slots per address
//! against a flood of idle sockets, the handshake timeout apart from CONNECT's, `/health` and
//! `/metrics` (with its bearer token) on `http.port` with `mqtt.webSocket` off, and the log
//! file rotated past `logging.rotation.maxSize`.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Running;
use transport::rustls::pki_types::pem::PemObject;
use transport::rustls::pki_types::{CertificateDer, ServerName};
use transport::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How long a test waits for something it expects before failing.
const WAIT: Duration = Duration::from_secs(5);

/// A fresh root directory under the system temp dir, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir =
            std::env::temp_dir().join(format!("server-hardening-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Running {
    /// Starts the binary with TCP and TLS on loopback ports of its choosing, WebSocket off,
    /// anonymous clients allowed, and `env` on top.
    fn start(root: &Root, env: &[(&str, &str)]) -> Running {
        let mut all = vec![
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("MQTT_NETWORK_SECUREPORT", "127.0.0.1:0"),
            ("MQTT_WEBSOCKET", "false"),
            ("HTTP_PORT", "0"),
            ("MQTT_REQUIREAUTHENTICATION", "false"),
        ];
        all.extend_from_slice(env);
        Running(common::start(&root.0, &all, Stdio::null()))
    }

    fn addr(&self, kind: &str) -> SocketAddr {
        let port: u16 = self.0.port_of(kind).parse().expect("a port");
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

/// A v5 CONNECT with clean start, keep alive 60 s, no credentials.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let id = client_id.as_bytes();
    let id_len = u8::try_from(id.len()).expect("a short client id");
    let mut packet = vec![
        0x10,
        13 + id_len,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        5,
        0x02,
        0,
        60,
        0,
    ];
    packet.extend_from_slice(&[0, id_len]);
    packet.extend_from_slice(id);
    packet
}

/// Sends CONNECT on `stream` and reads the CONNACK's reason code.
fn connect_over(stream: &mut impl ReadWrite, client_id: &str) -> std::io::Result<u8> {
    stream.write_all(&connect_packet(client_id))?;
    stream.flush()?;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    assert_eq!(head[0], 0x20, "CONNACK");
    let mut rest = vec![0u8; usize::from(head[1])];
    stream.read_exact(&mut rest)?;
    Ok(rest[1])
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A client configuration trusting the CA the broker created at first start.
fn trusting(root: &Root) -> Arc<ClientConfig> {
    let ca = CertificateDer::from_pem_file(root.0.join("keys").join("ca.pem")).expect("ca.pem");
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("a CA certificate");
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` whose handshake is complete.
fn tls_to(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(WAIT))?;
    let name = ServerName::try_from("localhost").expect("a valid name");
    let mut connection = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(connection, tcp))
}

/// Raises this process's open-files soft limit to its hard limit: the flood needs over a
/// thousand sockets.
fn raise_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

/// Idle sockets from one address, past the whole default handshake cap (1024).
const FLOOD: usize = 1100;

#[test]
fn idle_sockets_from_one_address_leave_tls_clients_from_another_served() {
    raise_open_files();
    let root = Root::new("flood");
    // The handshake limits are the defaults: 1024 in all, 128 per address.
    let broker = Running::start(&root, &[]);
    let tls = broker.addr("TLS");
    let config = trusting(&root);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // 127.0.0.2 is loopback too: a different client address on one machine.
    let flood = runtime.block_on(async {
        let mut flood = Vec::with_capacity(FLOOD);
        for _ in 0..FLOOD {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket
                .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)))
                .expect("bound to 127.0.0.2");
            flood.push(socket.connect(tls).await.expect("connected"));
        }
        // The last is past every cap, so the broker closes it; by then it has taken (or
        // refused) every one before it.
        let last = flood.last_mut().expect("a flood");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(last, &mut byte))
            .await
            .expect("the last idle socket was not closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        flood
    });

    let started = Instant::now();
    let served = tls_to(tls, config).and_then(|mut tls| connect_over(&mut tls, "elsewhere"));
    let waited = started.elapsed();
    eprintln!(
        "with {FLOOD} idle sockets from 127.0.0.2, a TLS client from 127.0.0.1 had its CONNACK after {waited:?}: {served:?}"
    );
    assert_eq!(
        served.expect("a TLS client from another address is served"),
        0x00
    );
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    drop(flood);
}

#[test]
fn the_handshake_has_its_own_timeout_and_connect_keeps_the_rest_of_its_budget() {
    let root = Root::new("handshake-timeout");
    let broker = Running::start(&root, &[("MQTT_LIMITS_HANDSHAKETIMEOUT", "500ms")]);
    let tls = broker.addr("TLS");

    // A socket that never starts its TLS handshake is closed after 0.5 s, not after the 10 s
    // connect timeout.
    let mut silent = TcpStream::connect(tls).expect("connected");
    silent.set_read_timeout(Some(WAIT)).expect("a timeout");
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    let held = started.elapsed();
    assert!(matches!(read, Ok(0)), "not closed: {read:?}");
    assert!(
        held >= Duration::from_millis(400) && held < Duration::from_secs(3),
        "{held:?}"
    );

    // A client whose handshake is done has the rest of the connect timeout for its CONNECT,
    // even past the handshake timeout.
    let mut client = tls_to(tls, trusting(&root)).expect("a TLS handshake");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        connect_over(&mut client, "unhurried").expect("CONNACK"),
        0x00
    );
}

/// Polls `path` until a line contains `needle`; that line.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request over a raw TCP connection; the whole response.
fn http(addr: &str, path: &str, headers: &str) -> String {
    let mut tcp = TcpStream::connect(addr).expect("the HTTP port listens");
    tcp.set_read_timeout(Some(WAIT)).expect("a timeout");
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n"
    )
    .expect("sent");
    let mut response = String::new();
    tcp.read_to_string(&mut response).expect("a response");
    response
}

#[test]
fn health_and_metrics_stay_on_the_http_port_with_websocket_off() {
    const TOKEN: &str = "metrics-token-for-the-test-0123";
    let root = Root::new("status-port");
    let _broker = Running::start(
        &root,
        &[("HTTP_PORT", "127.0.0.1:0"), ("HTTP_METRICSTOKEN", TOKEN)],
    );
    let line = wait_for_line(
        &root.0.join("log").join("hdb.log"),
        "HTTP: /health and /metrics on ",
    );
    let addr = line
        .split("/metrics on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("an address")
        .to_owned();

    let health = http(&addr, "/health", "");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    let refused = http(&addr, "/metrics", "");
    assert!(
        refused.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{refused}"
    );
    let metrics = http(
        &addr,
        "/metrics",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    );
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("\nmqtt_clients_connected 0\n"),
        "{metrics}"
    );
    // MQTT over WebSocket is off: an upgrade gets a clear refusal.
    let upgrade = http(
        &addr,
        "/mqtt",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n",
    );
    assert!(
        upgrade.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{upgrade}"
    );
    assert!(upgrade.contains("MQTT over WebSocket is off"), "{upgrade}");
}

#[test]
fn the_log_file_is_rotated_past_max_size() {
    let root = Root::new("rotation");
    let broker = Running::start(
        &root,
        &[
            ("LOGGING_LEVEL", "info"),
            ("LOGGING_ROTATION_MAXSIZE", "1K"),
        ],
    );
    let tcp = broker.addr("TCP");
    // Each client writes a "client connected" and a "client disconnected" line.
    for i in 0..20 {
        let mut client = TcpStream::connect(tcp).expect("connected");
        client.set_read_timeout(Some(WAIT)).expect("a timeout");
        assert_eq!(
            connect_over(&mut client, &format!("rotating-{i:02}")).expect("CONNACK"),
            0x00
        );
    }
    let dir = root.0.join("log");
    let current = dir.join("hdb.log");
    let deadline = Instant::now() + WAIT;
    let rotated = loop {
        let rotated: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("the log directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p != &current)
            .collect();
        if rotated.len() >= 3 || Instant::now() > deadline {
            break rotated;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(rotated.len() >= 3, "{rotated:?}");
    for file in rotated.iter().chain([&current]) {
        let meta = std::fs::metadata(file).expect("exists");
        assert!(
            meta.len() <= 1024,
            "{} is {} bytes",
            file.display(),
            meta.len()
        );
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
        let name = file.file_name().expect("a name").to_string_lossy();
        assert!(name.starts_with("hdb") && name.ends_with(".log"), "{name}");
    }
    // The broker writes on into the fresh file.
    wait_for_line(&current, "rotating-19");
}

#[test]
fn check_config_shows_the_new_limits_and_never_the_metrics_token() {
    const TOKEN: &str = "never-printed-token-0123456789";
    let root = Root::new("check-config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("HOME", &root.0)
        .env("HTTP_METRICSTOKEN", TOKEN)
        .env("MQTT_WEBSOCKET", "false")
        .args(["check-config", "--root", root.0.to_str().expect("utf-8")])
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in [
        "  mqtt.limits.maxHandshakes: 1024",
        "  mqtt.limits.maxHandshakesPerAddress: 128",
        "  mqtt.limits.handshakeTimeout: 5000",
        "  logging.rotation.enabled: true",
        "  logging.rotation.maxSize: \"64M\"",
        "  logging.rotation.interval: null",
        "  mqtt.logging.rotation.compress: false",
        "  http.cors: false",
        "  http.corsAccessList: null",
        "  http.metricsToken: \"<redacted>\"  # environment variable HTTP_METRICSTOKEN",
        "HTTP: 9926 (/health and /metrics only: mqtt.webSocket is false)",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
    assert!(!text.contains(TOKEN), "{text}");
}
