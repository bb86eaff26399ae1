//! Every key, default and error, read through the loader as the broker reads them. Shared helpers
//! and the defaults are here; each other file covers one part of the configuration.

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

mod effective;
mod http;
mod listeners;
mod logging;
mod mtls;
mod overrides;
mod sections;
mod tls;

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
        // Harper's defaults.
        rotation: Rotation {
            enabled: true,
            max_size: std::num::NonZeroU64::new(64 * 1024 * 1024),
            interval: None,
            compress: false,
            path: None,
        },
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
            path: Some(root("mqtt-data")),
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
