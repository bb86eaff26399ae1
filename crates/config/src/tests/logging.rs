//! The top-level `logging` section and `mqtt.logging`.

use super::*;

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
            std_streams: true,
            rotation: Rotation::default(),
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
            std_streams: true,
            rotation: Rotation::default(),
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
            std_streams: false,
            rotation: Rotation::default(),
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
            std_streams: true,
            rotation: Rotation::default(),
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

fn rotation(enabled: bool, max_size: Option<u64>, interval: Option<u64>) -> Rotation {
    Rotation {
        enabled,
        max_size: max_size.and_then(std::num::NonZeroU64::new),
        interval: interval.map(Duration::from_secs),
        compress: false,
        path: None,
    }
}

#[test]
fn rotation_keys_are_harpers_with_harpers_defaults() {
    let c = clean("logging: {rotation: {maxSize: 10M, interval: 1D, path: rotated}}");
    assert_eq!(
        c.logging.rotation,
        Rotation {
            path: Some(root("rotated")),
            ..rotation(true, Some(10 << 20), Some(86_400))
        }
    );
    // mqtt.logging takes what it does not set from logging.rotation.
    assert_eq!(c.mqtt.logging.rotation, c.logging.rotation);
    let c = clean(
        "logging: {rotation: {maxSize: 10M, interval: 12h}}
mqtt: {logging: {rotation: {maxSize: 512K}}}",
    );
    assert_eq!(
        c.mqtt.logging.rotation,
        rotation(true, Some(512 << 10), Some(43_200))
    );
    assert_eq!(
        clean("mqtt: {logging: {rotation: {interval: 30M, maxSize: null}}}")
            .mqtt
            .logging
            .rotation,
        rotation(true, None, Some(1800))
    );
    // `false` and `enabled: false` turn it off; `true` keeps the defaults.
    assert!(
        !clean("mqtt: {logging: {rotation: false}}")
            .mqtt
            .logging
            .rotation
            .enabled
    );
    assert!(
        !clean("logging: {rotation: {enabled: 'false'}}")
            .mqtt
            .logging
            .rotation
            .enabled
    );
    assert_eq!(
        clean("logging: {rotation: true}").logging.rotation,
        Rotation::default()
    );
}

#[test]
fn rotation_is_set_from_the_environment() {
    let loaded = load_full(
        "",
        &[
            ("LOGGING_ROTATION_MAXSIZE", "2M"),
            ("LOGGING_ROTATION_INTERVAL", "2H"),
            ("MQTT_LOGGING_ROTATION_PATH", "/var/log/old"),
            ("mqtt_logging_rotation_enabled", "true"),
        ],
        &[],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    assert_eq!(
        loaded.config.logging.rotation,
        rotation(true, Some(2 << 20), Some(7200))
    );
    assert_eq!(
        loaded.config.mqtt.logging.rotation,
        Rotation {
            path: Some("/var/log/old".into()),
            ..rotation(true, Some(2 << 20), Some(7200))
        }
    );
    let loaded = load_full("", &[("MQTT_LOGGING_ROTATION_MAXSIZE", "lots")], &[]);
    let p = loaded
        .problems
        .errors()
        .find(|p| p.key == "mqtt.logging.rotation.maxSize")
        .expect("an error naming the key");
    assert_eq!(
        p.origin.as_deref(),
        Some("environment variable MQTT_LOGGING_ROTATION_MAXSIZE")
    );
}

#[test]
fn rejects_bad_rotation_values_naming_the_key() {
    for bad in ["64T", "0", "100", "-1M", "big", "true"] {
        let p = error_at(
            &format!("logging: {{rotation: {{maxSize: '{bad}'}}}}"),
            "logging.rotation.maxSize",
        );
        assert!(p.message.contains("K, M or G"), "{p}");
    }
    for bad in ["1W", "0D", "30s", "60"] {
        let p = error_at(
            &format!("mqtt: {{logging: {{rotation: {{interval: '{bad}'}}}}}}"),
            "mqtt.logging.rotation.interval",
        );
        assert!(
            p.message.contains("D (days), H (hours) or M (minutes)"),
            "{p}"
        );
    }
    error_at(
        "mqtt: {logging: {rotation: {enabled: maybe}}}",
        "mqtt.logging.rotation.enabled",
    );
    error_at("logging: {rotation: 5}", "logging.rotation");
    error_at(
        "mqtt: {logging: {rotation: {path: 5}}}",
        "mqtt.logging.rotation.path",
    );
    let loaded = load_yaml("mqtt: {logging: {rotation: {unknown: 1}}}");
    warning_at(&loaded, "mqtt.logging.rotation.unknown");
}

#[test]
fn rotation_warns_about_compress_and_about_rotating_never() {
    let loaded = load_yaml("logging: {rotation: {compress: true}}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    let p = warning_at(&loaded, "logging.rotation.compress");
    assert!(p.message.contains("uncompressed"), "{p}");
    assert!(loaded.config.logging.rotation.compress);
    let loaded = load_yaml("mqtt: {logging: {rotation: {maxSize: null}}}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    let p = warning_at(&loaded, "mqtt.logging.rotation");
    assert!(p.message.contains("never rotated"), "{p}");
    clean("mqtt: {logging: {rotation: {enabled: false, maxSize: null}}}");
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
