//! `mqtt.network.mtls` read from the configuration file by the real binary: a client presenting a
//! certificate logs in over TLS, plaintext clients are refused under `required`, and start-up
//! says so. (The behaviour in depth is tested in-process in `tests/mtls.rs`.)

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Whether `name` is installed; a missing one skips the test, except under `CI=true`.
fn require_program(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required when CI=true (.ci/run installs it)"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

#[test]
fn certificates_log_in_over_tls_and_required_refuses_plaintext() {
    if !require_program("mosquitto_pub") {
        return;
    }
    let root = tempfile_dir();
    let pki = xtask::pki::generate(&xtask::pki::PkiOptions::default()).expect("test PKI");
    let keys = root.join("pki");
    pki.write_to(&keys).expect("writing the PKI");
    let config = format!(
        "\
tls:
  certificate: {keys}/server.pem
  privateKey: {keys}/server.key
  certificateAuthority: {keys}/ca.pem
mqtt:
  network:
    mtls:
      user: admin
      required: true
      certificateVerification: false
  webSocket: false
",
        keys = keys.display()
    );
    std::fs::write(root.join("harperdb-config.yaml"), config).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("HOME", &root)
        .args(["--root", root.to_str().expect("utf-8")])
        .env("MQTT_NETWORK_PORT", "127.0.0.1:0")
        .env("MQTT_NETWORK_SECUREPORT", "127.0.0.1:0")
        .env("HDB_ADMIN_USERNAME", "admin")
        .env("HDB_ADMIN_PASSWORD", "secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().expect("a banner").expect("utf-8");
    let port_of = |kind: &str| -> String {
        let at = banner
            .find(&format!("{kind}: "))
            .unwrap_or_else(|| panic!("no {kind} in {banner:?}"));
        let addr = banner[at + kind.len() + 2..]
            .split([',', ' '])
            .next()
            .expect("an address");
        addr.rsplit(':').next().expect("a port").to_owned()
    };
    let (tcp, tls) = (port_of("TCP"), port_of("TLS"));

    let publish = |port: &str, extra: &[&str]| {
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                port,
                "-t",
                "t",
                "-m",
                "x",
                "-q",
                "1",
            ])
            .args(extra)
            .output()
            .expect("mosquitto_pub runs")
    };
    let k = |name: &str| keys.join(name).to_str().expect("utf-8").to_owned();
    let with_cert = publish(
        &tls,
        &[
            "--cafile",
            &k("ca.pem"),
            "--cert",
            &k("alice.pem"),
            "--key",
            &k("alice.key"),
        ],
    );
    let plaintext = publish(&tcp, &["-u", "admin", "-P", "secret"]);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut log);
    }
    let _ = std::fs::remove_dir_all(&root);

    assert!(with_cert.status.success(), "certificate: {with_cert:?}");
    assert!(!plaintext.status.success(), "plaintext: {plaintext:?}");
    assert!(
        String::from_utf8_lossy(&plaintext.stderr).contains("not authorised")
            || String::from_utf8_lossy(&plaintext.stderr).contains("Not authorized"),
        "plaintext: {plaintext:?}"
    );
    assert!(
        log.contains("mqtt.network.mtls.required") && log.contains("mqtt.network.port"),
        "start-up warns about the plaintext listener:\n{log}"
    );
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("server-mtls-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
