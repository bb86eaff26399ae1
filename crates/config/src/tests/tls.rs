//! The `tls` section, and the file checks of `Config::check_files`.

use super::*;

#[test]
fn tls_paths_are_expanded_and_marked_configured() {
    let c = clean(
        "tls: {certificate: ~/k/cert.pem, privateKey: keys/key.pem, certificateAuthority: /etc/ca.pem}",
    );
    assert_eq!(c.tls.certificate, Some("/home/u/k/cert.pem".into()));
    assert_eq!(
        c.tls.private_key,
        Some(PrivateKey::File(root("keys/key.pem")))
    );
    assert_eq!(c.tls.certificate_authority, Some("/etc/ca.pem".into()));
    assert_eq!(c.tls.origin, TlsOrigin::Configured);
}

#[test]
fn tls_without_files_keeps_the_defaults() {
    let c = clean("tls: {ciphers: 'TLS_AES_256_GCM_SHA384'}");
    assert_eq!(c.tls, Tls::defaults(Path::new(ROOT)));
}

#[test]
fn rejects_a_tls_section_missing_the_key_while_tls_listens() {
    let p = error_at("tls: {certificate: /k/cert.pem}", "tls.privateKey");
    assert!(p.message.contains("mqtt.network.securePort"), "{p}");
    error_at("tls: {privateKey: /k/key.pem}", "tls.certificate");
    clean("tls: {certificate: /k/cert.pem}\nmqtt: {network: {securePort: 0}}");
}

#[test]
fn inline_private_keys_are_kept_and_never_shown() {
    let yaml = "tls:\n  certificate: /k/c.pem\n  privateKey: |\n    -----BEGIN PRIVATE KEY-----\n    c2VjcmV0\n    -----END PRIVATE KEY-----\n";
    let c = clean(yaml);
    match &c.tls.private_key {
        Some(PrivateKey::Inline(pem)) => assert!(pem.expose().contains("c2VjcmV0")),
        other => panic!("expected an inline key, got {other:?}"),
    }
    assert!(!format!("{c:?}").contains("c2VjcmV0"));
    let shown = Value::serialize(&c).expect("serializes");
    assert_eq!(
        shown.find_ref("tls.privateKey").and_then(Value::as_str),
        Some("<redacted PEM>")
    );
}

#[test]
fn a_tls_list_uses_the_first_entry() {
    let loaded = load_yaml(
        "tls:\n  - {certificate: /a/c.pem, privateKey: /a/k.pem}\n  - {certificate: /b/c.pem, privateKey: /b/k.pem}\n",
    );
    warning_at(&loaded, "tls");
    assert_eq!(loaded.config.tls.certificate, Some("/a/c.pem".into()));
}

#[test]
fn tilde_without_home_is_an_error() {
    let loaded = load_text(
        Some("tls: {certificate: ~/c.pem, privateKey: /k.pem}"),
        None,
        Path::new(ROOT),
        Vec::new(),
        Vec::new(),
    )
    .expect("parses");
    let p = loaded.problems.find("tls.certificate").expect("a problem");
    assert!(p.message.contains("HOME"), "{p}");
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("config-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn check_files_reports_named_files_that_cannot_be_read() {
    let dir = TempDir::new("files");
    std::fs::write(dir.0.join("cert.pem"), "x").expect("write");
    let yaml = format!(
        "tls: {{certificate: {0}/cert.pem, privateKey: {0}/missing.pem, certificateAuthority: {0}}}\n\
         mqtt: {{network: {{mtls: {{certificateAuthority: {0}/mtls-ca.pem}}}}}}",
        dir.0.display()
    );
    let problems = clean(&yaml).check_files();
    let keys: Vec<&str> = problems.errors().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "tls.privateKey",
            "tls.certificateAuthority",
            "mqtt.network.mtls.certificateAuthority"
        ]
    );
    let key = problems.find("tls.privateKey").expect("missing key");
    assert!(key.message.contains("does not exist"), "{key}");
    assert!(
        key.value
            .as_deref()
            .is_some_and(|v| v.contains("missing.pem")),
        "{key}"
    );
    assert!(
        problems
            .find("tls.certificateAuthority")
            .is_some_and(|p| p.message.contains("not a file"))
    );
}

#[test]
fn check_files_leaves_harper_default_keys_to_the_transport() {
    assert!(
        Config::defaults(Path::new("/nonexistent/root"))
            .check_files()
            .is_empty()
    );
    // (validate() reports that this mTLS CA would be the generated one.)
    let c = load_yaml("mqtt: {network: {mtls: true}}").config;
    assert!(c.check_files().is_empty());
}

#[test]
fn check_files_wants_an_mtls_ca_named_at_the_default_path_to_exist() {
    // Named under mtls, the file must be there: otherwise the broker would write its own CA
    // there at first start and refuse every client certificate.
    let yaml = format!(
        "mqtt: {{network: {{mtls: {{certificateAuthority: {}}}}}}}",
        root("keys/ca.pem").display()
    );
    let problems = clean(&yaml).check_files();
    let p = problems
        .find("mqtt.network.mtls.certificateAuthority")
        .unwrap_or_else(|| panic!("no problem about the mTLS CA: {problems}"));
    assert!(p.is_error() && p.message.contains("does not exist"), "{p}");
}
