//! The generated PKI checked with the real `openssl` CLI: chains, expiry, extensions, key pairs,
//! and an `openssl ocsp` responder started with the exact command `cargo xtask gen-certs` prints.
//!
//! Without `openssl` on PATH each test prints why and passes, except with `CI=true`, where a
//! missing `openssl` is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use xtask::testing::require_program;

use tempfile::TempDir;
use xtask::pki::{self, Pki, PkiOptions};

/// How long the OCSP responder may take to start listening.
const RESPONDER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A PKI written to a temporary directory.
struct Fixture {
    dir: TempDir,
    pki: Pki,
}

impl Fixture {
    fn new() -> Self {
        Self::with_options(&PkiOptions::default())
    }

    fn with_options(options: &PkiOptions) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let pki = pki::generate(options).expect("generating the PKI");
        pki.write_to(dir.path()).expect("writing the PKI");
        Self { dir, pki }
    }

    fn openssl(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running openssl")
    }
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn assert_success(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn chains_verify_against_their_cas() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    for client in ["alice.pem", "bob.pem", "revoked.pem"] {
        let out = f.openssl(&[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslclient",
            client,
        ]);
        assert_eq!(assert_success(&out), format!("{client}: OK\n"));
    }
    for cert in ["ca.pem", "intermediate.pem", "ocsp.pem"] {
        assert_success(&f.openssl(&["verify", "-CAfile", "ca.pem", cert]));
    }
    assert_success(&f.openssl(&[
        "verify",
        "-CAfile",
        "ca.pem",
        "-purpose",
        "ocsphelper",
        "ocsp.pem",
    ]));

    let carol = ["-CAfile", "ca.pem", "-purpose", "sslclient"];
    let out = f.openssl(
        &[
            &["verify"][..],
            &carol,
            &["-untrusted", "intermediate.pem", "carol.pem"],
        ]
        .concat(),
    );
    assert_eq!(assert_success(&out), "carol.pem: OK\n");
    // The chain in carol.pem is enough on its own: it carries the intermediate.
    let out = f.openssl(
        &[
            &["verify"][..],
            &carol,
            &["-untrusted", "carol.pem", "carol.pem"],
        ]
        .concat(),
    );
    assert_success(&out);
    let out = f.openssl(&[&["verify"][..], &carol, &["carol.pem"]].concat());
    assert!(
        !out.status.success(),
        "carol needs the intermediate: {}",
        text(&out)
    );
}

#[test]
fn chain_files_hold_leaf_then_intermediate() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    for name in ["server.pem", "carol.pem"] {
        let contents = std::fs::read_to_string(f.dir.path().join(name)).unwrap();
        assert_eq!(
            contents.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{name}"
        );
        // `openssl crl2pkcs7 | pkcs7 -print_certs` lists every certificate in the file in order.
        let out = f.openssl(&["crl2pkcs7", "-nocrl", "-certfile", name, "-out", "chain.p7"]);
        assert_success(&out);
        let listing =
            assert_success(&f.openssl(&["pkcs7", "-in", "chain.p7", "-print_certs", "-noout"]));
        let subjects: Vec<&str> = listing
            .lines()
            .filter(|l| l.starts_with("subject="))
            .collect();
        let leaf = if name == "server.pem" {
            "localhost"
        } else {
            "carol"
        };
        assert_eq!(
            subjects,
            [
                format!("subject=CN = {leaf}"),
                "subject=O = harper-mqtt test, CN = harper-mqtt test intermediate CA".to_owned(),
            ],
            "{name}"
        );
    }
}

#[test]
fn server_certificate_is_valid_for_localhost_and_loopback_addresses() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let base = [
        "verify",
        "-CAfile",
        "ca.pem",
        "-untrusted",
        "intermediate.pem",
        "-purpose",
        "sslserver",
    ];
    for (check, name) in [
        ("-verify_hostname", "localhost"),
        ("-verify_ip", "127.0.0.1"),
        ("-verify_ip", "::1"),
    ] {
        let out = f.openssl(&[&base[..], &[check, name, "server.pem"]].concat());
        assert_eq!(assert_success(&out), "server.pem: OK\n", "{name}");
    }
    let out = f.openssl(
        &[
            &base[..],
            &["-verify_hostname", "example.com", "server.pem"],
        ]
        .concat(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    // A server certificate is no client certificate.
    let out = f.openssl(&[
        "verify",
        "-CAfile",
        "ca.pem",
        "-untrusted",
        "intermediate.pem",
        "-purpose",
        "sslclient",
        "server.pem",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn expired_certificate_fails_as_expired() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let out = f.openssl(&["verify", "-CAfile", "ca.pem", "expired.pem"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("certificate has expired"),
        "{}",
        text(&out)
    );
}

#[test]
fn stranger_is_trusted_only_by_the_other_ca() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let out = f.openssl(&["verify", "-CAfile", "ca.pem", "stranger.pem"]);
    assert!(
        text(&out).contains("unable to get local issuer certificate"),
        "{}",
        text(&out)
    );
    let out = f.openssl(&[
        "verify",
        "-CAfile",
        "other-ca.pem",
        "-purpose",
        "sslclient",
        "stranger.pem",
    ]);
    assert_eq!(assert_success(&out), "stranger.pem: OK\n");
    let out = f.openssl(&["verify", "-CAfile", "other-ca.pem", "alice.pem"]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn client_certificates_name_the_ocsp_responder() {
    if !require_program("openssl") {
        return;
    }
    let url = "http://ocsp.example.test:4567/ocsp";
    let f = Fixture::with_options(&PkiOptions {
        ocsp_url: url.to_owned(),
        ..PkiOptions::default()
    });
    for client in ["alice", "bob", "carol", "expired", "revoked", "stranger"] {
        let pem = format!("{client}.pem");
        let out = f.openssl(&["x509", "-in", &pem, "-noout", "-ocsp_uri"]);
        assert_eq!(assert_success(&out), format!("{url}\n"), "{client}");
        let out = assert_success(&f.openssl(&["x509", "-in", &pem, "-noout", "-text"]));
        assert!(
            out.contains("Authority Information Access"),
            "{client}: {out}"
        );
        assert!(
            out.contains(&format!("OCSP - URI:{url}")),
            "{client}: {out}"
        );
        assert!(
            out.contains("TLS Web Client Authentication"),
            "{client}: {out}"
        );
        assert!(out.contains("CA:FALSE"), "{client}: {out}");
        let subject = assert_success(&f.openssl(&["x509", "-in", &pem, "-noout", "-subject"]));
        assert_eq!(subject, format!("subject=CN = {client}\n"));
    }
    for other in [
        "ca.pem",
        "intermediate.pem",
        "server.pem",
        "ocsp.pem",
        "other-ca.pem",
    ] {
        let out = assert_success(&f.openssl(&["x509", "-in", other, "-noout", "-ocsp_uri"]));
        assert_eq!(out, "", "{other} has no AIA");
    }
}

#[test]
fn cas_server_and_responder_have_their_extensions() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let x509_text =
        |name: &str| assert_success(&f.openssl(&["x509", "-in", name, "-noout", "-text"]));
    for ca in ["ca.pem", "intermediate.pem", "other-ca.pem"] {
        let out = x509_text(ca);
        assert!(out.contains("CA:TRUE"), "{ca}: {out}");
        assert!(out.contains("Certificate Sign, CRL Sign"), "{ca}: {out}");
    }
    assert!(x509_text("intermediate.pem").contains("CA:TRUE, pathlen:0"));
    let server = x509_text("server.pem");
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    assert!(
        server.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{server}"
    );
    let ocsp = x509_text("ocsp.pem");
    assert!(ocsp.contains("OCSP Signing"), "{ocsp}");
    assert!(ocsp.contains("OCSP No Check"), "{ocsp}");
    let issuer = assert_success(&f.openssl(&["x509", "-in", "ocsp.pem", "-noout", "-issuer"]));
    assert_eq!(
        issuer,
        "issuer=O = harper-mqtt test, CN = harper-mqtt test root CA\n"
    );
}

#[test]
fn every_key_matches_its_certificate() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let names = [
        "ca",
        "intermediate",
        "server",
        "alice",
        "bob",
        "carol",
        "expired",
        "revoked",
        "stranger",
        "ocsp",
    ];
    for name in names {
        let cert = assert_success(&f.openssl(&[
            "x509",
            "-in",
            &format!("{name}.pem"),
            "-noout",
            "-pubkey",
        ]));
        let key = assert_success(&f.openssl(&["pkey", "-in", &format!("{name}.key"), "-pubout"]));
        assert_eq!(cert, key, "{name}");
    }
}

#[test]
fn serials_are_distinct_and_match_the_index() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new();
    let serial = |name: &str| {
        let out = assert_success(&f.openssl(&["x509", "-in", name, "-noout", "-serial"]));
        out.trim().strip_prefix("serial=").unwrap().to_owned()
    };
    let p = &f.pki;
    let expected = [
        ("ca.pem", &p.ca),
        ("intermediate.pem", &p.intermediate),
        ("server.pem", &p.server),
        ("alice.pem", &p.alice),
        ("bob.pem", &p.bob),
        ("carol.pem", &p.carol),
        ("expired.pem", &p.expired),
        ("revoked.pem", &p.revoked),
        ("other-ca.pem", &p.other_ca),
        ("stranger.pem", &p.stranger),
        ("ocsp.pem", &p.ocsp),
    ];
    let mut seen = std::collections::HashSet::new();
    for (file, credential) in expected {
        let serial = serial(file);
        assert_eq!(serial, credential.serial, "{file}");
        assert!(seen.insert(serial), "{file} repeats a serial");
    }
    let index = std::fs::read_to_string(f.dir.path().join("index.txt")).unwrap();
    for (status, file) in [
        ("V", "alice.pem"),
        ("V", "bob.pem"),
        ("V", "expired.pem"),
        ("R", "revoked.pem"),
    ] {
        let serial = serial(file);
        let line = index.lines().find(|l| l.contains(&serial)).unwrap();
        assert!(line.starts_with(&format!("{status}\t")), "{file}: {line}");
    }
}

/// Starts `command` (as printed by `gen-certs`) and waits until it accepts.
fn start_responder(command: &str, stderr_path: PathBuf) -> pki::OcspResponder {
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("openssl"), "{command}");
    pki::OcspResponder::start(words, stderr_path, RESPONDER_START_TIMEOUT)
        .expect("the responder starts")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

fn gen_certs(out: &Path, ocsp_url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "gen-certs",
            "--out",
            out.to_str().expect("temporary paths are UTF-8"),
            "--ocsp-url",
            ocsp_url,
        ])
        .output()
        .expect("running xtask");
    assert_success(&output)
}

#[test]
fn printed_ocsp_responder_answers_good_and_revoked() {
    if !require_program("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let url = format!("http://127.0.0.1:{}", free_port());
    let printed = gen_certs(&certs, &url);
    let command = printed
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("openssl ocsp "))
        .unwrap_or_else(|| panic!("no openssl ocsp command in:\n{printed}"));
    let responder = start_responder(command, dir.path().join("responder.stderr"));

    let query = |issuer: &str, cert: &str| {
        let cert = certs.join(cert);
        let output = Command::new("openssl")
            .args(["ocsp", "-timeout", "10", "-url", &url, "-CAfile"])
            .arg(certs.join("ca.pem"))
            .arg("-issuer")
            .arg(certs.join(issuer))
            .arg("-cert")
            .arg(&cert)
            .output()
            .unwrap();
        (cert.display().to_string(), output)
    };
    for (client, status) in [
        ("alice.pem", "good"),
        ("bob.pem", "good"),
        ("revoked.pem", "revoked"),
    ] {
        let (path, out) = query("ca.pem", client);
        let stdout = assert_success(&out);
        assert!(
            stdout.starts_with(&format!("{path}: {status}\n")),
            "{client}: {}\nresponder stderr:\n{}",
            text(&out),
            responder.stderr()
        );
        assert!(text(&out).contains("Response verify OK"), "{}", text(&out));
        if status == "revoked" {
            assert!(stdout.contains("Revocation Time:"), "{stdout}");
        }
    }
    // One responder, one issuer: it knows nothing of certificates the root did not issue.
    for (issuer, client) in [
        ("intermediate.pem", "carol.pem"),
        ("other-ca.pem", "stranger.pem"),
    ] {
        let (path, out) = query(issuer, client);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!("{path}: unknown\n")),
            "{}",
            text(&out)
        );
    }
}
