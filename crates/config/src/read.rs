//! The reader that turns the merged figment tree into typed values, one key at a time, recording a
//! [`Problem`] for every value it cannot use instead of stopping at the first.
//!
//! Harper accepts `"true"`/`"false"` and numeric strings wherever a boolean or a number is expected
//! (and environment overrides are always strings), so every scalar reader here does too.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::error::Actual;
use figment::value::Value;

use crate::problem::{Problem, Problems, Severity};

/// A key in the tree: its dotted path and its value, `None` when the key is absent.
#[derive(Debug, Clone)]
pub(crate) struct Node<'v> {
    /// Dotted key path, e.g. `mqtt.network.port`.
    pub path: String,
    /// The value, `None` when absent.
    pub value: Option<&'v Value>,
}

impl<'v> Node<'v> {
    /// The top of a tree (the whole merged document).
    pub fn root(tree: &'v Value) -> Node<'v> {
        Node {
            path: String::new(),
            value: Some(tree),
        }
    }

    /// The child `key` of this node; absent when this node is absent or not a mapping.
    pub fn child(&self, key: &str) -> Node<'v> {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        let value = match self.value {
            Some(Value::Dict(_, dict)) => dict.get(key),
            _ => None,
        };
        Node { path, value }
    }

    /// True when the key is absent or explicitly `null`.
    pub fn is_unset(&self) -> bool {
        matches!(self.value, None | Some(Value::Empty(..)))
    }
}

/// The outcome of reading one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read<T> {
    /// The key is not there.
    Absent,
    /// The key is there with `null`.
    Null,
    /// A usable value.
    Value(T),
    /// A value that could not be used; a problem was recorded.
    Invalid,
}

impl<T> Read<T> {
    /// The value, or `default` when absent, null or invalid.
    pub fn or(self, default: T) -> T {
        match self {
            Read::Value(v) => v,
            Read::Absent | Read::Null | Read::Invalid => default,
        }
    }

    /// The value, or the result of `default` when absent, null or invalid.
    pub fn or_else_with(self, default: impl FnOnce() -> T) -> T {
        match self {
            Read::Value(v) => v,
            Read::Absent | Read::Null | Read::Invalid => default(),
        }
    }

    /// The value; `None` for null; `default` when absent or invalid.
    pub fn nullable(self, default: Option<T>) -> Option<T> {
        match self {
            Read::Value(v) => Some(v),
            Read::Null => None,
            Read::Absent | Read::Invalid => default,
        }
    }

    /// The value, or `None` when absent, null or invalid.
    pub fn ok(self) -> Option<T> {
        match self {
            Read::Value(v) => Some(v),
            Read::Absent | Read::Null | Read::Invalid => None,
        }
    }
}

/// Reads typed values out of [`Node`]s and collects the problems.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    /// Everything found so far.
    pub problems: Problems,
    /// Where overridden keys came from (`environment variable X`), by dotted key path.
    origins: &'a BTreeMap<String, String>,
    /// The home directory for `~`, when known.
    home: Option<&'a Path>,
    /// The root directory; relative paths are taken relative to it.
    pub root: &'a Path,
}

impl<'a> Reader<'a> {
    /// A reader with no problems yet.
    pub fn new(
        root: &'a Path,
        home: Option<&'a Path>,
        origins: &'a BTreeMap<String, String>,
    ) -> Self {
        Reader {
            problems: Problems::default(),
            origins,
            home,
            root,
        }
    }

    /// Records an error about the value at `node`.
    pub fn error(&mut self, node: &Node<'_>, message: impl Into<String>) {
        self.report(Severity::Error, node, message);
    }

    /// Records a warning about the value at `node`.
    pub fn warn(&mut self, node: &Node<'_>, message: impl Into<String>) {
        self.report(Severity::Warning, node, message);
    }

    fn report(&mut self, severity: Severity, node: &Node<'_>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity,
            key: node.path.clone(),
            value: node.value.map(render),
            message: message.into(),
            origin: self.origin(&node.path),
        });
    }

    fn origin(&self, path: &str) -> Option<String> {
        origin_of(self.origins, path)
    }

    /// A section: `true` when `node` is a mapping, `false` when absent or null. Anything else is an
    /// error, and the section's keys then take their defaults.
    pub fn section(&mut self, node: &Node<'_>) -> bool {
        match node.value {
            Some(Value::Dict(..)) => true,
            None | Some(Value::Empty(..)) => false,
            Some(_) => {
                self.error(node, "expected a mapping of keys");
                false
            }
        }
    }

    /// `node` when it is a mapping; otherwise the same key as absent, so its keys take their
    /// defaults (a value that is not a mapping is reported).
    pub fn enter<'v>(&mut self, node: Node<'v>) -> Node<'v> {
        if self.section(&node) {
            node
        } else {
            Node {
                value: None,
                ..node
            }
        }
    }

    /// A boolean: `true`, `false`, or the strings `"true"`/`"false"` in any case.
    pub fn bool(&mut self, node: &Node<'_>) -> Read<bool> {
        match node.value {
            None => Read::Absent,
            Some(Value::Empty(..)) => Read::Null,
            Some(v) => match as_bool(v) {
                Some(b) => Read::Value(b),
                None => {
                    self.error(node, "expected true or false");
                    Read::Invalid
                }
            },
        }
    }

    /// A whole number from 1 to `max`, from a number or a numeric string.
    pub fn positive<T: TryFrom<NonZeroU64>>(&mut self, node: &Node<'_>, max: u64) -> Read<T> {
        self.bounded(
            node,
            max,
            format!("expected a whole number from 1 to {max}"),
        )
    }

    /// Like [`Reader::positive`], where `null` means `null_means` (named in the message).
    pub fn positive_or_null<T: TryFrom<NonZeroU64>>(
        &mut self,
        node: &Node<'_>,
        max: u64,
        null_means: &str,
    ) -> Read<T> {
        self.bounded(
            node,
            max,
            format!("expected a whole number from 1 to {max}, or null for {null_means}"),
        )
    }

    fn bounded<T: TryFrom<NonZeroU64>>(
        &mut self,
        node: &Node<'_>,
        max: u64,
        allowed: String,
    ) -> Read<T> {
        let value = match node.value {
            None => return Read::Absent,
            Some(Value::Empty(..)) => return Read::Null,
            Some(v) => v,
        };
        let converted = as_integer(value)
            .filter(|n| (1..=i128::from(max)).contains(n))
            .and_then(|n| u64::try_from(n).ok())
            .and_then(NonZeroU64::new)
            .and_then(|n| T::try_from(n).ok());
        match converted {
            Some(v) => Read::Value(v),
            None => {
                self.error(node, allowed);
                Read::Invalid
            }
        }
    }

    /// A duration: a whole number of milliseconds (Harper's unit for `timeout` and `cacheTtl`), or a
    /// string with a unit: `500ms`, `30s`, `5m`, `1h`. Zero is refused when `allow_zero` is false.
    pub fn duration(&mut self, node: &Node<'_>, allow_zero: bool) -> Read<Duration> {
        let value = match node.value {
            None => return Read::Absent,
            Some(Value::Empty(..)) => return Read::Null,
            Some(v) => v,
        };
        let lowest = if allow_zero { "0" } else { "1" };
        let allowed = format!(
            "expected a whole number of milliseconds from {lowest}, or a number with a unit (ms, s, m, h)"
        );
        match as_duration(value) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(node, format!("must be greater than 0; {allowed}"));
                Read::Invalid
            }
            Ok(d) => Read::Value(d),
            Err(DurationError::Negative) => {
                self.error(node, format!("must not be negative; {allowed}"));
                Read::Invalid
            }
            Err(DurationError::Malformed) => {
                self.error(node, allowed);
                Read::Invalid
            }
        }
    }

    /// A non-empty string; numbers are not taken as strings.
    pub fn string(&mut self, node: &Node<'_>, what: &str) -> Read<String> {
        match node.value {
            None => Read::Absent,
            Some(Value::Empty(..)) => Read::Null,
            Some(Value::String(_, s)) if !s.trim().is_empty() => Read::Value(s.clone()),
            Some(Value::Char(_, c)) => Read::Value(c.to_string()),
            Some(_) => {
                self.error(node, format!("expected {what}"));
                Read::Invalid
            }
        }
    }

    /// A file or directory path: `~` expands to the home directory, and a relative path is taken
    /// relative to the root directory.
    pub fn path(&mut self, node: &Node<'_>) -> Read<PathBuf> {
        match self.string(node, "a file path") {
            Read::Value(s) => match expand_home(Path::new(&s), self.home) {
                Some(p) => Read::Value(self.root.join(p)),
                None => {
                    self.error(
                        node,
                        "cannot expand `~`: the HOME environment variable is not set",
                    );
                    Read::Invalid
                }
            },
            Read::Absent => Read::Absent,
            Read::Null => Read::Null,
            Read::Invalid => Read::Invalid,
        }
    }

    /// One of a fixed set of words, matched without regard to case; the message lists them.
    pub fn choice<T: Copy>(&mut self, node: &Node<'_>, choices: &[(&str, T)]) -> Read<T> {
        let value = match node.value {
            None => return Read::Absent,
            Some(Value::Empty(..)) => return Read::Null,
            Some(v) => v,
        };
        let found = value.as_str().and_then(|s| {
            choices
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
        });
        match found {
            Some((_, v)) => Read::Value(*v),
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.error(node, format!("expected one of {}", names.join(", ")));
                Read::Invalid
            }
        }
    }
}

/// Where the value at `path` came from, when an override set it or one of its parents.
pub(crate) fn origin_of(origins: &BTreeMap<String, String>, path: &str) -> Option<String> {
    let mut candidate = path;
    loop {
        if let Some(origin) = origins.get(candidate) {
            return Some(origin.clone());
        }
        candidate = &candidate[..candidate.rfind('.')?];
    }
}

/// `~` and `~/…` with the home directory; other paths unchanged. `None` when `~` is used and the
/// home directory is unknown. `~user` is not expanded.
pub(crate) fn expand_home(path: &Path, home: Option<&Path>) -> Option<PathBuf> {
    match path.strip_prefix("~") {
        Ok(rest) => home.map(|h| {
            if rest.as_os_str().is_empty() {
                h.to_path_buf()
            } else {
                h.join(rest)
            }
        }),
        Err(_) => Some(path.to_path_buf()),
    }
}

/// A boolean from a bool or a `"true"`/`"false"` string.
pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(_, b) => Some(*b),
        Value::String(_, s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(_, s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A whole number from a number (a float with no fraction counts) or a numeric string.
pub(crate) fn as_integer(value: &Value) -> Option<i128> {
    match value {
        Value::Num(_, n) => match n.to_actual() {
            Actual::Unsigned(u) => i128::try_from(u).ok(),
            Actual::Signed(i) => Some(i),
            Actual::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => {
                // Exact: the check above keeps `f` whole and well inside i128.
                #[allow(clippy::cast_possible_truncation)]
                Some(f as i128)
            }
            _ => None,
        },
        Value::String(_, s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Why a value is not a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Below zero.
    Negative,
    /// Not a number of milliseconds and not a number with a known unit.
    Malformed,
}

/// A duration from whole milliseconds or a string such as `30s`.
pub(crate) fn as_duration(value: &Value) -> Result<Duration, DurationError> {
    if let Some(ms) = as_integer(value) {
        return u64::try_from(ms).map(Duration::from_millis).map_err(|_| {
            if ms < 0 {
                DurationError::Negative
            } else {
                DurationError::Malformed
            }
        });
    }
    let text = value.as_str().ok_or(DurationError::Malformed)?.trim();
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| DurationError::Malformed)?;
    let ms_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::Malformed),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or(DurationError::Malformed)
}

/// A short rendering of a value for messages; inline PEM keys are never shown.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) if crate::tls::looks_like_pem(s) => "<redacted PEM>".to_owned(),
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match n.to_actual() {
            Actual::Unsigned(u) => u.to_string(),
            Actual::Signed(i) => i.to_string(),
            Actual::Float(f) => f.to_string(),
            other => other.to_string(),
        },
        Value::Empty(..) => "null".to_owned(),
        Value::Dict(..) => "a mapping".to_owned(),
        Value::Array(..) => "a list".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: i64) -> Value {
        Value::from(n)
    }

    fn text(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn accepts_boolean_strings_in_any_case() {
        assert_eq!(as_bool(&text("true")), Some(true));
        assert_eq!(as_bool(&text("FALSE")), Some(false));
        assert_eq!(as_bool(&Value::from(true)), Some(true));
        assert_eq!(as_bool(&text("yes")), None);
        assert_eq!(as_bool(&num(1)), None);
    }

    #[test]
    fn accepts_numeric_strings_and_whole_floats_as_integers() {
        assert_eq!(as_integer(&text(" 1884 ")), Some(1884));
        assert_eq!(as_integer(&num(-3)), Some(-3));
        assert_eq!(as_integer(&Value::from(5000.0)), Some(5000));
        assert_eq!(as_integer(&Value::from(1.5)), None);
        assert_eq!(as_integer(&text("12ab")), None);
    }

    #[test]
    fn reads_durations_in_milliseconds_or_with_a_unit() {
        assert_eq!(as_duration(&num(5000)), Ok(Duration::from_millis(5000)));
        assert_eq!(as_duration(&text("5000")), Ok(Duration::from_millis(5000)));
        assert_eq!(as_duration(&text("250ms")), Ok(Duration::from_millis(250)));
        assert_eq!(as_duration(&text("30s")), Ok(Duration::from_secs(30)));
        assert_eq!(as_duration(&text("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(as_duration(&text("1h")), Ok(Duration::from_secs(3600)));
        assert_eq!(as_duration(&num(-1)), Err(DurationError::Negative));
        assert_eq!(as_duration(&text("-5s")), Err(DurationError::Negative));
        assert_eq!(as_duration(&text("5 weeks")), Err(DurationError::Malformed));
        assert_eq!(
            as_duration(&Value::from(true)),
            Err(DurationError::Malformed)
        );
    }

    #[test]
    fn expands_the_home_directory() {
        let home = Path::new("/home/u");
        assert_eq!(
            expand_home(Path::new("~/hdb/a.pem"), Some(home)),
            Some(PathBuf::from("/home/u/hdb/a.pem"))
        );
        assert_eq!(
            expand_home(Path::new("~"), Some(home)),
            Some(PathBuf::from("/home/u"))
        );
        assert_eq!(
            expand_home(Path::new("/etc/x"), None),
            Some(PathBuf::from("/etc/x"))
        );
        assert_eq!(
            expand_home(Path::new("~other/x"), Some(home)),
            Some(PathBuf::from("~other/x"))
        );
        assert_eq!(expand_home(Path::new("~/x"), None), None);
    }

    #[test]
    fn renders_values_for_messages_without_keys() {
        assert_eq!(render(&text("abc")), "\"abc\"");
        assert_eq!(render(&num(70000)), "70000");
        assert_eq!(
            render(&text("-----BEGIN PRIVATE KEY-----\nMII")),
            "<redacted PEM>"
        );
    }
}
