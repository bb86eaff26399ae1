//! `mqtt.network.mtls`: client-certificate authentication and its OCSP revocation checks.
//!
//! The key takes `false` (default), `true`, or a mapping with `user`, `required`,
//! `certificateAuthority` and `certificateVerification`. The field type is `Option<Mtls>`, `None`
//! meaning off.

use std::path::PathBuf;
use std::time::Duration;

use figment::value::Value;
use serde::{Serialize, Serializer};

use crate::read::{Node, Read, Reader, as_bool};

/// mTLS is on: a client certificate is requested on the TLS listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mtls {
    /// Who a verified certificate logs in as.
    pub user: MtlsUser,
    /// A TLS client without a valid certificate fails the handshake (default false).
    pub required: bool,
    /// The CA bundle that client certificates must chain to: `mtls.certificateAuthority`, else
    /// `tls.certificateAuthority`. `None` only when neither is set, which `validate()` reports.
    pub certificate_authority: Option<PathBuf>,
    /// Which key [`Mtls::certificate_authority`] comes from. From the `tls` section while that
    /// names no file, it is Harper's default `<root>/keys/ca.pem`: the CA the broker creates at
    /// first start without keeping its key, which `validate()` reports.
    #[serde(skip)]
    pub certificate_authority_source: CaSource,
    /// OCSP revocation checking; `None` when `certificateVerification: false`.
    #[serde(serialize_with = "verification_or_false")]
    pub certificate_verification: Option<CertificateVerification>,
}

/// Where the mTLS CA bundle is named ([`Mtls::certificate_authority_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaSource {
    /// `mqtt.network.mtls.certificateAuthority`.
    Mtls,
    /// `tls.certificateAuthority`, or Harper's default path when the `tls` section names no file
    /// ([`crate::TlsOrigin::Defaults`]).
    Tls,
}

/// `mqtt.network.mtls.user`: who a verified certificate logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtlsUser {
    /// The subject's Common Name is the username: `user` absent, `"CN"` or `"Common Name"`.
    CommonName,
    /// Every verified certificate logs in as this user: any other string.
    Fixed(String),
    /// The certificate logs nobody in; CONNECT credentials are needed as well: `user: null`
    /// (with `required: true`, this is Harper's combined mode: certificate and credentials).
    CredentialsRequired,
}

impl Serialize for MtlsUser {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MtlsUser::CommonName => s.serialize_str("CN"),
            MtlsUser::Fixed(user) => s.serialize_str(user),
            MtlsUser::CredentialsRequired => s.serialize_none(),
        }
    }
}

/// `mqtt.network.mtls.certificateVerification`: OCSP checks of client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateVerification {
    /// How long to wait for an OCSP answer (`timeout`, milliseconds, default 5000).
    #[serde(serialize_with = "crate::ser::millis")]
    pub timeout: Duration,
    /// How long a good answer is cached (`cacheTtl`, milliseconds, default 3600000).
    #[serde(serialize_with = "crate::ser::millis")]
    pub cache_ttl: Duration,
    /// What to do when no trustworthy answer can be had (`failureMode`, default `fail-open`).
    pub failure_mode: FailureMode,
}

impl Default for CertificateVerification {
    fn default() -> Self {
        CertificateVerification {
            timeout: Duration::from_millis(5_000),
            cache_ttl: Duration::from_millis(3_600_000),
            failure_mode: FailureMode::FailOpen,
        }
    }
}

/// `failureMode`: what a failed OCSP check (timeout, error, unknown status) means. A `revoked`
/// answer always rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Allow the connection and log a warning (`fail-open`, the default).
    FailOpen,
    /// Reject the connection (`fail-closed`).
    FailClosed,
}

fn verification_or_false<S: Serializer>(
    v: &Option<CertificateVerification>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => v.serialize(s),
        None => s.serialize_bool(false),
    }
}

/// Serializes `mqtt.network.mtls`: `false` when off, else the mapping.
pub(crate) fn mtls_or_false<S: Serializer>(v: &Option<Mtls>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(m) => m.serialize(s),
        None => s.serialize_bool(false),
    }
}

impl Mtls {
    /// Reads `mqtt.network.mtls`; `tls_ca` is `tls.certificateAuthority`, the default CA.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        node: &Node<'_>,
        tls_ca: Option<&PathBuf>,
    ) -> Option<Mtls> {
        let on = Mtls {
            user: MtlsUser::CommonName,
            required: false,
            certificate_authority: tls_ca.cloned(),
            certificate_authority_source: CaSource::Tls,
            certificate_verification: Some(CertificateVerification::default()),
        };
        match node.value {
            None | Some(Value::Empty(..)) => None,
            Some(Value::Dict(..)) => {
                let user = read_user(r, &node.child("user"));
                let required = r.bool(&node.child("required")).or(false);
                let (certificate_authority, certificate_authority_source) =
                    match r.path(&node.child("certificateAuthority")).ok() {
                        Some(path) => (Some(path), CaSource::Mtls),
                        None => (on.certificate_authority, CaSource::Tls),
                    };
                Some(Mtls {
                    user,
                    required,
                    certificate_authority,
                    certificate_authority_source,
                    certificate_verification: read_verification(
                        r,
                        &node.child("certificateVerification"),
                    ),
                })
            }
            Some(v) => match as_bool(v) {
                Some(true) => Some(on),
                Some(false) => None,
                None => {
                    r.error(
                        node,
                        "expected true, false, or a mapping with user, required, certificateAuthority \
                         and certificateVerification",
                    );
                    None
                }
            },
        }
    }
}

/// `user`: absent, "CN" or "Common Name" → the CN; null → no certificate login; else a fixed user.
fn read_user(r: &mut Reader<'_>, node: &Node<'_>) -> MtlsUser {
    match r.string(node, "a username, \"CN\", \"Common Name\" or null") {
        Read::Absent | Read::Invalid => MtlsUser::CommonName,
        Read::Null => MtlsUser::CredentialsRequired,
        Read::Value(s) if s == "CN" || s == "Common Name" => MtlsUser::CommonName,
        Read::Value(s) => MtlsUser::Fixed(s),
    }
}

/// `certificateVerification`: true (default), false, or a mapping whose missing keys default.
fn read_verification(r: &mut Reader<'_>, node: &Node<'_>) -> Option<CertificateVerification> {
    let defaults = CertificateVerification::default();
    match node.value {
        None | Some(Value::Empty(..)) => Some(defaults),
        Some(Value::Dict(..)) => Some(CertificateVerification {
            timeout: r
                .duration(&node.child("timeout"), false)
                .or(defaults.timeout),
            cache_ttl: r
                .duration(&node.child("cacheTtl"), true)
                .or(defaults.cache_ttl),
            failure_mode: r
                .choice(
                    &node.child("failureMode"),
                    &[
                        ("fail-open", FailureMode::FailOpen),
                        ("fail-closed", FailureMode::FailClosed),
                    ],
                )
                .or(defaults.failure_mode),
        }),
        Some(v) => match as_bool(v) {
            Some(true) => Some(defaults),
            Some(false) => None,
            None => {
                r.error(
                    node,
                    "expected true, false, or a mapping with timeout, cacheTtl and failureMode",
                );
                Some(defaults)
            }
        },
    }
}
