//! `mqtt.storage`: where the broker keeps retained messages, sessions and queued messages, and how
//! hard it tries to get them to disk (our addition).
//!
//! The section lives under `mqtt`, not at the top level: Harper's own top-level `storage` section
//! (its database directory, `storage.path`) is in every `harperdb-config.yaml`, and MQTT data must
//! not land in Harper's database directory.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::read::{Node, Reader};

/// `mqtt.storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// `path`: the data directory. Default `<root>/mqtt-data`; `null` keeps everything in memory
    /// (nothing survives a restart).
    pub path: Option<PathBuf>,
    /// When writes reach the disk: `durability` and its tuning keys.
    pub durability: Durability,
}

/// `mqtt.storage.durability`: when an acknowledged change is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `always`: every change is synced before it is acknowledged.
    Always,
    /// `batch` (default): changes arriving together are synced together before any of them is
    /// acknowledged (group commit).
    Batch {
        /// `batchMaxDelay`: the longest a change waits for others to join its batch. Default 2 ms.
        max_delay: Duration,
        /// `batchMaxSize`: the most changes to write in one batch (changes that cancel out
        /// within the batch do not count). Default 1024.
        max_size: NonZeroU32,
    },
    /// `interval`: changes are synced every `syncInterval` (default 1000 ms) and acknowledged before
    /// that; a crash can lose up to one interval of acknowledged changes.
    Interval(Duration),
    /// `never`: the operating system decides when to write; a power loss can lose anything recent.
    Never,
}

impl Durability {
    /// The default `batchMaxDelay`.
    pub const DEFAULT_BATCH_MAX_DELAY: Duration = Duration::from_millis(2);

    /// The default `batchMaxSize`.
    pub const DEFAULT_BATCH_MAX_SIZE: NonZeroU32 = NonZeroU32::new(1024).expect("1024 is not zero");

    /// The default `syncInterval` for `interval`.
    pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(1000);

    /// The policy's name as written in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Batch { .. } => "batch",
            Durability::Interval(_) => "interval",
            Durability::Never => "never",
        }
    }
}

impl Default for Durability {
    /// `batch` with its default settings.
    fn default() -> Self {
        Durability::Batch {
            max_delay: Durability::DEFAULT_BATCH_MAX_DELAY,
            max_size: Durability::DEFAULT_BATCH_MAX_SIZE,
        }
    }
}

/// The policy names, without their settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Always,
    Batch,
    Interval,
    Never,
}

impl Storage {
    /// Reads `mqtt.storage`.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node<'_>) -> Storage {
        let node = r.enter(node.clone());
        let default = r.root.join("mqtt-data");
        let path = r.path(&node.child("path")).nullable(Some(default));
        let policy = r
            .choice(
                &node.child("durability"),
                &[
                    ("always", Policy::Always),
                    ("batch", Policy::Batch),
                    ("interval", Policy::Interval),
                    ("never", Policy::Never),
                ],
            )
            .or(Policy::Batch);
        let delay_node = node.child("batchMaxDelay");
        let size_node = node.child("batchMaxSize");
        let interval_node = node.child("syncInterval");
        let max_delay = r
            .duration(&delay_node, true)
            .or(Durability::DEFAULT_BATCH_MAX_DELAY);
        let max_size = r
            .positive(&size_node, u64::from(u32::MAX))
            .or(Durability::DEFAULT_BATCH_MAX_SIZE);
        let interval = r
            .duration(&interval_node, false)
            .or(Durability::DEFAULT_SYNC_INTERVAL);
        for (key, used_by) in [
            (&delay_node, Policy::Batch),
            (&size_node, Policy::Batch),
            (&interval_node, Policy::Interval),
        ] {
            if !key.is_unset() && policy != used_by {
                let name = if used_by == Policy::Batch {
                    "batch"
                } else {
                    "interval"
                };
                r.warn(
                    key,
                    format!("has no effect unless mqtt.storage.durability is {name}"),
                );
            }
        }
        let durability = match policy {
            Policy::Always => Durability::Always,
            Policy::Batch => Durability::Batch {
                max_delay,
                max_size,
            },
            Policy::Interval => Durability::Interval(interval),
            Policy::Never => Durability::Never,
        };
        Storage { path, durability }
    }
}

impl Serialize for Storage {
    /// Flat, as written in the file: `path`, `durability` and the settings of that policy.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("path", &self.path)?;
        map.serialize_entry("durability", self.durability.name())?;
        match self.durability {
            Durability::Batch {
                max_delay,
                max_size,
            } => {
                map.serialize_entry("batchMaxDelay", &Millis(max_delay))?;
                map.serialize_entry("batchMaxSize", &max_size)?;
            }
            Durability::Interval(every) => map.serialize_entry("syncInterval", &Millis(every))?,
            Durability::Always | Durability::Never => {}
        }
        map.end()
    }
}

/// A duration serialized as milliseconds.
struct Millis(Duration);

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::ser::millis(&self.0, s)
    }
}
