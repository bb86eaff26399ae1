//! Topic filter arithmetic for permission rules: does a rule match a topic, cover a whole
//! subscription filter, or overlap it. Filters here are already valid MQTT filters.

/// Whether `filter` matches the topic name `topic` (§4.7, with the `$` rule).
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

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

/// Whether a filter is well formed (§4.7.1): `#` only as the whole last level, `+` only as a
/// whole level, not empty.
pub(crate) fn is_valid(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && !(level == "#" && last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
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
