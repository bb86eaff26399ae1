//! `cargo xtask` as a user runs it: the task list, `gen-certs` output, and errors.

use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("running xtask")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_tasks() {
    for args in [&[][..], &["help"], &["--help"], &["gen-certs", "--help"]] {
        let out = xtask(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let help = stdout(&out);
        assert!(help.starts_with("usage: cargo xtask <task>"), "{help}");
        assert!(
            help.contains("gen-certs [--out DIR] [--ocsp-url URL]"),
            "{help}"
        );
        assert!(help.contains("help "), "{help}");
    }
}

#[test]
fn gen_certs_writes_the_pki_and_prints_the_responder_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let out = xtask(&["gen-certs", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected = [
        "ca.pem",
        "ca.key",
        "intermediate.pem",
        "intermediate.key",
        "server.pem",
        "server.key",
        "alice.pem",
        "alice.key",
        "bob.pem",
        "bob.key",
        "carol.pem",
        "carol.key",
        "expired.pem",
        "expired.key",
        "revoked.pem",
        "revoked.key",
        "other-ca.pem",
        "stranger.pem",
        "stranger.key",
        "ocsp.pem",
        "ocsp.key",
        "index.txt",
    ];
    expected.sort_unstable();
    assert_eq!(written, expected);

    let d = out_dir.display();
    let command = format!(
        "openssl ocsp -port 8888 -index {d}/index.txt -CA {d}/ca.pem -rsigner {d}/ocsp.pem \
         -rkey {d}/ocsp.key -text"
    );
    let printed = stdout(&out);
    assert!(printed.contains(&format!("\n  {command}\n")), "{printed}");
    assert!(printed.contains("http://127.0.0.1:8888"), "{printed}");
}

#[test]
fn gen_certs_rejects_an_ocsp_url_openssl_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let out = xtask(&[
        "gen-certs",
        "--out",
        out_dir.to_str().unwrap(),
        "--ocsp-url",
        "https://127.0.0.1:8888",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ocsp url `https://127.0.0.1:8888` must start with http://"),
        "{}",
        stderr(&out)
    );
    assert!(!out_dir.exists(), "nothing is written on error");
}

#[test]
fn unknown_task_fails_and_points_at_help() {
    let out = xtask(&["gen-cert"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown task `gen-cert`; run `cargo xtask help`"),
        "{}",
        stderr(&out)
    );
}
