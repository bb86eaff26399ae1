//! Environment and command-line overrides, precedence, the file itself and the root directory.

use super::*;

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
