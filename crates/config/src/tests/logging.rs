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
