//! Our additions (`mqtt.limits`, `mqtt.storage`, `authentication.usersFile`), unknown keys and
//! sections of the wrong type.

use super::*;

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
    assert_eq!(l.connection_rate_per_ip, None, "off by default");
}

#[test]
fn connection_rate_per_ip() {
    let l = clean("mqtt: {limits: {connectionRatePerIp: 20}}")
        .mqtt
        .limits;
    assert_eq!(l.connection_rate_per_ip, NonZeroU32::new(20));
    error_at(
        "mqtt: {limits: {connectionRatePerIp: -1}}",
        "mqtt.limits.connectionRatePerIp",
    );
}

#[test]
fn handshake_limits_and_their_defaults() {
    let d = Limits::default();
    assert_eq!(d.max_handshakes, NonZeroU32::new(1024));
    assert_eq!(d.max_handshakes_per_address, NonZeroU32::new(128));
    assert_eq!(d.handshake_timeout, Duration::from_secs(5));
    let l = clean(
        "mqtt: {limits: {maxHandshakes: 2000, maxHandshakesPerAddress: '16', handshakeTimeout: 1500ms}}",
    )
    .mqtt
    .limits;
    assert_eq!(l.max_handshakes, NonZeroU32::new(2000));
    assert_eq!(l.max_handshakes_per_address, NonZeroU32::new(16));
    assert_eq!(l.handshake_timeout, Duration::from_millis(1500));
    let l = clean("mqtt: {limits: {maxHandshakes: null, maxHandshakesPerAddress: null}}")
        .mqtt
        .limits;
    assert_eq!(
        (l.max_handshakes, l.max_handshakes_per_address),
        (None, None)
    );
    let loaded = load_full(
        "",
        &[
            ("MQTT_LIMITS_MAXHANDSHAKESPERADDRESS", "4"),
            ("MQTT_LIMITS_HANDSHAKETIMEOUT", "2s"),
        ],
        &[("MQTT_LIMITS_MAXHANDSHAKES", "64")],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let l = loaded.config.mqtt.limits;
    assert_eq!(l.max_handshakes, NonZeroU32::new(64));
    assert_eq!(l.max_handshakes_per_address, NonZeroU32::new(4));
    assert_eq!(l.handshake_timeout, Duration::from_secs(2));
}

#[test]
fn rejects_bad_handshake_limits_and_warns_about_useless_ones() {
    error_at(
        "mqtt: {limits: {maxHandshakes: 0}}",
        "mqtt.limits.maxHandshakes",
    );
    error_at(
        "mqtt: {limits: {maxHandshakesPerAddress: -3}}",
        "mqtt.limits.maxHandshakesPerAddress",
    );
    error_at(
        "mqtt: {limits: {handshakeTimeout: 0}}",
        "mqtt.limits.handshakeTimeout",
    );
    error_at(
        "mqtt: {limits: {handshakeTimeout: soon}}",
        "mqtt.limits.handshakeTimeout",
    );
    let loaded = load_yaml("mqtt: {limits: {handshakeTimeout: 20s}}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    assert!(
        warning_at(&loaded, "mqtt.limits.handshakeTimeout")
            .message
            .contains("connectTimeout")
    );
    let loaded = load_yaml("mqtt: {limits: {maxHandshakes: 10, maxHandshakesPerAddress: 20}}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    warning_at(&loaded, "mqtt.limits.maxHandshakesPerAddress");
    // A shorter connectTimeout alone is no problem: it ends handshakes too.
    clean("mqtt: {limits: {connectTimeout: 2s}}");
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
            path: Some("/home/u/data".into()),
            durability: Durability::Always
        }
    );
    assert_eq!(
        clean("mqtt: {storage: {path: null}}").mqtt.storage.path,
        None,
        "null keeps everything in memory"
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
        Some(root("data"))
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

#[test]
fn unknown_keys_inside_mqtt_are_warnings_naming_the_key_path() {
    let loaded = load_yaml(
        "mqtt:\n  prot: 1\n  network:\n    securport: 8884\n    mtls:\n      usr: x\n      certificateAuthority: /k/ca.pem\n  \
         cluster: {nodes: 3}\n",
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
            // mTLS with no tls section: its CA would be the one the broker generates.
            "mqtt.network.mtls.certificateAuthority",
        ]
    );
    warning_at(&loaded, "mqtt.loging");
}

#[test]
fn per_client_and_retained_limits() {
    let d = Limits::default();
    assert_eq!(d.max_subscriptions_per_client, NonZeroU32::new(10_000));
    assert_eq!(d.max_queued_bytes, std::num::NonZeroU64::new(64 << 20));
    assert_eq!(d.max_retained_messages, NonZeroU32::new(1_000_000));
    assert_eq!(d.max_retained_bytes, std::num::NonZeroU64::new(1 << 30));
    assert_eq!(d.max_session_expiry, Some(Duration::from_secs(86_400)));
    let l = clean(
        "mqtt:\n  limits:\n    maxSubscriptionsPerClient: 50\n    maxQueuedBytes: null\n    \
         maxRetainedMessages: 9\n    maxRetainedBytes: 4096\n    maxSessionExpiry: 2h\n",
    )
    .mqtt
    .limits;
    assert_eq!(l.max_subscriptions_per_client, NonZeroU32::new(50));
    assert_eq!(l.max_queued_bytes, None, "null: no limit");
    assert_eq!(l.max_retained_messages, NonZeroU32::new(9));
    assert_eq!(l.max_retained_bytes, std::num::NonZeroU64::new(4096));
    assert_eq!(l.max_session_expiry, Some(Duration::from_secs(7200)));
    // From the environment too, with no "unknown key" warning.
    let loaded = load_full(
        "",
        &[
            ("MQTT_LIMITS_MAXQUEUEDBYTES", "1000"),
            ("MQTT_LIMITS_MAXSESSIONEXPIRY", "null"),
        ],
        &[],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let l = loaded.config.mqtt.limits;
    assert_eq!(l.max_queued_bytes, std::num::NonZeroU64::new(1000));
    assert_eq!(l.max_session_expiry, None);
    error_at(
        "mqtt: {limits: {maxSessionExpiry: 1500ms}}",
        "mqtt.limits.maxSessionExpiry",
    );
    error_at(
        "mqtt: {limits: {maxSubscriptionsPerClient: 0}}",
        "mqtt.limits.maxSubscriptionsPerClient",
    );
}
