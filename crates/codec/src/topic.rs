//! Topic names, topic filters and the matching rule between them (§4.7), with shared
//! subscription filters (§4.8.2).

use std::fmt;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::scan;
use crate::types::MqttString;

/// The prefix of a shared subscription filter.
const SHARE_PREFIX: &str = "$share/";

/// A topic name: the topic of a PUBLISH. Never contains `+` or `#` [MQTT-3.3.2-2].
///
/// It is empty only in an MQTT 5 PUBLISH whose Topic Alias stands in for it; every other use
/// rejects the empty name [MQTT-4.7.3-1].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicName(MqttString);

impl TopicName {
    /// Validates a string as a non-empty topic name.
    pub fn new(s: MqttString) -> Result<Self, DecodeError> {
        if s.is_empty() {
            return Err(DecodeError::EmptyTopicName);
        }
        Self::new_or_empty(s)
    }

    /// Validates a topic name that may be empty (a PUBLISH relying on its Topic Alias).
    pub fn new_or_empty(s: MqttString) -> Result<Self, DecodeError> {
        if has_wildcard(s.as_bytes()) {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(Self(s))
    }

    /// Decodes a PUBLISH topic that may be empty, validating string and name in one pass.
    pub(crate) fn decode_or_empty(bytes: Bytes) -> Result<Self, DecodeError> {
        match MqttString::from_bytes_find_wildcard(bytes)? {
            (_, true) => Err(DecodeError::WildcardInTopicName),
            (s, false) => Ok(Self(s)),
        }
    }

    /// The empty name: only valid in a v5 PUBLISH that carries a Topic Alias.
    pub fn empty() -> Self {
        Self(MqttString::default())
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying MQTT string.
    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.0
    }

    /// The name's bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// True for the empty name.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for topics starting with `$` (for example `$SYS/...`), which filters starting with a
    /// wildcard do not match [MQTT-4.7.2-1].
    pub fn is_system(&self) -> bool {
        self.as_str().starts_with('$')
    }
}

impl TryFrom<&str> for TopicName {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, DecodeError> {
        Self::new(MqttString::try_from(s)?)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic filter of a SUBSCRIBE or UNSUBSCRIBE: levels separated by `/`, where `+` matches one
/// whole level and `#`, last, matches any number of levels. A filter of the form
/// `$share/{group}/{filter}` is a shared subscription.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter {
    full: MqttString,
    /// Byte offset where the matching part starts: 0, or past `$share/{group}/`.
    filter_start: u16,
}

impl TopicFilter {
    /// Validates a topic filter, shared or not.
    pub fn new(s: MqttString) -> Result<Self, DecodeError> {
        let text = s.as_str();
        if text.is_empty() {
            return Err(DecodeError::EmptyTopicFilter);
        }
        let filter_start = match text.strip_prefix(SHARE_PREFIX) {
            Some(rest) => {
                // [MQTT-4.8.2-1]: a non-empty share name without `/`, `+` or `#`, then `/` and a
                // filter [MQTT-4.8.2-2].
                let slash = rest
                    .find('/')
                    .ok_or(DecodeError::InvalidSharedSubscription)?;
                let group = &rest[..slash];
                if group.is_empty() || has_wildcard(group.as_bytes()) {
                    return Err(DecodeError::InvalidSharedSubscription);
                }
                let start = SHARE_PREFIX.len() + slash + 1;
                if start >= text.len() {
                    return Err(DecodeError::InvalidSharedSubscription);
                }
                start
            }
            None => 0,
        };
        validate_filter_levels(&text[filter_start..])?;
        let filter_start =
            u16::try_from(filter_start).map_err(|_| DecodeError::InvalidSharedSubscription)?;
        Ok(Self {
            full: s,
            filter_start,
        })
    }

    /// The whole filter as received, with any `$share/{group}/` prefix.
    pub fn as_str(&self) -> &str {
        self.full.as_str()
    }

    /// The underlying MQTT string.
    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.full
    }

    /// The part that is matched against topic names (without a share prefix).
    pub fn filter(&self) -> &str {
        &self.full.as_str()[usize::from(self.filter_start)..]
    }

    /// The share name of a shared subscription.
    pub fn share_group(&self) -> Option<&str> {
        if self.filter_start == 0 {
            None
        } else {
            let end = usize::from(self.filter_start) - 1;
            Some(&self.full.as_str()[SHARE_PREFIX.len()..end])
        }
    }

    /// True for `$share/{group}/{filter}`.
    pub fn is_shared(&self) -> bool {
        self.filter_start != 0
    }

    /// True when the matching part holds `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.filter().contains(['+', '#'])
    }

    /// Whether this filter matches a topic name (§4.7), applying the `$` rule [MQTT-4.7.2-1].
    /// A shared subscription matches by its filter part.
    pub fn matches(&self, name: &TopicName) -> bool {
        matches(self.filter(), name.as_str())
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, DecodeError> {
        Self::new(MqttString::try_from(s)?)
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True when `bytes` holds `+` or `#`. No early exit, so the compiler vectorises it.
fn has_wildcard(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(false, |found, &b| found | (b == b'+') | (b == b'#'))
}

/// Checks the wildcard rules of §4.7.1 on a filter without a share prefix.
fn validate_filter_levels(filter: &str) -> Result<(), DecodeError> {
    if scan::has_misplaced_wildcard(filter.as_bytes()) {
        Err(DecodeError::InvalidWildcard)
    } else {
        Ok(())
    }
}

/// Whether `filter` (already validated, without a share prefix) matches `topic` (a topic name).
///
/// `#` also matches the parent level (`a/#` matches `a`), `+` matches exactly one level, which may
/// be empty, and filters starting with a wildcard never match topics starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn name(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    #[test]
    fn multi_level_wildcard_examples_from_spec() {
        // §4.7.1.2
        let f = filter("sport/tennis/player1/#");
        assert!(f.matches(&name("sport/tennis/player1")));
        assert!(f.matches(&name("sport/tennis/player1/ranking")));
        assert!(f.matches(&name("sport/tennis/player1/score/wimbledon")));
        assert!(filter("sport/#").matches(&name("sport")));
        assert!(filter("#").matches(&name("anything/at/all")));
    }

    #[test]
    fn single_level_wildcard_examples_from_spec() {
        // §4.7.1.3
        let f = filter("sport/tennis/+");
        assert!(f.matches(&name("sport/tennis/player1")));
        assert!(f.matches(&name("sport/tennis/player2")));
        assert!(!f.matches(&name("sport/tennis/player1/ranking")));
        assert!(!filter("sport/+").matches(&name("sport")));
        assert!(filter("sport/+").matches(&name("sport/")));
        assert!(filter("+/+").matches(&name("/finance")));
        assert!(filter("/+").matches(&name("/finance")));
        assert!(!filter("+").matches(&name("/finance")));
    }

    #[test]
    fn wildcards_do_not_match_dollar_topics() {
        // §4.7.2 [MQTT-4.7.2-1]
        assert!(!filter("#").matches(&name("$SYS/broker/uptime")));
        assert!(!filter("+/monitor/Clients").matches(&name("$SYS/monitor/Clients")));
        assert!(filter("$SYS/#").matches(&name("$SYS/monitor/Clients")));
        assert!(filter("$SYS/monitor/+").matches(&name("$SYS/monitor/Clients")));
    }

    #[test]
    fn topics_are_case_sensitive_and_spaces_count() {
        assert!(!filter("ACCOUNTS").matches(&name("Accounts")));
        assert!(filter("Accounts payable").matches(&name("Accounts payable")));
    }

    #[test]
    fn rejects_misplaced_wildcards() {
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "a/b+/c",
            "#/a",
        ] {
            assert_eq!(
                TopicFilter::try_from(bad),
                Err(DecodeError::InvalidWildcard),
                "{bad}"
            );
        }
        for good in ["+", "+/tennis/#", "sport/+/player1", "/", "//", "a//b/+/#"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_empty_filter_and_name() {
        assert_eq!(
            TopicFilter::try_from(""),
            Err(DecodeError::EmptyTopicFilter)
        );
        assert_eq!(TopicName::try_from(""), Err(DecodeError::EmptyTopicName));
    }

    #[test]
    fn rejects_wildcard_in_topic_name() {
        assert_eq!(
            TopicName::try_from("a/+"),
            Err(DecodeError::WildcardInTopicName)
        );
        assert_eq!(
            TopicName::try_from("a/#"),
            Err(DecodeError::WildcardInTopicName)
        );
    }

    #[test]
    fn publish_topic_checks_string_and_wildcards_in_one_pass() {
        let decode = |b: &'static [u8]| TopicName::decode_or_empty(Bytes::from_static(b));
        assert_eq!(decode(b"a/b").map(|t| t.len()), Ok(3));
        assert_eq!(decode(b"").map(|t| t.is_empty()), Ok(true));
        // "é/x": not ASCII, so the full UTF-8 check runs, and accepts it.
        assert_eq!(decode(b"\xC3\xA9/x").map(|t| t.len()), Ok(4));
        assert_eq!(decode(b"a/+"), Err(DecodeError::WildcardInTopicName));
        assert_eq!(decode(b"\xC3\xA9/#"), Err(DecodeError::WildcardInTopicName));
        // A surrogate (ED A0 80) and a NUL keep their own errors.
        assert_eq!(decode(b"a\xED\xA0\x80"), Err(DecodeError::InvalidUtf8));
        assert_eq!(decode(b"a\x00b"), Err(DecodeError::NullCharacter));
    }

    #[test]
    fn parses_shared_subscription() {
        let f = filter("$share/consumer1/sport/tennis/+");
        assert!(f.is_shared());
        assert_eq!(f.share_group(), Some("consumer1"));
        assert_eq!(f.filter(), "sport/tennis/+");
        assert!(f.matches(&name("sport/tennis/player1")));
        let plain = filter("sport/#");
        assert_eq!(plain.share_group(), None);
    }

    #[test]
    fn rejects_invalid_shared_subscriptions() {
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/a+b/x",
            "$share/#/x",
        ] {
            assert_eq!(
                TopicFilter::try_from(bad),
                Err(DecodeError::InvalidSharedSubscription),
                "{bad}"
            );
        }
        assert_eq!(
            TopicFilter::try_from("$share/g/a#"),
            Err(DecodeError::InvalidWildcard)
        );
    }
}
