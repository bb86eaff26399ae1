//! Every YAML example of the reference text (`mqtt-configuration.md`), copied verbatim, loaded from a
//! file through the public API, with the values it must produce.

use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{
    BindAddress, CaSource, CertificateVerification, Config, FailureMode, Level, Loaded, Logging,
    Mtls, MtlsUser, PrivateKey, Rotation, TlsOrigin, load,
};

const HOME: &str = "/home/harper";
const ROOT: &str = "/home/harper/hdb";

/// Writes `yaml` to a file of its own and loads it with a fake environment.
fn load_example(name: &str, yaml: &str) -> Loaded {
    let dir = std::env::temp_dir().join(format!("config-example-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("harperdb-config.yaml");
    std::fs::write(&file, yaml).expect("write example");
    let env = vec![("HOME".to_owned(), HOME.to_owned())];
    let loaded = load(Some(&file), Path::new(ROOT), env, Vec::new()).expect("the example loads");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !loaded.problems.has_errors(),
        "{name}:\n{}",
        loaded.problems
    );
    loaded
}

fn all(port: u16) -> Option<BindAddress> {
    NonZeroU16::new(port).map(BindAddress::AllInterfaces)
}

fn defaults() -> Config {
    Config::defaults(Path::new(ROOT))
}

#[test]
fn minimal_example() {
    let loaded = load_example(
        "minimal",
        "mqtt:
  network:
    port: 1883
    securePort: 8883
  webSocket: true
  requireAuthentication: true
",
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let c = loaded.config;
    assert_eq!(c.mqtt.network.port, all(1883));
    assert_eq!(c.mqtt.network.secure_port, all(8883));
    assert!(c.mqtt.web_socket);
    assert!(c.mqtt.require_authentication);
    assert_eq!(c, defaults());
}

#[test]
fn web_socket_example() {
    let c = load_example("websocket", "mqtt:\n  webSocket: true\n").config;
    assert!(c.mqtt.web_socket);
    assert_eq!(c.http.port, all(9926));
    assert_eq!(c, defaults());
}

#[test]
fn require_authentication_example() {
    let c = load_example("require-auth", "mqtt:\n  requireAuthentication: true\n").config;
    assert!(c.mqtt.require_authentication);
    assert_eq!(c, defaults());
}

/// The `tls` section of the reference's complete example, verbatim: what Harper's installer
/// writes into every `harperdb-config.yaml`. The mTLS snippets say client certificates are
/// "verified against the CA specified in the root tls.certificateAuthority section", so they are
/// loaded with it; alone, they name no CA (`an_mtls_example_without_a_tls_section_names_no_ca`).
const HARPER_TLS: &str = "
# TLS is a top-level section, shared with HTTP
tls:
  certificate: ~/hdb/keys/certificate.pem
  certificateAuthority: ~/hdb/keys/ca.pem
  privateKey: ~/hdb/keys/privateKey.pem
";

/// An mTLS snippet as it sits in a Harper configuration file, with [`HARPER_TLS`].
fn with_harper_tls(snippet: &str) -> String {
    format!("{snippet}{HARPER_TLS}")
}

fn cn_mtls(ca: PathBuf, source: CaSource) -> Mtls {
    Mtls {
        user: MtlsUser::CommonName,
        required: false,
        certificate_authority: Some(ca),
        certificate_authority_source: source,
        certificate_verification: Some(CertificateVerification::default()),
    }
}

#[test]
fn mtls_true_example() {
    let c = load_example(
        "mtls-true",
        &with_harper_tls("mqtt:\n  network:\n    mtls: true\n"),
    )
    .config;
    assert_eq!(
        c.mqtt.network.mtls,
        Some(cn_mtls(
            PathBuf::from(ROOT).join("keys/ca.pem"),
            CaSource::Tls
        ))
    );
}

#[test]
fn an_mtls_example_without_a_tls_section_names_no_ca() {
    // Without a tls section the CA would be Harper's default `<root>/keys/ca.pem`, which the
    // broker creates at first start and keeps no key of: every client certificate would fail.
    let dir = std::env::temp_dir().join(format!("config-example-{}-bare", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("harperdb-config.yaml");
    std::fs::write(&file, "mqtt:\n  network:\n    mtls: true\n").expect("write example");
    let env = vec![("HOME".to_owned(), HOME.to_owned())];
    let loaded = load(Some(&file), Path::new(ROOT), env, Vec::new()).expect("the example loads");
    let _ = std::fs::remove_dir_all(&dir);
    let p = loaded
        .problems
        .errors()
        .find(|p| p.key == "mqtt.network.mtls.certificateAuthority")
        .unwrap_or_else(|| panic!("no error about the mTLS CA:\n{}", loaded.problems));
    assert!(p.message.contains("tls.certificateAuthority"), "{p}");
}

#[test]
fn certificate_verification_example() {
    let loaded = load_example(
        "verification",
        &with_harper_tls(
            "mqtt:
  network:
    mtls:
      required: true
      certificateVerification:
        failureMode: fail-closed
        timeout: 5000
        cacheTtl: 3600000
",
        ),
    );
    let m = loaded.config.mqtt.network.mtls.expect("mTLS is on");
    assert!(m.required);
    assert_eq!(m.user, MtlsUser::CommonName);
    assert_eq!(
        m.certificate_verification,
        Some(CertificateVerification {
            timeout: Duration::from_millis(5000),
            cache_ttl: Duration::from_millis(3_600_000),
            failure_mode: FailureMode::FailClosed,
        })
    );
}

#[test]
fn combined_authentication_example() {
    let loaded = load_example(
        "combined",
        &with_harper_tls(
            "# Require client certificate + standard credentials (combined auth)
mqtt:
  network:
    mtls:
      user: null
      required: true
",
        ),
    );
    let m = loaded.config.mqtt.network.mtls.expect("mTLS is on");
    assert_eq!(m.user, MtlsUser::CredentialsRequired);
    assert!(m.required);
    assert_eq!(
        m.certificate_verification,
        Some(CertificateVerification::default())
    );
}

#[test]
fn fixed_user_example() {
    let loaded = load_example(
        "fixed-user",
        &with_harper_tls(
            "# Authenticate all mTLS connections as a fixed user
mqtt:
  network:
    mtls:
      user: mqtt-service-account
      required: true
",
        ),
    );
    let m = loaded.config.mqtt.network.mtls.expect("mTLS is on");
    assert_eq!(m.user, MtlsUser::Fixed("mqtt-service-account".to_owned()));
    assert!(m.required);
}

#[test]
fn optional_mtls_example() {
    let loaded = load_example(
        "optional",
        &with_harper_tls(
            "# mTLS optional — clients can use mTLS or credentials
mqtt:
  network:
    mtls: true
",
        ),
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let m = loaded.config.mqtt.network.mtls.expect("mTLS is on");
    assert!(!m.required);
    assert_eq!(m.user, MtlsUser::CommonName);
}

#[test]
fn logging_example() {
    let loaded = load_example(
        "logging",
        "mqtt:
  logging:
    path: ~/hdb/log/mqtt.log
    level: warn
    stdStreams: false
",
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    assert_eq!(
        loaded.config.mqtt.logging,
        Logging {
            path: PathBuf::from("/home/harper/hdb/log/mqtt.log"),
            level: Level::Warn,
            tag: None,
            std_streams: false,
            rotation: Rotation::default(),
        }
    );
    assert_eq!(
        loaded.config.logging.path,
        PathBuf::from("/home/harper/hdb/log/hdb.log")
    );
}

#[test]
fn complete_example() {
    let loaded = load_example(
        "complete",
        "mqtt:
  network:
    port: 1883
    securePort: 8883
    mtls:
      required: false
      certificateAuthority: ~/hdb/keys/ca.pem
      certificateVerification:
        failureMode: fail-open
        timeout: 5000
        cacheTtl: 3600000
  webSocket: true
  requireAuthentication: true
  logging:
    level: warn
    path: ~/hdb/log/mqtt.log

# TLS is a top-level section, shared with HTTP
tls:
  certificate: ~/hdb/keys/certificate.pem
  certificateAuthority: ~/hdb/keys/ca.pem
  privateKey: ~/hdb/keys/privateKey.pem
",
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let c = loaded.config;
    let keys = PathBuf::from("/home/harper/hdb/keys");
    assert_eq!(c.mqtt.network.port, all(1883));
    assert_eq!(c.mqtt.network.secure_port, all(8883));
    assert_eq!(
        c.mqtt.network.mtls,
        Some(cn_mtls(keys.join("ca.pem"), CaSource::Mtls))
    );
    assert!(c.mqtt.web_socket);
    assert!(c.mqtt.require_authentication);
    assert_eq!(c.mqtt.logging.level, Level::Warn);
    assert_eq!(
        c.mqtt.logging.path,
        PathBuf::from("/home/harper/hdb/log/mqtt.log")
    );
    assert_eq!(c.mqtt.logging.tag, None);
    assert_eq!(c.tls.certificate, Some(keys.join("certificate.pem")));
    assert_eq!(
        c.tls.private_key,
        Some(PrivateKey::File(keys.join("privateKey.pem")))
    );
    assert_eq!(c.tls.certificate_authority, Some(keys.join("ca.pem")));
    assert_eq!(c.tls.origin, TlsOrigin::Configured);
    let banner: Vec<String> = c
        .listeners()
        .iter()
        .map(|l| format!("{}: {}", l.kind, l.addr))
        .collect();
    assert_eq!(banner, ["TCP: 1883", "TLS: 8883", "WS: 9926"]);
    assert_eq!(
        c.mqtt.network.port.and_then(|a| a.ip()),
        None::<std::net::IpAddr>
    );
}
