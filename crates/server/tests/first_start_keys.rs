//! The CA and server certificate the binary writes under `<root>/keys/` at first start, checked
//! with the real `openssl` CLI: the certificate verifies against `ca.pem` for the loopback names,
//! both subjects name the broker, and the key belongs to the certificate and is its owner's only.
//!
//! Without `openssl` on PATH the test prints why and passes, except with `CI=true`, where a
//! missing `openssl` is a failure.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use xtask::testing::require_program;

/// Runs `openssl args` in `dir`; returns its standard output, failing the test if it fails.
#[track_caller]
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The machine's host name, which the certificate also names, when it is a plain DNS name.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let plain = !name.is_empty()
        && name != "localhost"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    plain.then(|| name.to_owned())
}

#[test]
fn first_start_writes_a_server_certificate_that_verifies_for_this_host() {
    if !require_program("openssl") {
        return;
    }
    let root = tempfile::tempdir().expect("a temporary root");
    // The default `tls` section (no files named) with a TLS listener on: the keys are written
    // before the listeners are bound, so they exist once the banner is out.
    let started = common::start(
        root.path(),
        &[
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("MQTT_NETWORK_SECUREPORT", "127.0.0.1:0"),
            ("MQTT_WEBSOCKET", "false"),
        ],
        Stdio::piped(),
    );
    // Nothing else is wanted from it (the keys are written by now), so no graceful stop.
    let mut child = started.child;
    child.kill().expect("the broker is stopped");
    child.wait().expect("the broker exits");
    assert!(started.banner.contains("TLS: "), "{}", started.banner);

    let keys = root.path().join("keys");
    let base = ["verify", "-CAfile", "ca.pem", "-purpose", "sslserver"];
    let mut checks = vec![
        ("-verify_hostname", "localhost".to_owned()),
        ("-verify_ip", "127.0.0.1".to_owned()),
        ("-verify_ip", "::1".to_owned()),
    ];
    checks.extend(host_name().map(|name| ("-verify_hostname", name)));
    for (check, host) in &checks {
        let out = openssl(
            &keys,
            &[&base[..], &[check, host, "certificate.pem"]].concat(),
        );
        assert_eq!(out, "certificate.pem: OK\n", "{check} {host}");
    }

    let subject = |file| openssl(&keys, &["x509", "-in", file, "-noout", "-subject"]);
    assert_eq!(
        subject("certificate.pem"),
        "subject=O = harper-mqtt, CN = localhost\n"
    );
    assert_eq!(
        subject("ca.pem"),
        "subject=O = harper-mqtt, CN = harper-mqtt generated CA\n"
    );

    let certificate_key = openssl(
        &keys,
        &["x509", "-in", "certificate.pem", "-noout", "-pubkey"],
    );
    let key = openssl(&keys, &["pkey", "-in", "privateKey.pem", "-pubout"]);
    assert_eq!(certificate_key, key);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keys.join("privateKey.pem"))
        .expect("the key is written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
