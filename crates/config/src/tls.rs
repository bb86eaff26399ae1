//! The top-level `tls` section, shared with Harper's HTTP server: `certificate`, `privateKey`,
//! `certificateAuthority`.
//!
//! When the section names no file at all, Harper's default paths under `<root>/keys/` apply
//! (`certificate.pem`, `privateKey.pem`, `ca.pem`); the transport creates them on first start.
//! Harper also accepts a list of certificate entries (for SNI); the first entry is used and a
//! warning says so. Other keys of the section (`ciphers`, `host`, …) are ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::value::Value;
use serde::{Serialize, Serializer};

use crate::read::{Node, Read, Reader};

/// The `tls` section, with paths expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// The server's certificate chain (PEM); `None` if the section names other files but not this.
    pub certificate: Option<PathBuf>,
    /// The server's private key; `None` if the section names other files but not this.
    pub private_key: Option<PrivateKey>,
    /// The CA bundle (PEM); also the default for `mqtt.network.mtls.certificateAuthority`.
    pub certificate_authority: Option<PathBuf>,
    /// Whether these paths were configured or are Harper's defaults.
    #[serde(skip)]
    pub origin: TlsOrigin,
}

/// Where the `tls` paths come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOrigin {
    /// At least one file is named in the configuration; the named files must exist.
    Configured,
    /// Nothing is named: Harper's paths under `<root>/keys/`, created on first start if missing.
    Defaults,
}

/// The server's private key: a file, or (beyond Harper) the PEM text itself, which is a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateKey {
    /// A PEM file.
    File(PathBuf),
    /// The PEM text given inline (a value starting with `-----BEGIN`), e.g. from `TLS_PRIVATEKEY`.
    Inline(InlinePem),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateKey::File(path) => f.debug_tuple("File").field(path).finish(),
            PrivateKey::Inline(pem) => f.debug_tuple("Inline").field(pem).finish(),
        }
    }
}

impl Serialize for PrivateKey {
    /// The path, or a placeholder for inline PEM text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PrivateKey::File(path) => path.serialize(s),
            PrivateKey::Inline(pem) => pem.serialize(s),
        }
    }
}

/// PEM text that must not be shown: `Debug`, `Display` and `Serialize` print `<redacted PEM>`.
#[derive(Clone, PartialEq, Eq)]
pub struct InlinePem(String);

impl InlinePem {
    /// The PEM text, for the one place that parses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InlinePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted PEM>")
    }
}

impl fmt::Display for InlinePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted PEM>")
    }
}

impl Serialize for InlinePem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted PEM>")
    }
}

/// True for text that is PEM rather than a path.
pub(crate) fn looks_like_pem(text: &str) -> bool {
    text.trim_start().starts_with("-----BEGIN")
}

impl Tls {
    /// Harper's default files under `<root>/keys/`.
    pub fn defaults(root: &Path) -> Tls {
        let keys = root.join("keys");
        Tls {
            certificate: Some(keys.join("certificate.pem")),
            private_key: Some(PrivateKey::File(keys.join("privateKey.pem"))),
            certificate_authority: Some(keys.join("ca.pem")),
            origin: TlsOrigin::Defaults,
        }
    }

    /// Reads the `tls` section.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node<'_>) -> Tls {
        let entry = match node.value {
            Some(Value::Array(_, entries)) => {
                r.warn(
                    node,
                    "a list of certificates (one per host name) is not supported yet; only the first entry is used",
                );
                Node {
                    path: format!("{}[0]", node.path),
                    value: entries.first(),
                }
            }
            _ => node.clone(),
        };
        if !r.section(&entry) {
            return Tls::defaults(r.root);
        }
        let certificate = r.path(&entry.child("certificate"));
        let key_node = entry.child("privateKey");
        let private_key = match key_node.value {
            Some(Value::String(_, text)) if looks_like_pem(text) => {
                Read::Value(PrivateKey::Inline(InlinePem(text.clone())))
            }
            _ => match r.path(&key_node) {
                Read::Value(path) => Read::Value(PrivateKey::File(path)),
                Read::Absent => Read::Absent,
                Read::Null => Read::Null,
                Read::Invalid => Read::Invalid,
            },
        };
        let certificate_authority = r.path(&entry.child("certificateAuthority"));
        let named = [&certificate, &certificate_authority]
            .iter()
            .any(|p| matches!(p, Read::Value(_)))
            || matches!(private_key, Read::Value(_));
        if !named {
            return Tls::defaults(r.root);
        }
        Tls {
            certificate: certificate.ok(),
            private_key: private_key.ok(),
            certificate_authority: certificate_authority.ok(),
            origin: TlsOrigin::Configured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keys_are_never_printed() {
        let key = PrivateKey::Inline(InlinePem("-----BEGIN PRIVATE KEY-----\nsecret".into()));
        assert_eq!(format!("{key:?}"), "Inline(<redacted PEM>)");
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn recognises_pem_text() {
        assert!(looks_like_pem("  -----BEGIN EC PRIVATE KEY-----"));
        assert!(!looks_like_pem("~/hdb/keys/privateKey.pem"));
    }
}
