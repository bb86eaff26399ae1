//! The files the broker creates hold messages, user names and password hashes: the real binary,
//! started on a fresh root, creates its log, its store and its users file readable by its own
//! user only (files 0600, the directories it creates 0700), and leaves existing directories alone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The permission bits of `path`, in octal.
fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

#[test]
fn the_log_the_store_and_the_users_file_are_the_brokers_users_alone() {
    let root = std::env::temp_dir().join(format!("server-file-modes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("the root");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A log file two directories down, which the broker creates; the store at its default
    // `<root>/mqtt-data`; the users file created at first start for the super user.
    std::fs::write(
        root.join("harperdb-config.yaml"),
        "mqtt:\n  logging:\n    path: ~/logs/mqtt/mqtt.log\n    level: info\n    stdStreams: true\n",
    )
    .expect("the config file");
    let started = common::start(
        &root,
        &[
            ("MQTT_NETWORK_PORT", "127.0.0.1:0"),
            ("MQTT_NETWORK_SECUREPORT", "0"),
            ("MQTT_WEBSOCKET", "false"),
            ("HDB_ADMIN_USERNAME", "admin"),
            ("HDB_ADMIN_PASSWORD", "secret"),
        ],
        Stdio::inherit(),
    );
    let mut child = started.child;
    // The banner comes before the store opens; the log (on stdout too) says when it has.
    let opened = started
        .lines
        .map_while(Result::ok)
        .any(|line| line.contains("store opened"));
    assert!(opened, "the broker stopped before opening its store");
    let names = [
        "logs",
        "logs/mqtt",
        "logs/mqtt/mqtt.log",
        "mqtt-data",
        "mqtt-data/mqtt.redb",
        "users.yaml",
    ];
    let modes = names.map(|name| (name, mode(&root.join(name))));
    let root_mode = mode(&root);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&root);

    assert_eq!(
        modes.map(|(name, mode)| format!("{name} {mode}")),
        [
            "logs 700",
            "logs/mqtt 700",
            "logs/mqtt/mqtt.log 600",
            "mqtt-data 700",
            "mqtt-data/mqtt.redb 600",
            "users.yaml 600",
        ]
    );
    assert_eq!(root_mode, "755", "an existing directory is left alone");
}
