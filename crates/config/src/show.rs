//! The effective configuration as one `key: value` entry per setting, for `check-config` and logs.

use figment::value::Value;

use crate::Config;
use crate::read::render;

impl Config {
    /// Every setting as (dotted key path, value), in the file's shapes and units (ports as
    /// integers or `"host:port"`, durations in milliseconds, `mtls: false` when off), strings
    /// quoted and inline keys redacted.
    pub fn entries(&self) -> Vec<(String, String)> {
        match Value::serialize(self) {
            Ok(tree) => {
                let mut out = Vec::new();
                flatten(String::new(), &tree, &mut out);
                out
            }
            // Only a path that is not UTF-8 gets here.
            Err(e) => vec![("rootPath".to_owned(), format!("<cannot be shown: {e}>"))],
        }
    }
}

fn flatten(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Dict(_, dict) if !dict.is_empty() => {
            for (key, inner) in dict {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, inner, out);
            }
        }
        Value::Dict(..) => out.push((path, "{}".to_owned())),
        other => out.push((path, render(other))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn lists_every_setting_by_key_path() {
        let entries = Config::defaults(Path::new("/r")).entries();
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("mqtt.network.port"), Some("1883"));
        assert_eq!(get("mqtt.network.mtls"), Some("false"));
        assert_eq!(get("http.securePort"), Some("null"));
        assert_eq!(get("tls.certificate"), Some("\"/r/keys/certificate.pem\""));
        assert_eq!(get("mqtt.network.mtls.user"), None);
        assert_eq!(get("mqtt.limits.connectTimeout"), Some("10000"));
        assert_eq!(get("mqtt.logging.level"), Some("\"warn\""));
    }
}
