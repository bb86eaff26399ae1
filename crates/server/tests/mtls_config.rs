//! `mqtt.network.mtls` read from the configuration file by the real binary: a client presenting a
//! certificate logs in over TLS, plaintext clients are refused under `required`, and start-up
//! says so. (The behaviour in depth is tested in-process in `tests/mtls.rs`.)

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use xtask::testing::require_program;

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
    let started = common::start(
        &root,
        &[
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("MQTT_NETWORK_SECUREPORT", "127.0.0.1:0"),
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
        Stdio::piped(),
    );
    let (tcp, tls) = (started.port_of("TCP"), started.port_of("TLS"));
    let mut child = started.child;

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
