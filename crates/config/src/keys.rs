//! The known keys: which overrides (`MQTT_NETWORK_PORT=1884`) they accept, and which keys inside
//! `mqtt` are unknown (likely typos, reported as warnings).

use figment::value::{Dict, Value};

use crate::problem::{Problem, Severity};

/// What a known key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A mapping of known keys.
    Section,
    /// A scalar.
    Scalar,
    /// A scalar (`true`/`false`) or a mapping of known keys.
    ScalarOrSection,
}

/// Every key the broker reads. Keys outside `mqtt` that are not listed (the rest of Harper's
/// configuration) are ignored silently.
const KEYS: &[(&str, Shape)] = &[
    ("mqtt", Shape::Section),
    ("mqtt.network", Shape::Section),
    ("mqtt.network.port", Shape::Scalar),
    ("mqtt.network.securePort", Shape::Scalar),
    ("mqtt.network.mtls", Shape::ScalarOrSection),
    ("mqtt.network.mtls.user", Shape::Scalar),
    ("mqtt.network.mtls.required", Shape::Scalar),
    ("mqtt.network.mtls.certificateAuthority", Shape::Scalar),
    (
        "mqtt.network.mtls.certificateVerification",
        Shape::ScalarOrSection,
    ),
    (
        "mqtt.network.mtls.certificateVerification.timeout",
        Shape::Scalar,
    ),
    (
        "mqtt.network.mtls.certificateVerification.cacheTtl",
        Shape::Scalar,
    ),
    (
        "mqtt.network.mtls.certificateVerification.failureMode",
        Shape::Scalar,
    ),
    ("mqtt.webSocket", Shape::Scalar),
    ("mqtt.requireAuthentication", Shape::Scalar),
    ("mqtt.logging", Shape::Section),
    ("mqtt.logging.path", Shape::Scalar),
    ("mqtt.logging.root", Shape::Scalar),
    ("mqtt.logging.level", Shape::Scalar),
    ("mqtt.logging.tag", Shape::Scalar),
    ("mqtt.logging.stdStreams", Shape::Scalar),
    ("mqtt.logging.rotation", Shape::Section),
    ("mqtt.logging.rotation.enabled", Shape::Scalar),
    ("mqtt.logging.rotation.maxSize", Shape::Scalar),
    ("mqtt.logging.rotation.interval", Shape::Scalar),
    ("mqtt.logging.rotation.compress", Shape::Scalar),
    ("mqtt.logging.rotation.path", Shape::Scalar),
    ("mqtt.limits", Shape::Section),
    ("mqtt.limits.maxPacketSize", Shape::Scalar),
    ("mqtt.limits.receiveMaximum", Shape::Scalar),
    ("mqtt.limits.maxKeepAlive", Shape::Scalar),
    ("mqtt.limits.maxQueuedMessages", Shape::Scalar),
    ("mqtt.limits.maxTopicAlias", Shape::Scalar),
    ("mqtt.limits.maxInflight", Shape::Scalar),
    ("mqtt.limits.connectionRatePerIp", Shape::Scalar),
    ("mqtt.limits.maxSubscriptionsPerClient", Shape::Scalar),
    ("mqtt.limits.maxQueuedBytes", Shape::Scalar),
    ("mqtt.limits.maxRetainedMessages", Shape::Scalar),
    ("mqtt.limits.maxRetainedBytes", Shape::Scalar),
    ("mqtt.limits.maxSessionExpiry", Shape::Scalar),
    ("mqtt.limits.connectTimeout", Shape::Scalar),
    ("mqtt.limits.maxHandshakes", Shape::Scalar),
    ("mqtt.limits.maxHandshakesPerAddress", Shape::Scalar),
    ("mqtt.limits.handshakeTimeout", Shape::Scalar),
    ("mqtt.storage", Shape::Section),
    ("mqtt.storage.path", Shape::Scalar),
    ("mqtt.storage.durability", Shape::Scalar),
    ("mqtt.storage.batchMaxDelay", Shape::Scalar),
    ("mqtt.storage.batchMaxSize", Shape::Scalar),
    ("mqtt.storage.syncInterval", Shape::Scalar),
    ("http", Shape::Section),
    ("http.port", Shape::Scalar),
    ("http.securePort", Shape::Scalar),
    ("http.cors", Shape::Scalar),
    ("http.corsAccessList", Shape::Scalar),
    ("http.metricsToken", Shape::Scalar),
    ("tls", Shape::Section),
    ("tls.certificate", Shape::Scalar),
    ("tls.privateKey", Shape::Scalar),
    ("tls.certificateAuthority", Shape::Scalar),
    ("logging", Shape::Section),
    ("logging.level", Shape::Scalar),
    ("logging.root", Shape::Scalar),
    ("logging.path", Shape::Scalar),
    ("logging.stdStreams", Shape::Scalar),
    ("logging.rotation", Shape::Section),
    ("logging.rotation.enabled", Shape::Scalar),
    ("logging.rotation.maxSize", Shape::Scalar),
    ("logging.rotation.interval", Shape::Scalar),
    ("logging.rotation.compress", Shape::Scalar),
    ("logging.rotation.path", Shape::Scalar),
    ("authentication", Shape::Section),
    ("authentication.usersFile", Shape::Scalar),
];

/// Every key that an environment variable or a command-line flag can set, as dotted paths.
pub fn settable_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|(_, shape)| matches!(shape, Shape::Scalar | Shape::ScalarOrSection))
        .map(|(k, _)| *k)
}

/// The key that an override name sets, Harper's way: the key path upper-cased with `_` between
/// levels, compared without regard to case (`MQTT_NETWORK_PORT` and `mqtt_network_port` both set
/// `mqtt.network.port`). `None` for names that are not ours (most of the environment).
pub fn key_for_override(name: &str) -> Option<&'static str> {
    settable_keys().find(|key| {
        key.len() == name.len()
            && key.bytes().zip(name.bytes()).all(|(k, n)| {
                if k == b'.' {
                    n == b'_'
                } else {
                    k.eq_ignore_ascii_case(&n)
                }
            })
    })
}

/// Warnings for the keys inside `mqtt` that the broker does not know.
pub(crate) fn unknown_mqtt_keys(tree: &Dict) -> Vec<Problem> {
    let mut found = Vec::new();
    if let Some(Value::Dict(_, mqtt)) = tree.get("mqtt") {
        walk("mqtt", mqtt, &mut found);
    }
    found
}

fn walk(prefix: &str, dict: &Dict, found: &mut Vec<Problem>) {
    for (name, value) in dict {
        let path = format!("{prefix}.{name}");
        match shape_of(&path) {
            Some(Shape::Section | Shape::ScalarOrSection) => {
                if let Value::Dict(_, inner) = value {
                    walk(&path, inner, found);
                }
            }
            Some(Shape::Scalar) => {}
            None => {
                let hint = match suggestion(&path) {
                    Some(known) => format!("unknown key, ignored; did you mean {known}?"),
                    None => "unknown key, ignored (check the spelling)".to_owned(),
                };
                found.push(Problem {
                    severity: Severity::Warning,
                    key: path,
                    value: None,
                    message: hint,
                    origin: None,
                });
            }
        }
    }
}

fn shape_of(path: &str) -> Option<Shape> {
    KEYS.iter().find(|(k, _)| *k == path).map(|(_, s)| *s)
}

/// The known key at the same level closest to `path`: same spelling in another case, or at most two
/// edits away.
fn suggestion(path: &str) -> Option<&'static str> {
    let (parent, name) = path.rsplit_once('.')?;
    KEYS.iter()
        .map(|(k, _)| *k)
        .filter(|k| k.rsplit_once('.').is_some_and(|(p, _)| p == parent))
        .map(|k| {
            let known = k.rsplit_once('.').map_or(k, |(_, n)| n);
            (
                edit_distance(&known.to_ascii_lowercase(), &name.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_override_names_without_regard_to_case() {
        assert_eq!(
            key_for_override("MQTT_NETWORK_PORT"),
            Some("mqtt.network.port")
        );
        assert_eq!(
            key_for_override("mqtt_network_port"),
            Some("mqtt.network.port")
        );
        assert_eq!(
            key_for_override("MQTT_REQUIREAUTHENTICATION"),
            Some("mqtt.requireAuthentication")
        );
        assert_eq!(key_for_override("TLS_CERTIFICATE"), Some("tls.certificate"));
        assert_eq!(
            key_for_override("MQTT_NETWORK_MTLS"),
            Some("mqtt.network.mtls")
        );
        assert_eq!(
            key_for_override("MQTT_NETWORK_MTLS_CERTIFICATEVERIFICATION_FAILUREMODE"),
            Some("mqtt.network.mtls.certificateVerification.failureMode")
        );
    }

    #[test]
    fn ignores_unrelated_and_section_names() {
        assert_eq!(key_for_override("PATH"), None);
        assert_eq!(key_for_override("HOME"), None);
        assert_eq!(key_for_override("MQTT_NETWORK"), None);
        assert_eq!(key_for_override("MQTT_LOGGING_ROTATION"), None);
        assert_eq!(key_for_override("MQTT.NETWORK.PORT"), None);
    }

    #[test]
    fn every_key_has_a_known_parent() {
        for (key, _) in KEYS {
            if let Some((parent, _)) = key.rsplit_once('.') {
                assert!(
                    matches!(
                        shape_of(parent),
                        Some(Shape::Section | Shape::ScalarOrSection)
                    ),
                    "{key} has no section"
                );
            }
        }
    }

    #[test]
    fn suggests_the_key_that_was_probably_meant() {
        assert_eq!(
            suggestion("mqtt.network.securport"),
            Some("mqtt.network.securePort")
        );
        assert_eq!(
            suggestion("mqtt.requireauthentication"),
            Some("mqtt.requireAuthentication")
        );
        assert_eq!(suggestion("mqtt.websocket"), Some("mqtt.webSocket"));
        assert_eq!(suggestion("mqtt.cluster"), None);
    }
}
