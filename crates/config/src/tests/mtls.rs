//! `mqtt.network.mtls` in all its shapes, and `certificateVerification`.

use super::*;

/// `mqtt.network.mtls` as read, asserting there is no problem but the one a snippet without a
/// `tls` section has when mTLS is on: no CA named (`rejects_mtls_whose_ca_would_be_the_generated_one`).
fn mtls_of(yaml: &str) -> Option<Mtls> {
    let loaded = load_yaml(yaml);
    let others: Problems = loaded
        .problems
        .iter()
        .filter(|p| !is_generated_ca_error(p))
        .cloned()
        .collect();
    assert!(others.is_empty(), "unexpected problems:\n{others}");
    loaded.config.mqtt.network.mtls
}

fn is_generated_ca_error(p: &Problem) -> bool {
    p.is_error()
        && p.key == "mqtt.network.mtls.certificateAuthority"
        && p.message.contains("the tls section names no file")
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
fn rejects_mtls_whose_ca_would_be_the_generated_one() {
    // No tls section: the mTLS CA would be `<root>/keys/ca.pem`, which the broker creates at
    // first start for its own server certificate and keeps no key of.
    for yaml in [
        "mqtt: {network: {mtls: true}}",
        "mqtt: {network: {mtls: {required: true}}}",
        "tls: {}\nmqtt: {network: {mtls: {user: null}}}",
        "mqtt: {network: {securePort: 0, mtls: true}, webSocket: true}\nhttp: {securePort: 9443}",
    ] {
        let p = error_at(yaml, "mqtt.network.mtls.certificateAuthority");
        assert!(is_generated_ca_error(&p), "{yaml}: {p}");
        for key in [
            "mqtt.network.mtls.certificateAuthority",
            "tls.certificateAuthority",
        ] {
            assert!(p.message.contains(key), "{yaml}: {p}");
        }
        assert!(
            p.message
                .contains(&root("keys/ca.pem").display().to_string()),
            "{p}"
        );
    }
}

#[test]
fn mtls_with_a_ca_of_its_own_or_from_a_configured_tls_section_is_fine() {
    clean("mqtt: {network: {mtls: {certificateAuthority: /k/clients.pem}}}");
    // Named under mtls even at the default path: the operator's file (check_files wants it).
    clean(&format!(
        "mqtt: {{network: {{mtls: {{certificateAuthority: {}}}}}}}",
        root("keys/ca.pem").display()
    ));
    clean(
        "tls: {certificate: /k/cert.pem, privateKey: /k/key.pem, certificateAuthority: /k/ca.pem}\n\
         mqtt: {network: {mtls: true}}",
    );
    // No TLS listener: mTLS has no effect, which is a warning of its own.
    let loaded = load_yaml("mqtt: {network: {securePort: 0, mtls: true}}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
}

#[test]
fn mtls_ca_source_says_which_key_named_it() {
    let m = mtls_of("mqtt: {network: {mtls: {certificateAuthority: /k/clients.pem}}}").expect("on");
    assert_eq!(m.certificate_authority_source, CaSource::Mtls);
    let m = mtls_of("mqtt: {network: {mtls: true}}").expect("on");
    assert_eq!(m.certificate_authority_source, CaSource::Tls);
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
    assert!(
        !loaded
            .problems
            .iter()
            .any(|p| p.is_error() && !is_generated_ca_error(p))
    );
    clean(
        "mqtt: {webSocket: false, network: {port: 0, mtls: {required: true, certificateAuthority: /k/ca.pem}}}",
    );
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
