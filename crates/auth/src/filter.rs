//! Topic filter arithmetic for permission rules: does a rule cover a whole subscription filter,
//! or overlap it. Matching and validity come from the codec. Filters here are already valid.

/// Whether `filter` matches the topic name `topic` (§4.7, with the `$` rule).
pub(crate) use codec::matches;

/// Whether every topic `sub` matches is matched by `rule`.
pub(crate) fn covers(rule: &str, sub: &str) -> bool {
    if sub.starts_with('$') != rule.starts_with('$') && !rule.starts_with(['+', '#']) {
        return false;
    }
    let mut r = rule.split('/');
    let mut s = sub.split('/');
    loop {
        match (r.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b && a != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both filters.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether a filter is well formed (§4.7.1).
pub(crate) fn is_valid(filter: &str) -> bool {
    codec::TopicFilter::try_from(filter).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_and_overlaps() {
        assert!(covers("devices/#", "devices/a/+"));
        assert!(covers("devices/+/t", "devices/a/t"));
        assert!(!covers("devices/+/t", "devices/#"));
        assert!(!covers("devices/a", "devices/+"));
        assert!(covers("#", "a/b"));
        assert!(overlaps("devices/alice/#", "devices/+/temp"));
        assert!(overlaps("#", "$SYS/x"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/+", "a/b/c"));
    }

    #[test]
    fn validity() {
        assert!(is_valid("a/+/b/#"));
        assert!(!is_valid("a/b#"));
        assert!(!is_valid("a/#/b"));
        assert!(!is_valid(""));
    }
}
