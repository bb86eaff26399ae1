//! Every key, default and error, read through the loader as the broker reads them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::Value;

use crate::load::load_text;
use crate::read::{Node, Reader};
use crate::*;

const ROOT: &str = "/srv/hdb";

fn env_with_home(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_owned(), "/home/u".to_owned()),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

fn load_full(yaml: &str, env: &[(&str, &str)], args: &[(&str, &str)]) -> Loaded {
    let args: Vec<(String, String)> = args
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    load_text(
        Some(yaml),
        Some(Path::new("harperdb-config.yaml")),
        Path::new(ROOT),
        env_with_home(env),
        args,
    )
    .expect("the YAML parses")
}

fn load_yaml(yaml: &str) -> Loaded {
    load_full(yaml, &[], &[])
}

/// Loads and asserts there is no problem at all.
fn clean(yaml: &str) -> Config {
    let loaded = load_yaml(yaml);
    assert!(
        loaded.problems.is_empty(),
        "unexpected problems:\n{}",
        loaded.problems
    );
    loaded.config
}

/// Loads and returns the one error about `key`, asserting it names the value.
fn error_at(yaml: &str, key: &str) -> Problem {
    let loaded = load_yaml(yaml);
    let found = loaded.problems.errors().find(|p| p.key == key).cloned();
    found.unwrap_or_else(|| panic!("no error at {key}; problems:\n{}", loaded.problems))
}

fn warning_at(loaded: &Loaded, key: &str) -> Problem {
    let found = loaded.problems.warnings().find(|p| p.key == key).cloned();
    found.unwrap_or_else(|| panic!("no warning at {key}; problems:\n{}", loaded.problems))
}

fn all(port: u16) -> Option<BindAddress> {
    NonZeroU16::new(port).map(BindAddress::AllInterfaces)
}

fn addr(text: &str) -> Option<BindAddress> {
    text.parse::<SocketAddr>().ok().map(BindAddress::Addr)
}

fn root(rest: &str) -> PathBuf {
    Path::new(ROOT).join(rest)
}

// --- defaults ---------------------------------------------------------------------------------

#[test]
fn no_file_gives_the_documented_defaults() {
    let loaded = load_text(None, None, Path::new(ROOT), env_with_home(&[]), Vec::new())
        .expect("defaults load");
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let c = loaded.config;
    assert_eq!(c.root, Path::new(ROOT));
    assert_eq!(c.mqtt.network.port, all(1883));
    assert_eq!(c.mqtt.network.secure_port, all(8883));
    assert_eq!(c.mqtt.network.mtls, None);
    assert!(c.mqtt.web_socket);
    assert!(c.mqtt.require_authentication);
    assert_eq!(c.http.port, all(9926));
    assert_eq!(c.http.secure_port, None);
    assert_eq!(c.tls, Tls::defaults(Path::new(ROOT)));
    assert_eq!(c.tls.certificate, Some(root("keys/certificate.pem")));
    assert_eq!(
        c.tls.private_key,
        Some(PrivateKey::File(root("keys/privateKey.pem")))
    );
    assert_eq!(c.tls.certificate_authority, Some(root("keys/ca.pem")));
    assert_eq!(c.tls.origin, TlsOrigin::Defaults);
    let main = Logging {
        path: root("log/hdb.log"),
        level: Level::Warn,
        tag: None,
        std_streams: false,
    };
    assert_eq!(c.logging, main);
    assert_eq!(
        c.mqtt.logging,
        Logging {
            tag: Some("mqtt".into()),
            ..main
        }
    );
    assert_eq!(c.mqtt.limits, Limits::default());
    assert_eq!(
        c.mqtt.storage,
        Storage {
            path: root("mqtt-data"),
            durability: Durability::default()
        }
    );
    assert_eq!(c.authentication.users_file, root("users.yaml"));
    assert_eq!(Config::defaults(Path::new(ROOT)), c);
}

#[test]
fn limit_defaults_are_bounded() {
    let l = Limits::default();
    assert_eq!(l.max_packet_size, NonZeroU32::new(1024 * 1024));
    assert_eq!(l.receive_maximum.get(), 128);
    assert_eq!(l.max_keep_alive, Some(Duration::from_secs(65_535)));
    assert_eq!(l.max_queued_messages.get(), 1000);
    assert_eq!(l.max_topic_alias, NonZeroU16::new(64));
    assert_eq!(l.max_inflight.get(), 32);
    assert_eq!(l.connect_timeout, Duration::from_secs(10));
}

#[test]
fn empty_and_comment_only_files_give_the_defaults() {
    assert_eq!(clean(""), Config::defaults(Path::new(ROOT)));
    assert_eq!(
        clean("# nothing here\n\n"),
        Config::defaults(Path::new(ROOT))
    );
    assert_eq!(clean("mqtt:\n"), Config::defaults(Path::new(ROOT)));
}

// --- ports ------------------------------------------------------------------------------------

#[test]
fn port_accepts_integers_numeric_strings_and_host_port() {
    assert_eq!(
        clean("mqtt: {network: {port: 1884}}").mqtt.network.port,
        all(1884)
    );
    assert_eq!(
        clean("mqtt: {network: {port: '1884'}}").mqtt.network.port,
        all(1884)
    );
    assert_eq!(
        clean("mqtt: {network: {port: '127.0.0.1:1884'}}")
            .mqtt
            .network
            .port,
        addr("127.0.0.1:1884")
    );
    assert_eq!(
        clean("mqtt: {network: {port: '[::1]:1884'}}")
            .mqtt
            .network
            .port,
        addr("[::1]:1884")
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: 8884}}")
            .mqtt
            .network
            .secure_port,
        all(8884)
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: '0.0.0.0:8884'}}")
            .mqtt
            .network
            .secure_port,
        addr("0.0.0.0:8884")
    );
}

#[test]
fn port_zero_or_null_turns_the_listener_off() {
    assert_eq!(clean("mqtt: {network: {port: 0}}").mqtt.network.port, None);
    assert_eq!(
        clean("mqtt: {network: {port: null}}").mqtt.network.port,
        None
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: 0}}")
            .mqtt
            .network
            .secure_port,
        None
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: ~}}")
            .mqtt
            .network
            .secure_port,
        None
    );
}

#[test]
fn rejects_ports_out_of_range_naming_key_value_and_what_is_allowed() {
    let p = error_at("mqtt: {network: {port: 70000}}", "mqtt.network.port");
    assert_eq!(p.value.as_deref(), Some("70000"));
    assert!(p.message.contains("1 to 65535"), "{p}");
    assert!(p.message.contains("0 or null"), "{p}");
    let p = error_at(
        "mqtt: {network: {securePort: -1}}",
        "mqtt.network.securePort",
    );
    assert_eq!(p.value.as_deref(), Some("-1"));
    let p = error_at(
        "mqtt: {network: {port: 'example.com:1883'}}",
        "mqtt.network.port",
    );
    assert_eq!(p.value.as_deref(), Some("\"example.com:1883\""));
    error_at("mqtt: {network: {port: true}}", "mqtt.network.port");
    error_at("mqtt: {network: {port: [1883]}}", "mqtt.network.port");
}

#[test]
fn rejects_two_listeners_on_one_port() {
    let p = error_at("mqtt: {network: {port: 8883}}", "mqtt.network.securePort");
    assert!(p.message.contains("mqtt.network.port"), "{p}");
    assert!(p.message.contains("8883"), "{p}");
    let p = error_at("http: {port: 1883}", "http.port");
    assert!(p.message.contains("also used by mqtt.network.port"), "{p}");
    let p = error_at("http: {securePort: 9926}", "http.securePort");
    assert!(p.message.contains("http.port"), "{p}");
    // Different addresses on the same port do not clash.
    clean("mqtt: {network: {port: '127.0.0.1:1883', securePort: '127.0.0.2:1883'}}");
}

#[test]
fn http_ports_are_read_and_other_http_keys_ignored() {
    let c = clean("http: {port: 9000, securePort: 9443, cors: true, compressionThreshold: 1200}");
    assert_eq!(c.http.port, all(9000));
    assert_eq!(c.http.secure_port, all(9443));
    assert_eq!(clean("http: {securePort: null}").http.secure_port, None);
}

#[test]
fn listeners_follow_ports_and_web_socket() {
    let kinds = |c: &Config| {
        c.listeners()
            .iter()
            .map(|l| (l.kind, l.addr.to_string()))
            .collect::<Vec<_>>()
    };
    let c = clean("http: {securePort: 9927}");
    assert_eq!(
        kinds(&c),
        vec![
            (ListenerKind::Tcp, "1883".into()),
            (ListenerKind::Tls, "8883".into()),
            (ListenerKind::WebSocket, "9926".into()),
            (ListenerKind::SecureWebSocket, "9927".into()),
        ]
    );
    let c = clean("mqtt: {webSocket: false, network: {securePort: 0}}");
    assert_eq!(kinds(&c), vec![(ListenerKind::Tcp, "1883".into())]);
    // With WebSocket off, the HTTP port is Harper's, not ours: no clash.
    clean("mqtt: {webSocket: false}\nhttp: {port: 1883}");
}

#[test]
fn warns_when_every_listener_is_off() {
    let loaded = load_yaml("mqtt: {webSocket: false, network: {port: 0, securePort: null}}");
    assert!(!loaded.problems.has_errors());
    warning_at(&loaded, "mqtt.network");
}

// --- webSocket and requireAuthentication --------------------------------------------------------

#[test]
fn web_socket_and_require_authentication_accept_booleans_and_their_strings() {
    let c = clean("mqtt: {webSocket: false, requireAuthentication: false}");
    assert!(!c.mqtt.web_socket);
    assert!(!c.mqtt.require_authentication);
    let c = clean("mqtt: {webSocket: 'false', requireAuthentication: 'FALSE'}");
    assert!(!c.mqtt.web_socket);
    assert!(!c.mqtt.require_authentication);
    let c = clean("mqtt: {webSocket: 'true', requireAuthentication: true}");
    assert!(c.mqtt.web_socket);
    assert!(c.mqtt.require_authentication);
}

#[test]
fn rejects_non_booleans() {
    let p = error_at(
        "mqtt: {requireAuthentication: 'yes'}",
        "mqtt.requireAuthentication",
    );
    assert_eq!(p.value.as_deref(), Some("\"yes\""));
    assert!(p.message.contains("true or false"), "{p}");
    error_at("mqtt: {webSocket: 1}", "mqtt.webSocket");
}

// --- mtls -------------------------------------------------------------------------------------

fn mtls_of(yaml: &str) -> Option<Mtls> {
    clean(yaml).mqtt.network.mtls
}

#[test]
fn mtls_false_or_absent_is_off() {
    assert_eq!(mtls_of(""), None);
    assert_eq!(mtls_of("mqtt: {network: {mtls: false}}"), None);
    assert_eq!(mtls_of("mqtt: {network: {mtls: 'false'}}"), None);
    assert_eq!(mtls_of("mqtt: {network: {mtls: null}}"), None);
}

#[test]
fn mtls_true_uses_the_common_name_and_the_tls_ca() {
    let m = mtls_of("mqtt: {network: {mtls: true}}").expect("on");
    assert_eq!(m.user, MtlsUser::CommonName);
    assert!(!m.required);
    assert_eq!(m.certificate_authority, Some(root("keys/ca.pem")));
    assert_eq!(
        m.certificate_verification,
        Some(CertificateVerification::default())
    );
    assert_eq!(mtls_of("mqtt: {network: {mtls: 'true'}}"), Some(m));
}

#[test]
fn mtls_user_absent_cn_and_common_name_mean_the_certificate_cn() {
    for yaml in [
        "mqtt: {network: {mtls: {required: false}}}",
        "mqtt: {network: {mtls: {user: CN}}}",
        "mqtt: {network: {mtls: {user: Common Name}}}",
    ] {
        assert_eq!(
            mtls_of(yaml).expect("on").user,
            MtlsUser::CommonName,
            "{yaml}"
        );
    }
}

#[test]
fn mtls_user_string_is_a_fixed_user() {
    let m = mtls_of("mqtt: {network: {mtls: {user: mqtt-service-account}}}").expect("on");
    assert_eq!(m.user, MtlsUser::Fixed("mqtt-service-account".into()));
}

#[test]
fn mtls_user_null_means_no_certificate_login() {
    // Explicit null differs from absent: Harper's combined mode.
    for yaml in [
        "mqtt: {network: {mtls: {user: null}}}",
        "mqtt: {network: {mtls: {user: ~}}}",
        "mqtt:\n  network:\n    mtls:\n      user:\n",
    ] {
        assert_eq!(
            mtls_of(yaml).expect("on").user,
            MtlsUser::CredentialsRequired,
            "{yaml}"
        );
    }
}

#[test]
fn rejects_a_non_string_mtls_user() {
    let p = error_at(
        "mqtt: {network: {mtls: {user: 5}}}",
        "mqtt.network.mtls.user",
    );
    assert!(p.message.contains("null"), "{p}");
    error_at(
        "mqtt: {network: {mtls: {user: ''}}}",
        "mqtt.network.mtls.user",
    );
}

#[test]
fn mtls_required_and_certificate_authority() {
    let loaded = load_yaml(
        "mqtt: {network: {mtls: {required: 'true', certificateAuthority: ~/ca/mqtt.pem}}}",
    );
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    let m = loaded.config.mqtt.network.mtls.expect("on");
    assert!(m.required);
    assert_eq!(
        m.certificate_authority,
        Some(PathBuf::from("/home/u/ca/mqtt.pem"))
    );
    error_at(
        "mqtt: {network: {mtls: {required: 2}}}",
        "mqtt.network.mtls.required",
    );
}

#[test]
fn mtls_certificate_authority_defaults_to_the_configured_tls_ca() {
    let yaml = "tls: {certificate: /k/cert.pem, privateKey: /k/key.pem, certificateAuthority: /k/ca.pem}\n\
                mqtt: {network: {mtls: true}}";
    assert_eq!(
        mtls_of(yaml).expect("on").certificate_authority,
        Some(PathBuf::from("/k/ca.pem"))
    );
}

#[test]
fn rejects_mtls_without_any_ca() {
    let yaml =
        "tls: {certificate: /k/cert.pem, privateKey: /k/key.pem}\nmqtt: {network: {mtls: true}}";
    let p = error_at(yaml, "mqtt.network.mtls.certificateAuthority");
    assert!(p.message.contains("tls.certificateAuthority"), "{p}");
}

#[test]
fn rejects_mtls_of_another_type() {
    let p = error_at("mqtt: {network: {mtls: maybe}}", "mqtt.network.mtls");
    assert!(p.message.contains("true, false, or a mapping"), "{p}");
}

#[test]
fn warns_that_required_mtls_refuses_plaintext_clients() {
    let loaded = load_yaml("mqtt: {network: {mtls: {required: true}}}");
    let w = warning_at(&loaded, "mqtt.network.mtls.required");
    assert!(
        w.message.contains("mqtt.network.port") && w.message.contains("http.port"),
        "{w}"
    );
    assert!(!loaded.problems.has_errors());
    clean("mqtt: {webSocket: false, network: {port: 0, mtls: {required: true}}}");
}

#[test]
fn warns_that_mtls_without_a_tls_listener_has_no_effect() {
    let loaded = load_yaml("mqtt: {network: {securePort: 0, mtls: true}}");
    warning_at(&loaded, "mqtt.network.mtls");
}

#[test]
fn certificate_verification_defaults_to_on() {
    let v = CertificateVerification::default();
    assert_eq!(v.timeout, Duration::from_millis(5000));
    assert_eq!(v.cache_ttl, Duration::from_millis(3_600_000));
    assert_eq!(v.failure_mode, FailureMode::FailOpen);
    for yaml in [
        "mqtt: {network: {mtls: {certificateVerification: true}}}",
        "mqtt: {network: {mtls: {certificateVerification: null}}}",
        "mqtt: {network: {mtls: {certificateVerification: {}}}}",
    ] {
        assert_eq!(
            mtls_of(yaml).expect("on").certificate_verification,
            Some(v),
            "{yaml}"
        );
    }
}

#[test]
fn certificate_verification_false_turns_ocsp_off() {
    let m = mtls_of("mqtt: {network: {mtls: {certificateVerification: false}}}").expect("on");
    assert_eq!(m.certificate_verification, None);
    let m = mtls_of("mqtt: {network: {mtls: {certificateVerification: 'false'}}}").expect("on");
    assert_eq!(m.certificate_verification, None);
}

#[test]
fn certificate_verification_partial_objects_take_defaults() {
    let m =
        mtls_of("mqtt: {network: {mtls: {certificateVerification: {failureMode: fail-closed}}}}")
            .expect("on");
    let v = m.certificate_verification.expect("on");
    assert_eq!(v.failure_mode, FailureMode::FailClosed);
    assert_eq!(v.timeout, Duration::from_millis(5000));
    assert_eq!(v.cache_ttl, Duration::from_millis(3_600_000));
    let m =
        mtls_of("mqtt: {network: {mtls: {certificateVerification: {timeout: '2s', cacheTtl: 0}}}}")
            .expect("on");
    let v = m.certificate_verification.expect("on");
    assert_eq!(v.timeout, Duration::from_secs(2));
    assert_eq!(v.cache_ttl, Duration::ZERO);
    assert_eq!(v.failure_mode, FailureMode::FailOpen);
}

#[test]
fn rejects_bad_failure_modes_and_timeouts() {
    let p = error_at(
        "mqtt: {network: {mtls: {certificateVerification: {failureMode: fail-soft}}}}",
        "mqtt.network.mtls.certificateVerification.failureMode",
    );
    assert_eq!(p.value.as_deref(), Some("\"fail-soft\""));
    assert!(p.message.contains("\"fail-open\", \"fail-closed\""), "{p}");
    let p = error_at(
        "mqtt: {network: {mtls: {certificateVerification: {timeout: -5}}}}",
        "mqtt.network.mtls.certificateVerification.timeout",
    );
    assert!(p.message.contains("negative"), "{p}");
    let p = error_at(
        "mqtt: {network: {mtls: {certificateVerification: {cacheTtl: -1}}}}",
        "mqtt.network.mtls.certificateVerification.cacheTtl",
    );
    assert!(p.message.contains("negative"), "{p}");
    error_at(
        "mqtt: {network: {mtls: {certificateVerification: {timeout: 0}}}}",
        "mqtt.network.mtls.certificateVerification.timeout",
    );
    error_at(
        "mqtt: {network: {mtls: {certificateVerification: {timeout: soon}}}}",
        "mqtt.network.mtls.certificateVerification.timeout",
    );
    error_at(
        "mqtt: {network: {mtls: {certificateVerification: sometimes}}}",
        "mqtt.network.mtls.certificateVerification",
    );
}

// --- logging ----------------------------------------------------------------------------------

#[test]
fn main_logging_keys() {
    let c = clean(
        "logging: {level: info, root: /var/log/hdb, stdStreams: 'true', rotation: {enabled: true}, file: true}",
    );
    assert_eq!(
        c.logging,
        Logging {
            path: "/var/log/hdb/hdb.log".into(),
            level: Level::Info,
            tag: None,
            std_streams: true
        }
    );
    let c = clean("logging: {path: ~/logs/main.log}");
    assert_eq!(c.logging.path, Path::new("/home/u/logs/main.log"));
    let p = error_at("logging: {level: verbose}", "logging.level");
    assert!(
        p.message
            .contains("\"notify\", \"fatal\", \"error\", \"warn\", \"info\", \"debug\", \"trace\""),
        "{p}"
    );
}

#[test]
fn every_harper_level_parses() {
    for (name, level) in Level::ALL {
        assert_eq!(
            clean(&format!("mqtt: {{logging: {{level: {name}}}}}"))
                .mqtt
                .logging
                .level,
            level
        );
        assert_eq!(level.as_str(), name);
    }
    assert_eq!(clean("logging: {level: WARN}").logging.level, Level::Warn);
}

#[test]
fn mqtt_logging_absent_goes_to_the_main_log_with_the_mqtt_tag() {
    let c = clean("logging: {level: debug, stdStreams: true}");
    assert_eq!(
        c.mqtt.logging,
        Logging {
            path: root("log/hdb.log"),
            level: Level::Debug,
            tag: Some("mqtt".into()),
            std_streams: true
        }
    );
}

#[test]
fn mqtt_logging_path_is_a_separate_file_without_a_default_tag() {
    let c = clean("mqtt: {logging: {path: ~/hdb/log/mqtt.log, level: warn, stdStreams: false}}");
    assert_eq!(
        c.mqtt.logging,
        Logging {
            path: "/home/u/hdb/log/mqtt.log".into(),
            level: Level::Warn,
            tag: None,
            std_streams: false
        }
    );
}

#[test]
fn mqtt_logging_root_means_hdb_log_in_that_directory() {
    let c = clean("mqtt: {logging: {root: /var/log/mqtt}}");
    assert_eq!(c.mqtt.logging.path, Path::new("/var/log/mqtt/hdb.log"));
}

#[test]
fn mqtt_logging_inherits_what_it_does_not_set() {
    let c = clean("logging: {level: info, stdStreams: true}\nmqtt: {logging: {level: trace}}");
    assert_eq!(
        c.mqtt.logging,
        Logging {
            path: root("log/hdb.log"),
            level: Level::Trace,
            tag: Some("mqtt".into()),
            std_streams: true
        }
    );
}

#[test]
fn mqtt_logging_tag_can_be_set_or_turned_off() {
    assert_eq!(
        clean("mqtt: {logging: {tag: broker}}")
            .mqtt
            .logging
            .tag
            .as_deref(),
        Some("broker")
    );
    assert_eq!(clean("mqtt: {logging: {tag: null}}").mqtt.logging.tag, None);
    assert_eq!(
        clean("mqtt: {logging: {path: /l/m.log, tag: mq}}")
            .mqtt
            .logging
            .tag
            .as_deref(),
        Some("mq")
    );
}

#[test]
fn mqtt_logging_rotation_is_accepted_with_a_warning() {
    let loaded = load_yaml("mqtt: {logging: {rotation: {enabled: true, maxSize: 10M}}}");
    assert!(!loaded.problems.has_errors());
    warning_at(&loaded, "mqtt.logging.rotation");
    clean("mqtt: {logging: {rotation: false}}");
}

#[test]
fn rejects_bad_logging_values() {
    error_at("mqtt: {logging: {level: loud}}", "mqtt.logging.level");
    error_at(
        "mqtt: {logging: {stdStreams: often}}",
        "mqtt.logging.stdStreams",
    );
    error_at("mqtt: {logging: {path: 5}}", "mqtt.logging.path");
    error_at("mqtt: {logging: verbose}", "mqtt.logging");
}

// --- tls --------------------------------------------------------------------------------------

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

// --- limits, storage, authentication ------------------------------------------------------------

#[test]
fn limits_keys() {
    let c = clean(
        "mqtt:\n  limits:\n    maxPacketSize: 2048\n    receiveMaximum: '10'\n    maxKeepAlive: 30s\n    \
         maxQueuedMessages: 5\n    maxTopicAlias: 7\n    maxInflight: 3\n    connectTimeout: 2500\n",
    );
    let l = c.mqtt.limits;
    assert_eq!(l.max_packet_size, NonZeroU32::new(2048));
    assert_eq!(l.receive_maximum.get(), 10);
    assert_eq!(l.max_keep_alive, Some(Duration::from_secs(30)));
    assert_eq!(l.max_queued_messages.get(), 5);
    assert_eq!(l.max_topic_alias, NonZeroU16::new(7));
    assert_eq!(l.max_inflight.get(), 3);
    assert_eq!(l.connect_timeout, Duration::from_millis(2500));
}

#[test]
fn limits_null_means_none_where_optional() {
    let l = clean("mqtt: {limits: {maxPacketSize: null, maxTopicAlias: null, maxKeepAlive: null}}")
        .mqtt
        .limits;
    assert_eq!(l.max_packet_size, None);
    assert_eq!(l.max_topic_alias, None);
    assert_eq!(l.max_keep_alive, None);
    // Elsewhere null is the default.
    assert_eq!(
        clean("mqtt: {limits: {receiveMaximum: null}}").mqtt.limits,
        Limits::default()
    );
}

#[test]
fn rejects_limits_out_of_range() {
    let p = error_at(
        "mqtt: {limits: {maxPacketSize: 0}}",
        "mqtt.limits.maxPacketSize",
    );
    assert!(p.message.contains("null for no limit"), "{p}");
    error_at(
        "mqtt: {limits: {maxPacketSize: 268435461}}",
        "mqtt.limits.maxPacketSize",
    );
    error_at(
        "mqtt: {limits: {receiveMaximum: 65536}}",
        "mqtt.limits.receiveMaximum",
    );
    error_at(
        "mqtt: {limits: {maxInflight: 0}}",
        "mqtt.limits.maxInflight",
    );
    error_at(
        "mqtt: {limits: {maxQueuedMessages: -1}}",
        "mqtt.limits.maxQueuedMessages",
    );
    error_at(
        "mqtt: {limits: {maxTopicAlias: 1.5}}",
        "mqtt.limits.maxTopicAlias",
    );
    error_at(
        "mqtt: {limits: {maxKeepAlive: 1500}}",
        "mqtt.limits.maxKeepAlive",
    );
    error_at(
        "mqtt: {limits: {maxKeepAlive: 65536s}}",
        "mqtt.limits.maxKeepAlive",
    );
    error_at(
        "mqtt: {limits: {connectTimeout: 0}}",
        "mqtt.limits.connectTimeout",
    );
    let p = error_at(
        "mqtt: {limits: {connectTimeout: -10}}",
        "mqtt.limits.connectTimeout",
    );
    assert!(p.message.contains("negative"), "{p}");
}

#[test]
fn storage_keys() {
    let s = clean("mqtt: {storage: {path: ~/data, durability: always}}")
        .mqtt
        .storage;
    assert_eq!(
        s,
        Storage {
            path: "/home/u/data".into(),
            durability: Durability::Always
        }
    );
    assert_eq!(
        clean("mqtt: {storage: {durability: never}}")
            .mqtt
            .storage
            .durability,
        Durability::Never
    );
    assert_eq!(
        clean("mqtt: {storage: {durability: interval, syncInterval: 250}}")
            .mqtt
            .storage
            .durability,
        Durability::Interval(Duration::from_millis(250))
    );
    assert_eq!(
        clean("mqtt: {storage: {durability: interval}}")
            .mqtt
            .storage
            .durability,
        Durability::Interval(Durability::DEFAULT_SYNC_INTERVAL)
    );
    assert_eq!(
        clean("mqtt: {storage: {durability: batch, batchMaxDelay: 0, batchMaxSize: 64}}")
            .mqtt
            .storage
            .durability,
        Durability::Batch {
            max_delay: Duration::ZERO,
            max_size: NonZeroU32::new(64).expect("not zero")
        }
    );
    assert_eq!(
        clean("mqtt: {storage: {path: data}}").mqtt.storage.path,
        root("data")
    );
}

#[test]
fn rejects_bad_storage_values_and_warns_about_unused_ones() {
    let p = error_at(
        "mqtt: {storage: {durability: sometimes}}",
        "mqtt.storage.durability",
    );
    assert!(
        p.message
            .contains("\"always\", \"batch\", \"interval\", \"never\""),
        "{p}"
    );
    error_at(
        "mqtt: {storage: {durability: interval, syncInterval: 0}}",
        "mqtt.storage.syncInterval",
    );
    error_at(
        "mqtt: {storage: {batchMaxSize: 0}}",
        "mqtt.storage.batchMaxSize",
    );
    let loaded = load_yaml("mqtt: {storage: {durability: always, batchMaxDelay: 5}}");
    assert!(
        warning_at(&loaded, "mqtt.storage.batchMaxDelay")
            .message
            .contains("batch")
    );
}

#[test]
fn users_file_key() {
    assert_eq!(
        clean("authentication: {usersFile: ~/users.yaml}")
            .authentication
            .users_file,
        Path::new("/home/u/users.yaml")
    );
    // Harper's own authentication keys are ignored silently.
    clean("authentication: {authorizeLocal: true, cacheTTL: 30000}");
}

// --- unknown keys and wrong section types -----------------------------------------------------

#[test]
fn unknown_keys_inside_mqtt_are_warnings_naming_the_key_path() {
    let loaded = load_yaml(
        "mqtt:\n  prot: 1\n  network:\n    securport: 8884\n    mtls:\n      usr: x\n  cluster: {nodes: 3}\n",
    );
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    assert!(
        warning_at(&loaded, "mqtt.network.securport")
            .message
            .contains("did you mean mqtt.network.securePort")
    );
    warning_at(&loaded, "mqtt.prot");
    warning_at(&loaded, "mqtt.network.mtls.usr");
    warning_at(&loaded, "mqtt.cluster");
    assert_eq!(loaded.problems.len(), 4);
}

#[test]
fn keys_outside_mqtt_are_not_checked() {
    clean(
        "operationsApi: {network: {port: 9925}}\nrootPath: /srv/hdb\nstorage: {path: /srv/hdb/database}\nthreads: 4",
    );
}

#[test]
fn rejects_sections_that_are_not_mappings() {
    let p = error_at("mqtt: 5", "mqtt");
    assert!(p.message.contains("mapping"), "{p}");
    error_at("mqtt: {network: 1883}", "mqtt.network");
    error_at("http: 9926", "http");
    error_at("mqtt: {limits: [1]}", "mqtt.limits");
}

#[test]
fn reports_every_problem_at_once() {
    let loaded = load_yaml(
        "mqtt:\n  network:\n    port: 99999\n    mtls:\n      certificateVerification:\n        failureMode: maybe\n        \
         timeout: -1\n  requireAuthentication: perhaps\n  webSocket: true\n  loging: {}\n",
    );
    let errors: Vec<&str> = loaded.problems.errors().map(|p| p.key.as_str()).collect();
    assert_eq!(
        errors,
        vec![
            "mqtt.network.port",
            "mqtt.network.mtls.certificateVerification.timeout",
            "mqtt.network.mtls.certificateVerification.failureMode",
            "mqtt.requireAuthentication",
        ]
    );
    warning_at(&loaded, "mqtt.loging");
}

// --- overrides --------------------------------------------------------------------------------

#[test]
fn environment_overrides_match_key_paths_without_regard_to_case() {
    let loaded = load_full(
        "mqtt: {network: {port: 1883}}",
        &[
            ("MQTT_NETWORK_PORT", "1884"),
            ("MQTT_REQUIREAUTHENTICATION", "false"),
            ("TLS_CERTIFICATE", "~/k/c.pem"),
            ("tls_privatekey", "/k/k.pem"),
            ("MQTT_LIMITS_MAXINFLIGHT", "9"),
        ],
        &[],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let c = &loaded.config;
    assert_eq!(c.mqtt.network.port, all(1884));
    assert!(!c.mqtt.require_authentication);
    assert_eq!(c.tls.certificate, Some("/home/u/k/c.pem".into()));
    assert_eq!(c.tls.private_key, Some(PrivateKey::File("/k/k.pem".into())));
    assert_eq!(c.mqtt.limits.max_inflight.get(), 9);
    let keys: Vec<&str> = loaded.overrides.iter().map(|o| o.key).collect();
    assert!(
        keys.contains(&"mqtt.network.port") && keys.contains(&"tls.privateKey"),
        "{keys:?}"
    );
}

#[test]
fn command_line_beats_environment_beats_file() {
    let yaml =
        "mqtt: {network: {port: 1000, securePort: 2000}, webSocket: false}\nhttp: {port: 3000}";
    let loaded = load_full(
        yaml,
        &[
            ("MQTT_NETWORK_PORT", "1001"),
            ("MQTT_NETWORK_SECUREPORT", "2001"),
        ],
        &[("MQTT_NETWORK_PORT", "1002")],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    assert_eq!(loaded.config.mqtt.network.port, all(1002));
    assert_eq!(loaded.config.mqtt.network.secure_port, all(2001));
    assert_eq!(loaded.config.http.port, all(3000));
    assert!(!loaded.config.mqtt.web_socket);
}

#[test]
fn an_override_of_null_is_yaml_null() {
    let loaded = load_full(
        "mqtt: {network: {mtls: {user: alice}}}",
        &[("MQTT_NETWORK_MTLS_USER", "null")],
        &[],
    );
    assert_eq!(
        loaded.config.mqtt.network.mtls.expect("on").user,
        MtlsUser::CredentialsRequired
    );
    let loaded = load_full("", &[("MQTT_NETWORK_SECUREPORT", "null")], &[]);
    assert_eq!(loaded.config.mqtt.network.secure_port, None);
}

#[test]
fn overriding_an_mtls_key_turns_mtls_on() {
    let loaded = load_full(
        "mqtt: {network: {mtls: false}}",
        &[("MQTT_NETWORK_MTLS_REQUIRED", "true")],
        &[],
    );
    let m = loaded.config.mqtt.network.mtls.expect("on");
    assert!(m.required);
    let loaded = load_full(
        "",
        &[
            ("MQTT_NETWORK_MTLS", "true"),
            (
                "MQTT_NETWORK_MTLS_CERTIFICATEVERIFICATION_FAILUREMODE",
                "fail-closed",
            ),
        ],
        &[],
    );
    let m = loaded.config.mqtt.network.mtls.expect("on");
    assert_eq!(
        m.certificate_verification.map(|v| v.failure_mode),
        Some(FailureMode::FailClosed)
    );
}

#[test]
fn override_problems_name_their_origin() {
    let loaded = load_full("", &[("MQTT_NETWORK_PORT", "huge")], &[]);
    let p = loaded.problems.find("mqtt.network.port").expect("an error");
    assert_eq!(
        p.origin.as_deref(),
        Some("environment variable MQTT_NETWORK_PORT")
    );
    assert!(
        p.to_string()
            .contains("mqtt.network.port = \"huge\" (from environment variable MQTT_NETWORK_PORT)")
    );
    let loaded = load_full("", &[], &[("MQTT_NETWORK_PORT", "8883")]);
    let p = loaded
        .problems
        .find("mqtt.network.securePort")
        .expect("a clash");
    assert!(p.message.contains("mqtt.network.port"), "{p}");
    let p = loaded.problems.errors().next().expect("an error");
    assert!(p.origin.is_none() || p.origin.as_deref() == Some("command line --MQTT_NETWORK_PORT"));
}

#[test]
fn unknown_command_line_keys_are_errors_and_unknown_environment_is_ignored() {
    let loaded = load_full(
        "",
        &[("MQTT_NETWORK_PROT", "1")],
        &[("MQTT_NETWORK_PROT", "1")],
    );
    let errors: Vec<&Problem> = loaded.problems.errors().collect();
    assert_eq!(errors.len(), 1, "{}", loaded.problems);
    assert_eq!(
        errors[0].origin.as_deref(),
        Some("command line --MQTT_NETWORK_PROT")
    );
}

#[test]
fn warns_when_two_variables_set_one_key() {
    let loaded = load_full(
        "",
        &[("MQTT_NETWORK_PORT", "1884"), ("mqtt_network_port", "1885")],
        &[],
    );
    warning_at(&loaded, "mqtt.network.port");
}

// --- file handling and root -------------------------------------------------------------------

#[test]
fn malformed_yaml_is_a_load_error() {
    let err = load_text(
        Some("mqtt: [unclosed"),
        Some(Path::new("/x/c.yaml")),
        Path::new(ROOT),
        Vec::new(),
        Vec::new(),
    )
    .expect_err("bad YAML");
    assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("/x/c.yaml"), "{err}");
    let err = load_text(
        Some("- a\n- b\n"),
        None,
        Path::new(ROOT),
        Vec::new(),
        Vec::new(),
    )
    .expect_err("a list");
    assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
}

#[test]
fn a_named_file_that_is_missing_is_a_load_error() {
    let err = load(
        Some(Path::new("/nonexistent/harperdb-config.yaml")),
        Path::new(ROOT),
        Vec::new(),
        Vec::new(),
    )
    .expect_err("missing");
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
}

#[test]
fn root_comes_from_the_flag_then_rootpath_then_home() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let flag = Path::new("/flag");
    assert_eq!(
        resolve_root(Some(flag), env(&[("ROOTPATH", "/env")])).ok(),
        Some(PathBuf::from("/flag"))
    );
    assert_eq!(
        resolve_root(None, env(&[("ROOTPATH", "/env"), ("HOME", "/h")])).ok(),
        Some(PathBuf::from("/env"))
    );
    assert_eq!(
        resolve_root(None, env(&[("HOME", "/h")])).ok(),
        Some(PathBuf::from("/h/hdb"))
    );
    assert_eq!(
        resolve_root(Some(Path::new("~/x")), env(&[("HOME", "/h")])).ok(),
        Some(PathBuf::from("/h/x"))
    );
    assert!(matches!(
        resolve_root(None, env(&[])),
        Err(LoadError::NoHome)
    ));
    assert_eq!(
        default_config_file(Path::new("/h/hdb")),
        Path::new("/h/hdb/harperdb-config.yaml")
    );
}

// --- files ------------------------------------------------------------------------------------

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
    let c = clean("mqtt: {network: {mtls: true}}");
    assert!(c.check_files().is_empty());
}

// --- the effective configuration --------------------------------------------------------------

#[test]
fn the_effective_configuration_reads_back_as_itself() {
    let yaml = "mqtt:\n  network: {port: '127.0.0.1:1884', securePort: 0, mtls: {user: null, required: true, \
                certificateVerification: {failureMode: fail-closed}}}\n  logging: {path: /l/m.log, level: debug}\n  \
                limits: {maxPacketSize: null}\n  storage: {durability: interval}\nhttp: {securePort: 9443}\n\
                tls: {certificate: /k/c.pem, privateKey: /k/k.pem, certificateAuthority: /k/ca.pem}";
    for config in [Config::defaults(Path::new(ROOT)), load_yaml(yaml).config] {
        let shown = Value::serialize(&config).expect("serializes");
        let origins = BTreeMap::new();
        let mut reader = Reader::new(Path::new(ROOT), None, &origins);
        let mut again = Config::read(&mut reader, &Node::root(&shown));
        assert!(reader.problems.is_empty(), "{}", reader.problems);
        // Printed paths read back as configured ones; whether they were Harper's defaults is not printed.
        again.tls.origin = config.tls.origin;
        assert_eq!(again, config);
    }
}

#[test]
fn the_effective_configuration_uses_the_file_shapes() {
    let shown = Value::serialize(Config::defaults(Path::new(ROOT))).expect("serializes");
    let at = |path: &str| shown.find_ref(path).cloned();
    assert_eq!(
        at("mqtt.network.port").and_then(|v| v.to_u128()),
        Some(1883)
    );
    assert_eq!(
        at("mqtt.network.mtls").and_then(|v| v.to_bool()),
        Some(false)
    );
    assert_eq!(at("mqtt.webSocket").and_then(|v| v.to_bool()), Some(true));
    assert_eq!(
        at("mqtt.logging.tag").and_then(|v| v.into_string()),
        Some("mqtt".into())
    );
    assert_eq!(
        at("mqtt.limits.connectTimeout").and_then(|v| v.to_u128()),
        Some(10_000)
    );
    assert_eq!(
        at("mqtt.storage.durability").and_then(|v| v.into_string()),
        Some("batch".into())
    );
    assert_eq!(
        at("rootPath").and_then(|v| v.into_string()),
        Some(ROOT.into())
    );
}
