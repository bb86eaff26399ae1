//! The log settings: the top-level `logging` section (Harper's main log) and `mqtt.logging`.
//!
//! `mqtt.logging` absent means MQTT logs go to the main log with the tag `mqtt`. When present, its
//! keys override the main log's: `path` (a file), else `root` (the file `<root>/hdb.log`), else the
//! main log file; `level` and `stdStreams` default to the main log's; `tag` defaults to `mqtt` when
//! the file is the main log's and to no tag otherwise (`tag: null` turns it off).
//! `rotation` is accepted but not implemented yet (a warning says so).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::read::{Node, Reader};
use crate::rotation::Rotation;

/// A log level, as Harper names them, from most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Everything.
    Trace,
    /// Per-packet detail.
    Debug,
    /// Connections and other normal events.
    Info,
    /// Degraded states, authentication failures (the default).
    Warn,
    /// Faults an operator must act on.
    Error,
    /// Faults that stop the broker.
    Fatal,
    /// Only notices that are always shown (start-up, shutdown).
    Notify,
}

impl Level {
    /// Every level with its name, for parsing and messages.
    pub const ALL: [(&'static str, Level); 7] = [
        ("notify", Level::Notify),
        ("fatal", Level::Fatal),
        ("error", Level::Error),
        ("warn", Level::Warn),
        ("info", Level::Info),
        ("debug", Level::Debug),
        ("trace", Level::Trace),
    ];

    /// The level's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
            Level::Notify => "notify",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and what to log, with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    /// The log file.
    pub path: PathBuf,
    /// The least severe level written.
    pub level: Level,
    /// Prefix of every line, written `[tag]`; `None` for no prefix.
    pub tag: Option<String>,
    /// Also write to stdout (and warnings and errors to stderr).
    pub std_streams: bool,
    /// When the file is rotated.
    pub rotation: Rotation,
}

/// The tag MQTT lines carry in the main log.
pub const MQTT_TAG: &str = "mqtt";

impl Logging {
    /// Reads the top-level `logging` section: `level` (warn), `root` (`<root>/log`), `path`
    /// (`<logging.root>/hdb.log`), `stdStreams` (false), `rotation` (Harper's defaults). Harper's
    /// other keys are ignored.
    pub(crate) fn read_main(r: &mut Reader<'_>, node: &Node<'_>) -> Logging {
        let node = r.enter(node.clone());
        let dir = r
            .path(&node.child("root"))
            .or_else_with(|| r.root.join("log"));
        Logging {
            path: r.path(&node.child("path")).or(dir.join("hdb.log")),
            level: r.choice(&node.child("level"), &Level::ALL).or(Level::Warn),
            tag: None,
            std_streams: r.bool(&node.child("stdStreams")).or(false),
            rotation: Rotation::read(r, &node.child("rotation"), &Rotation::default()),
        }
    }

    /// Reads `mqtt.logging` on top of the main log's settings.
    pub(crate) fn read_mqtt(r: &mut Reader<'_>, node: &Node<'_>, main: &Logging) -> Logging {
        if !r.section(node) {
            return Logging {
                tag: Some(MQTT_TAG.to_owned()),
                ..main.clone()
            };
        }
        let from_root = r
            .path(&node.child("root"))
            .ok()
            .map(|dir| dir.join("hdb.log"));
        let path = r
            .path(&node.child("path"))
            .ok()
            .or(from_root)
            .unwrap_or_else(|| main.path.clone());
        let default_tag = (path == main.path).then(|| MQTT_TAG.to_owned());
        let tag = r
            .string(&node.child("tag"), "a tag string or null")
            .nullable(default_tag);
        Logging {
            path,
            level: r.choice(&node.child("level"), &Level::ALL).or(main.level),
            tag,
            std_streams: r.bool(&node.child("stdStreams")).or(main.std_streams),
            rotation: Rotation::read(r, &node.child("rotation"), &main.rotation),
        }
    }
}
