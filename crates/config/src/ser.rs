//! How durations appear when the effective configuration is printed: whole milliseconds, the unit
//! Harper uses for `timeout` and `cacheTtl`, so the output reads back as the same configuration.

use std::time::Duration;

use serde::Serializer;

/// A duration as whole milliseconds.
pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An optional duration as whole milliseconds or `null`.
pub(crate) fn opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}
