//! Harper's `logging.rotation` (and `mqtt.logging.rotation`): when the log file is renamed aside
//! and a fresh one started, so that one log file cannot fill the disk.
//!
//! Keys and defaults are Harper's: `enabled: true`, `maxSize: 64M`, `interval: null`,
//! `compress: false`, `path: null`. `maxSize` takes a number with a unit `K`, `M` or `G` (1024
//! based; a plain integer counts bytes); `interval` a number with a unit `D` (days), `H` (hours)
//! or `M` (minutes). `mqtt.logging.rotation` takes each key it does not set from
//! `logging.rotation`. `rotation: false` is `enabled: false`. `compress: true` is accepted with a
//! warning: this build has no gzip, so rotated files stay uncompressed.

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use figment::value::Value;
use serde::{Serialize, Serializer};

use crate::read::{Node, Read, Reader, as_bool, as_integer};

/// How the log file is rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// `enabled`: rotate at all. Default true.
    pub enabled: bool,
    /// `maxSize`: rotate before a line would take the file past this many bytes; `None` (`null`)
    /// for no size limit. Default 64 MiB.
    #[serde(serialize_with = "size")]
    pub max_size: Option<NonZeroU64>,
    /// `interval`: rotate once this much time has passed since the file was opened or last
    /// rotated; `None` (`null`, the default) for no time-based rotation.
    #[serde(serialize_with = "interval")]
    pub interval: Option<Duration>,
    /// `compress`: gzip rotated files. Not supported by this build (a warning says so). Default false.
    pub compress: bool,
    /// `path`: the directory rotated files go to; `None` (`null`, the default) for the log
    /// file's own directory.
    pub path: Option<PathBuf>,
}

/// The smallest `maxSize`: below it, rotated files would pile up faster than anyone reads them.
pub const MIN_ROTATION_SIZE: u64 = 1024;

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            enabled: true,
            max_size: NonZeroU64::new(64 << 20),
            interval: None,
            compress: false,
            path: None,
        }
    }
}

const SIZE_ALLOWED: &str = "expected a size with a unit, K, M or G (1024 based), such as 64M, \
                            or a whole number of bytes; at least 1K; or null for no size limit";
const INTERVAL_ALLOWED: &str = "expected a number with a unit, D (days), H (hours) or M (minutes), \
                                such as 1D or 12H; or null for no time-based rotation";

impl Rotation {
    /// Reads a `rotation` key, taking what it does not set from `inherited`.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node<'_>, inherited: &Rotation) -> Rotation {
        match node.value {
            None | Some(Value::Empty(..)) => return inherited.clone(),
            Some(Value::Dict(..)) => {}
            Some(v) => {
                if let Some(enabled) = as_bool(v) {
                    return Rotation {
                        enabled,
                        ..inherited.clone()
                    };
                }
                r.error(
                    node,
                    "expected a mapping (enabled, maxSize, interval, compress, path), or true/false",
                );
                return inherited.clone();
            }
        }
        let compress_node = node.child("compress");
        let rotation = Rotation {
            enabled: r.bool(&node.child("enabled")).or(inherited.enabled),
            max_size: read_size(r, &node.child("maxSize")).nullable(inherited.max_size),
            interval: read_interval(r, &node.child("interval")).nullable(inherited.interval),
            compress: r.bool(&compress_node).or(inherited.compress),
            path: r.path(&node.child("path")).nullable(inherited.path.clone()),
        };
        if rotation.enabled && rotation.compress && !compress_node.is_unset() {
            r.warn(
                &compress_node,
                "not supported: this build has no gzip, so rotated log files are kept uncompressed",
            );
        }
        if rotation.enabled && rotation.max_size.is_none() && rotation.interval.is_none() {
            r.warn(
                node,
                "enabled, but neither maxSize nor interval is set: the log file is never rotated",
            );
        }
        rotation
    }
}

fn read_size(r: &mut Reader<'_>, node: &Node<'_>) -> Read<NonZeroU64> {
    let value = match node.value {
        None => return Read::Absent,
        Some(Value::Empty(..)) => return Read::Null,
        Some(v) => v,
    };
    match parse_size(value).filter(|n| *n >= MIN_ROTATION_SIZE) {
        Some(n) => NonZeroU64::new(n).map_or(Read::Invalid, Read::Value),
        None => {
            r.error(node, SIZE_ALLOWED);
            Read::Invalid
        }
    }
}

/// Bytes from `64M`, `512k`, `1G`, `10MB` or a plain number of bytes.
fn parse_size(value: &Value) -> Option<u64> {
    if let Some(n) = as_integer(value) {
        return u64::try_from(n).ok();
    }
    let text = value.as_str()?.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

fn read_interval(r: &mut Reader<'_>, node: &Node<'_>) -> Read<Duration> {
    let value = match node.value {
        None => return Read::Absent,
        Some(Value::Empty(..)) => return Read::Null,
        Some(v) => v,
    };
    match parse_interval(value) {
        Some(d) if !d.is_zero() => Read::Value(d),
        _ => {
            r.error(node, INTERVAL_ALLOWED);
            Read::Invalid
        }
    }
}

/// A duration from Harper's `1D`, `12H`, `30M` (any case).
fn parse_interval(value: &Value) -> Option<Duration> {
    let text = value.as_str()?.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "D" => 86_400,
        "H" => 3_600,
        "M" => 60,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// `maxSize` as written: `64M` when it is a whole number of a unit, else bytes.
fn size<S: Serializer>(size: &Option<NonZeroU64>, s: S) -> Result<S::Ok, S::Error> {
    let Some(bytes) = size.map(NonZeroU64::get) else {
        return s.serialize_none();
    };
    match [(30, 'G'), (20, 'M'), (10, 'K')]
        .into_iter()
        .find(|(shift, _)| bytes % (1 << shift) == 0)
    {
        Some((shift, unit)) => s.collect_str(&format_args!("{}{unit}", bytes >> shift)),
        None => s.serialize_u64(bytes),
    }
}

/// `interval` as written: whole days, hours or minutes (`1D`, `12H`, `90M`).
fn interval<S: Serializer>(interval: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    let Some(secs) = interval.map(|d| d.as_secs()) else {
        return s.serialize_none();
    };
    let (n, unit) = match secs {
        _ if secs % 86_400 == 0 => (secs / 86_400, 'D'),
        _ if secs % 3_600 == 0 => (secs / 3_600, 'H'),
        _ => (secs / 60, 'M'),
    };
    s.collect_str(&format_args!("{n}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn reads_sizes_with_harpers_units() {
        assert_eq!(parse_size(&text("64M")), Some(64 << 20));
        assert_eq!(parse_size(&text("512k")), Some(512 << 10));
        assert_eq!(parse_size(&text("1G")), Some(1 << 30));
        assert_eq!(parse_size(&text("10MB")), Some(10 << 20));
        assert_eq!(parse_size(&text("2048")), Some(2048));
        assert_eq!(parse_size(&Value::from(4096)), Some(4096));
        assert_eq!(parse_size(&text("64T")), None);
        assert_eq!(parse_size(&text("M")), None);
        assert_eq!(parse_size(&text("-1M")), None);
        assert_eq!(parse_size(&text("99999999999999G")), None);
    }

    #[test]
    fn reads_intervals_with_harpers_units() {
        assert_eq!(
            parse_interval(&text("1D")),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_interval(&text("12h")),
            Some(Duration::from_secs(43_200))
        );
        assert_eq!(
            parse_interval(&text("30M")),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(parse_interval(&text("30s")), None);
        assert_eq!(parse_interval(&Value::from(60)), None);
    }
}
