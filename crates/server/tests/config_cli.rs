//! The binary's configuration handling, end to end: `server check-config` and start-up with a
//! configuration file, environment overrides and command-line overrides.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh root directory under the system temp dir, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir =
            std::env::temp_dir().join(format!("server-config-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Root(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with only `HOME` (the root) and `env` in its environment.
fn server(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.env_clear().env("HOME", root).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The effective value line for `key` in check-config's output.
fn line_for<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("  {key}: ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{out}"))
}

const CONFIG: &str = "\
mqtt:
  network:
    port: 1884
    securePort: 8883
    mtls:
      user: null
      required: false
  webSocket: true
  requireAuthentication: true
  logging:
    level: info
http:
  port: 9926
";

#[test]
fn check_config_prints_effective_values_from_file_environment_and_command_line() {
    let root = Root::new("effective");
    root.write("harperdb-config.yaml", CONFIG);
    // CONFIG turns mTLS on with no tls section: the CA client certificates chain to must be
    // named (check-config only checks that the file is readable).
    let ca = root.write("clients-ca.pem", "a CA bundle\n");
    let ca = ca.to_str().expect("utf-8 temp dir");
    let root_arg = root.0.to_str().expect("utf-8 temp dir");
    let out = server(
        &root.0,
        &[
            "check-config",
            "--root",
            root_arg,
            "--MQTT_NETWORK_SECUREPORT",
            "8885",
        ],
        &[
            ("MQTT_NETWORK_SECUREPORT", "8884"),
            ("MQTT_REQUIREAUTHENTICATION", "false"),
            ("mqtt_limits_maxinflight", "7"),
            ("MQTT_NETWORK_MTLS_CERTIFICATEAUTHORITY", ca),
        ],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "exit {:?}\n{text}\n{}",
        out.status,
        stderr(&out)
    );
    assert!(
        text.contains(&format!(
            "config file: {}",
            root.0.join("harperdb-config.yaml").display()
        )),
        "{text}"
    );
    assert_eq!(
        line_for(&text, "mqtt.network.port"),
        "  mqtt.network.port: 1884"
    );
    assert_eq!(
        line_for(&text, "mqtt.network.securePort"),
        "  mqtt.network.securePort: 8885  # command line --MQTT_NETWORK_SECUREPORT"
    );
    assert_eq!(
        line_for(&text, "mqtt.requireAuthentication"),
        "  mqtt.requireAuthentication: false  # environment variable MQTT_REQUIREAUTHENTICATION"
    );
    assert!(
        line_for(&text, "mqtt.limits.maxInflight").starts_with("  mqtt.limits.maxInflight: 7  #"),
        "{text}"
    );
    assert_eq!(
        line_for(&text, "mqtt.network.mtls.user"),
        "  mqtt.network.mtls.user: null"
    );
    assert_eq!(
        line_for(&text, "mqtt.logging.level"),
        "  mqtt.logging.level: \"info\""
    );
    assert!(
        text.contains("MQTT: TCP: 1884, TLS: 8885, WS: 9926"),
        "{text}"
    );
}

#[test]
fn check_config_fails_on_a_bad_config_listing_every_error() {
    let root = Root::new("bad");
    root.write(
        "harperdb-config.yaml",
        "mqtt:\n  network:\n    port: 70000\n    mtls:\n      certificateVerification:\n        failureMode: maybe\n  \
         requireAuthentication: perhaps\n  webSokcet: true\n",
    );
    let out = server(
        &root.0,
        &["check-config", "--root", root.0.to_str().expect("utf-8")],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error: mqtt.network.port = 70000: expected a port from 1 to 65535"),
        "key path, value and what is allowed:\n{text}"
    );
    assert!(
        text.contains(
            "error: mqtt.network.mtls.certificateVerification.failureMode = \"maybe\": expected one of \
             \"fail-open\", \"fail-closed\""
        ),
        "{text}"
    );
    assert!(
        text.contains("error: mqtt.requireAuthentication = \"perhaps\": expected true or false"),
        "{text}"
    );
    assert!(
        text.contains(
            "warning: mqtt.webSokcet: unknown key, ignored; did you mean mqtt.webSocket?"
        ),
        "{text}"
    );
    // mTLS with no tls section and no CA of its own: the CA would be the generated one.
    assert!(
        text.contains("error: mqtt.network.mtls.certificateAuthority: not set"),
        "{text}"
    );
    assert!(text.contains("4 error(s), 1 warning(s)"), "{text}");
    assert!(
        stderr(&out).contains("the configuration has 4 error(s)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_config_names_the_environment_variable_behind_a_bad_value() {
    let root = Root::new("bad-env");
    let out = server(
        &root.0,
        &["check-config", "--root", root.0.to_str().expect("utf-8")],
        &[("MQTT_NETWORK_PORT", "-5")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "error: mqtt.network.port = \"-5\" (from environment variable MQTT_NETWORK_PORT)"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_config_reports_named_certificate_files_that_do_not_exist() {
    let root = Root::new("files");
    let config = root.write(
        "custom.yaml",
        "tls:\n  certificate: ~/keys/cert.pem\n  privateKey: ~/keys/key.pem\n  certificateAuthority: ~/keys/ca.pem\n",
    );
    let out = server(
        &root.0,
        &[
            "check-config",
            "--config",
            config.to_str().expect("utf-8"),
            "--root",
            "~",
        ],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for key in [
        "tls.certificate",
        "tls.privateKey",
        "tls.certificateAuthority",
    ] {
        assert!(text.contains(&format!("error: {key} = ")), "{key}:\n{text}");
    }
    assert!(
        text.contains(&format!("{}", root.0.join("keys/cert.pem").display())),
        "{text}"
    );
    assert!(
        text.contains("does not exist; expected a readable PEM file"),
        "{text}"
    );
}

#[test]
fn check_config_refuses_mtls_whose_ca_would_be_the_generated_one() {
    // mTLS on, no tls section: at first start the broker would write its own CA to
    // <root>/keys/ca.pem, keep no key of it, and refuse every client certificate as unknown.
    let root = Root::new("mtls-generated-ca");
    root.write(
        "harperdb-config.yaml",
        "mqtt:\n  network:\n    mtls: true\n",
    );
    let root_arg = root.0.to_str().expect("utf-8");
    let out = server(&root.0, &["check-config", "--root", root_arg], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.contains("error: mqtt.network.mtls.certificateAuthority"))
        .unwrap_or_else(|| panic!("no error about the mTLS CA:\n{text}"));
    for key in [
        "mqtt.network.mtls.certificateAuthority",
        "tls.certificateAuthority",
    ] {
        assert!(line.contains(key), "{key}: {line}");
    }
    assert!(!text.contains("no problems"), "{text}");
    assert!(
        !root.0.join("keys").exists(),
        "check-config creates no keys"
    );

    // Start-up stops on it too, before creating any CA.
    let out = server(&root.0, &["--root", root_arg], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mqtt.network.mtls.certificateAuthority"),
        "{}",
        stderr(&out)
    );
    assert!(!root.0.join("keys/ca.pem").exists(), "no CA was generated");

    // Naming the CA (here under mtls) is what it takes.
    let ca = root.write("clients-ca.pem", "a CA bundle\n");
    let out = server(
        &root.0,
        &["check-config", "--root", root_arg],
        &[(
            "MQTT_NETWORK_MTLS_CERTIFICATEAUTHORITY",
            ca.to_str().expect("utf-8"),
        )],
    );
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn check_config_redacts_inline_keys() {
    let root = Root::new("redact");
    let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
    let out = server(
        &root.0,
        &["check-config", "--root", root.0.to_str().expect("utf-8")],
        &[
            ("TLS_CERTIFICATE", "/nonexistent/cert.pem"),
            ("TLS_PRIVATEKEY", secret),
        ],
    );
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("tls.privateKey: \"<redacted PEM>\""),
        "{text}"
    );
    assert!(!text.contains("TOPSECRETKEYMATERIAL"), "{text}");
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let root = Root::new("missing");
    let out = server(
        &root.0,
        &[
            "check-config",
            "--root",
            root.0.to_str().expect("utf-8"),
            "--config",
            "/nonexistent.yaml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the configuration file /nonexistent.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_a_file_the_defaults_apply_under_rootpath() {
    let root = Root::new("rootpath");
    let out = server(
        &root.0,
        &["check-config"],
        &[("ROOTPATH", root.0.to_str().expect("utf-8"))],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(not found: built-in defaults)"), "{text}");
    assert!(
        text.contains("MQTT: TCP: 1883, TLS: 8883, WS: 9926"),
        "{text}"
    );
    assert!(
        line_for(&text, "mqtt.storage.path")
            .contains(&root.0.join("mqtt-data").display().to_string())
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let root = Root::new("usage");
    let out = server(&root.0, &["--prot", "1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown option `--prot`"));
}

#[test]
fn start_up_stops_on_a_bad_config_with_every_message() {
    let root = Root::new("run-bad");
    root.write(
        "harperdb-config.yaml",
        "mqtt:\n  network:\n    port: 8883\n  requireAuthentication: sometimes\n",
    );
    let out = server(&root.0, &["--root", root.0.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: mqtt.network.securePort = 8883: port 8883 is also used by mqtt.network.port"
        ),
        "{err}"
    );
    assert!(err.contains("error: mqtt.requireAuthentication"), "{err}");
    assert!(
        !stdout(&out).contains("MQTT:"),
        "no banner for a config that cannot run"
    );
}

/// Starts the broker binary on a free loopback port (TLS and WebSocket off) with `env` added;
/// returns the process, its stdout lines after the banner, and the address it listens on.
fn start_broker(
    root: &Root,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    String,
) {
    let mut all = vec![
        ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
        ("MQTT_NETWORK_SECUREPORT", "0"),
        ("MQTT_WEBSOCKET", "false"),
    ];
    all.extend_from_slice(env);
    let started = common::start(&root.0, &all, std::process::Stdio::piped());
    let addr = started.only_tcp_address();
    (started.child, started.lines, addr)
}

#[test]
fn start_up_serves_mqtt_on_the_configured_port_and_stops_on_sigterm() {
    use std::io::{Read, Write};
    let root = Root::new("run");
    root.write("harperdb-config.yaml", CONFIG);
    // The file says 1884 on every interface; the environment narrows it to a free loopback
    // port. First run: the users file is created with this super user.
    let (mut child, mut lines, addr) = start_broker(
        &root,
        &[
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
    );
    let second = lines.next().expect("a root line").expect("utf-8");
    assert!(
        second.contains(&format!("root: {}", root.0.display())),
        "{second}"
    );
    assert!(second.contains("harperdb-config.yaml"), "{second}");

    let created = lines.next().expect("a users file line").expect("utf-8");
    assert!(
        created.contains("super user `admin` from HDB_ADMIN_USERNAME"),
        "{created}"
    );
    let users = std::fs::read_to_string(root.0.join("users.yaml")).expect("users file created");
    assert!(
        users.contains("$argon2id$") && !users.contains("secret"),
        "{users}"
    );

    // A v5 CONNECT (client id "cli", user admin, password secret) gets a successful CONNACK.
    let mut stream = std::net::TcpStream::connect(&addr).expect("the broker listens");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut connect = vec![
        0x10, 31, 0, 4, b'M', b'Q', b'T', b'T', 5, 0xC2, 0, 60, 0, 0, 3,
    ];
    connect.extend_from_slice(b"cli\x00\x05admin\x00\x06secret");
    stream.write_all(&connect).expect("send CONNECT");
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).expect("CONNACK");
    assert_eq!(&head[..1], &[0x20], "CONNACK");
    let mut rest = vec![0u8; usize::from(head[1]) - 2];
    stream.read_exact(&mut rest).expect("CONNACK properties");
    assert_eq!(head[3], 0x00, "CONNACK success");

    // SIGTERM: the client is told the server is shutting down (0x8B), and the process exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut disconnect = [0u8; 3];
    stream.read_exact(&mut disconnect).expect("DISCONNECT");
    assert_eq!(disconnect, [0xE0, 0x01, 0x8B]);
    let status = child.wait().expect("the broker exits");
    assert_eq!(status.code(), Some(0));

    let log = std::fs::read_to_string(root.0.join("log/hdb.log")).expect("the main log exists");
    assert!(
        log.contains(&format!("[mqtt] [notify]: MQTT: TCP: {addr}")),
        "{log}"
    );
    assert!(log.contains("client connected"), "{log}");
}

#[test]
fn user_commands_edit_the_users_file() {
    use std::io::Write;
    let root = Root::new("users");
    let root_arg = root.0.to_str().expect("utf-8");
    root.write(
        "users.yaml",
        "roles:\n  super: { superUser: true }\n  sensors: { permissions: [ { topic: 'd/%u/#', read: true } ] }\n",
    );
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("HOME", &root.0)
            .args(args)
            .args(["--root", root_arg])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        if let Some(text) = stdin {
            // A command that fails before reading its input (an unknown role) may have exited
            // already: its status and messages are what the test checks.
            let written = child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes());
            if let Err(e) = written
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                panic!("write: {e}");
            }
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("output")
    };
    let out = run(
        &[
            "user",
            "add",
            "bob",
            "--role",
            "sensors",
            "--password-stdin",
        ],
        Some("s3cret\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let file = std::fs::read_to_string(root.0.join("users.yaml")).expect("users file");
    assert!(
        file.contains("bob") && file.contains("$argon2id$") && !file.contains("s3cret"),
        "{file}"
    );
    let out = run(&["user", "list"], None);
    assert!(stdout(&out).contains("bob: sensors"), "{}", stdout(&out));
    let out = run(
        &["user", "add", "eve", "--role", "nosuch", "--password-stdin"],
        Some("x\n"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown role `nosuch`"),
        "{}",
        stderr(&out)
    );
    let out = run(&["user", "del", "bob"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&run(&["user", "list"], None)).contains("bob"));
}

#[test]
fn first_run_without_admin_variables_prints_a_generated_password_that_works() {
    use std::io::{Read, Write};
    let root = Root::new("firstrun");
    let (mut child, mut lines, addr) = start_broker(&root, &[]);
    let mut next = || lines.next().expect("a line").expect("utf-8");
    let _root_line = next();
    let created = next();
    let password = created
        .split("password: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no password in {created:?}"))
        .to_owned();
    assert!(created.contains("super user `admin`"), "{created}");
    assert!(password.len() >= 20, "a strong password: {password}");
    let users = std::fs::read_to_string(root.0.join("users.yaml")).expect("users file");
    assert!(!users.contains(&password), "only the hash is stored");

    // The printed password logs in; a wrong one does not.
    let connack = |password: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).expect("the broker listens");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut packet = vec![
            0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'f',
        ];
        packet.extend_from_slice(&[0, 5]);
        packet.extend_from_slice(b"admin");
        packet.extend_from_slice(&(password.len() as u16).to_be_bytes());
        packet.extend_from_slice(password.as_bytes());
        packet[1] = (packet.len() - 2) as u8;
        stream.write_all(&packet).expect("send CONNECT");
        let mut ack = [0u8; 4];
        stream.read_exact(&mut ack).expect("CONNACK");
        ack[3]
    };
    assert_eq!(connack(&password), 0x00);
    assert_eq!(connack("wrong"), 0x04, "v3.1.1 bad user name or password");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}

/// Each client connection is a file descriptor, and the usual soft limit of 1024 would cap the
/// broker at about a thousand clients: it raises its soft limit to the hard one at start-up, so
/// a broker started under a soft limit of 256 still serves 400 clients at once.
#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
    use std::io::{Read, Write};
    let hard = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("sh runs");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    if hard != "unlimited" && hard.parse::<u64>().expect("a number") < 1000 {
        let why = format!("the hard open-files limit ({hard}) leaves no room above 256");
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let root = Root::new("open-files");
    root.write(
        "harperdb-config.yaml",
        "mqtt:\n  requireAuthentication: false\n",
    );
    let started = common::start_with_open_files(
        &root.0,
        &[
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("MQTT_NETWORK_SECUREPORT", "0"),
            ("MQTT_WEBSOCKET", "false"),
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
        std::process::Stdio::null(),
        256,
    );
    let addr = started.only_tcp_address();
    let mut child = started.child;
    let lines = started.lines;
    std::thread::spawn(move || for _ in lines {});
    let mut clients = Vec::new();
    for i in 0..400 {
        let mut stream = std::net::TcpStream::connect(&addr)
            .unwrap_or_else(|e| panic!("client {i} cannot connect: {e}"));
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        // MQTT 3.1.1 CONNECT, clean session, keep alive 60 s, client id `ofNNN`.
        let id = format!("of{i:03}");
        let mut connect = vec![
            0x10,
            12 + id.len() as u8,
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            4,
            2,
            0,
            60,
        ];
        connect.extend_from_slice(&[0, id.len() as u8]);
        connect.extend_from_slice(id.as_bytes());
        stream.write_all(&connect).expect("send CONNECT");
        let mut ack = [0u8; 4];
        stream
            .read_exact(&mut ack)
            .unwrap_or_else(|e| panic!("client {i}: no CONNACK: {e}"));
        assert_eq!(ack, [0x20, 2, 0, 0], "client {i}");
        clients.push(stream);
    }
    let _ = child.kill();
    let _ = child.wait();
}
