//! Client certificates (`mqtt.network.mtls`): the verifier the TLS listeners use during the
//! handshake, and what the broker decides from a verified certificate before CONNACK — its OCSP
//! status and the user it logs in as.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use codec::ReasonCode;
use mtls_verifier::{
    ClientVerifier, FailureMode, OcspChecker, OcspOptions, Status, UserMapping, VerifierOptions,
};
use tracing::{info, warn};
use transport::rustls::pki_types::CertificateDer;
use transport::rustls::server::danger::ClientCertVerifier;

/// The tracing target of revocation-check lines; the log shows it as the `[ocsp]` tag.
pub const OCSP_TARGET: &str = "ocsp";

/// What a client certificate means for the connection that presented it, shared by every TLS
/// listener and every connection.
pub struct ClientAuth {
    mapping: UserMapping,
    required: bool,
    ocsp: Option<(OcspChecker, FailureMode)>,
    /// How long OCSP answers are cached (`cacheTtl`).
    cache_ttl: std::time::Duration,
    /// `None` when no TLS listener is on, so no certificate can arrive.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    outcomes: Outcomes,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("mapping", &self.mapping)
            .field("required", &self.required)
            .field("ocsp", &self.ocsp.as_ref().map(|(_, mode)| mode))
            .finish_non_exhaustive()
    }
}

/// Results of revocation checks, by kind.
#[derive(Debug, Default)]
struct Outcomes {
    good: AtomicU64,
    revoked: AtomicU64,
    unknown: AtomicU64,
    /// No trustworthy answer, let in under `fail-open`.
    failed_open: AtomicU64,
    /// No trustworthy answer, refused under `fail-closed`.
    failed_closed: AtomicU64,
}

/// Counters of certificate checks, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientAuthStats {
    /// OCSP checks answered from the cache.
    pub ocsp_cache_hits: u64,
    /// OCSP requests sent to responders.
    pub ocsp_requests: u64,
    /// Checks that found the certificate good.
    pub ocsp_good: u64,
    /// Checks that found it revoked.
    pub ocsp_revoked: u64,
    /// Checks the responder answered `unknown`.
    pub ocsp_unknown: u64,
    /// Checks with no trustworthy answer that let the client in (`fail-open`).
    pub ocsp_failed_open: u64,
    /// Checks with no trustworthy answer that refused the client (`fail-closed`).
    pub ocsp_failed_closed: u64,
}

/// What the certificate of a connection (or its absence) settles before the credentials are
/// looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateVerdict {
    /// The user the certificate logs in as.
    pub user: Option<String>,
    /// CONNECT must carry a user name and password (`user: null` with a certificate, the
    /// combined mode).
    pub credentials_required: bool,
}

impl ClientAuth {
    /// Builds the verifier and the OCSP checker.
    pub fn new(settings: ClientAuthSettings) -> Result<Self, mtls_verifier::BuildError> {
        let cache_ttl = settings
            .ocsp
            .map_or(std::time::Duration::ZERO, |o| o.cache_ttl);
        let checker = settings
            .ocsp
            .map(|o| {
                OcspChecker::new(&OcspOptions {
                    ca_bundle_pem: settings.ca_bundle_pem.clone(),
                    timeout: o.timeout,
                    cache_ttl: o.cache_ttl,
                })
                .map(|checker| (checker, o.failure_mode))
            })
            .transpose()?;
        let mut verifier = ClientVerifier::new(&VerifierOptions {
            ca_bundle_pem: settings.ca_bundle_pem,
            required: settings.required,
        })?;
        if let Some((checker, _)) = &checker {
            verifier = verifier.with_ocsp_cache(checker.cache());
        }
        Ok(Self {
            mapping: settings.mapping,
            required: settings.required,
            ocsp: checker,
            cache_ttl,
            verifier: Some(verifier.into_arc()),
            outcomes: Outcomes::default(),
        })
    }

    /// mTLS settings for a broker with no TLS listener: no certificate can arrive, so with
    /// `required` every client is refused, and without it nothing changes.
    pub fn without_tls(required: bool) -> Self {
        Self {
            mapping: UserMapping::CommonName,
            required,
            ocsp: None,
            cache_ttl: std::time::Duration::ZERO,
            verifier: None,
            outcomes: Outcomes::default(),
        }
    }

    /// The handshake verifier for `transport::ServerTls::with_client_verifier`; `None` from
    /// [`ClientAuth::without_tls`].
    pub fn verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.verifier.clone()
    }

    /// Whether every connection must present a certificate (`mtls.required`).
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether client certificates get an OCSP check (`certificateVerification` is on).
    pub fn checks_revocation(&self) -> bool {
        self.ocsp.is_some()
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> ClientAuthStats {
        let ocsp = self
            .ocsp
            .as_ref()
            .map(|(checker, _)| checker.stats())
            .unwrap_or_default();
        let o = &self.outcomes;
        ClientAuthStats {
            ocsp_cache_hits: ocsp.cache_hits,
            ocsp_requests: ocsp.requests,
            ocsp_good: o.good.load(Ordering::Relaxed),
            ocsp_revoked: o.revoked.load(Ordering::Relaxed),
            ocsp_unknown: o.unknown.load(Ordering::Relaxed),
            ocsp_failed_open: o.failed_open.load(Ordering::Relaxed),
            ocsp_failed_closed: o.failed_closed.load(Ordering::Relaxed),
        }
    }

    /// Decides what the connection's certificate chain (empty when it sent none, or came over
    /// plain TCP or WebSocket) means. `Err` is the CONNACK code that refuses the connection;
    /// the reason is logged here.
    pub(crate) async fn admit(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Result<CertificateVerdict, ReasonCode> {
        let Some(leaf) = chain.first() else {
            if self.required {
                info!("no client certificate, and mqtt.network.mtls.required is set; refusing");
                return Err(ReasonCode::NotAuthorized);
            }
            return Ok(CertificateVerdict {
                user: None,
                credentials_required: false,
            });
        };
        self.check_revocation(chain, leaf).await?;
        match self.mapping.user_for(leaf) {
            Ok(Some(user)) => Ok(CertificateVerdict {
                user: Some(user),
                credentials_required: false,
            }),
            Ok(None) => Ok(CertificateVerdict {
                user: None,
                credentials_required: true,
            }),
            Err(e) => {
                let (subject, serial) = describe(leaf);
                warn!(%subject, %serial, error = %e, "client certificate names no user; refusing");
                Err(ReasonCode::NotAuthorized)
            }
        }
    }

    /// The OCSP check of a chain whose leaf is `leaf`, when revocation checking is on: `Err`
    /// (not authorized) for a revoked certificate, or one without a trustworthy answer under
    /// `fail-closed`. Answers come from the cache while it holds them.
    async fn check_revocation(
        &self,
        chain: &[CertificateDer<'static>],
        leaf: &CertificateDer<'static>,
    ) -> Result<(), ReasonCode> {
        if let Some((checker, mode)) = &self.ocsp {
            let result = checker.check(chain).await;
            let allowed = mode.allows(&result);
            let (subject, serial) = describe(leaf);
            let counter = match &result {
                Ok(Status::Good) => &self.outcomes.good,
                Ok(Status::Revoked) => {
                    warn!(target: OCSP_TARGET, %subject, %serial, "client certificate is revoked; refusing");
                    &self.outcomes.revoked
                }
                Ok(Status::Unknown) => {
                    let mode = mode_name(*mode);
                    if allowed {
                        warn!(target: OCSP_TARGET, %subject, %serial, failure_mode = mode, "OCSP responder does not know the client certificate; allowing it");
                    } else {
                        warn!(target: OCSP_TARGET, %subject, %serial, failure_mode = mode, "OCSP responder does not know the client certificate; refusing");
                    }
                    &self.outcomes.unknown
                }
                Err(e) if allowed => {
                    warn!(target: OCSP_TARGET, %subject, %serial, error = %e, failure_mode = "fail-open", "no trustworthy OCSP answer; allowing the client");
                    &self.outcomes.failed_open
                }
                Err(e) => {
                    warn!(target: OCSP_TARGET, %subject, %serial, error = %e, failure_mode = "fail-closed", "no trustworthy OCSP answer; refusing the client");
                    &self.outcomes.failed_closed
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if !allowed {
                return Err(ReasonCode::NotAuthorized);
            }
        }
        Ok(())
    }

    /// Checks the certificate of a connected client again (its cached answer has run out):
    /// whether it may stay connected.
    pub(crate) async fn still_valid(&self, chain: &[CertificateDer<'static>]) -> bool {
        match chain.first() {
            Some(leaf) => self.check_revocation(chain, leaf).await.is_ok(),
            None => true,
        }
    }

    /// How often a connected client's certificate is checked again: when its cached answer
    /// has run out (`cacheTtl`); `None` without revocation checking.
    pub(crate) fn recheck_every(&self) -> Option<std::time::Duration> {
        self.ocsp.as_ref().map(|_| self.cache_ttl)
    }
}

/// What [`ClientAuth::new`] needs.
#[derive(Debug, Clone)]
pub struct ClientAuthSettings {
    /// PEM CA bundle client certificates must chain to.
    pub ca_bundle_pem: Vec<u8>,
    /// Who a verified certificate logs in as.
    pub mapping: UserMapping,
    /// Refuse connections without a certificate.
    pub required: bool,
    /// OCSP checking; `None` turns it off.
    pub ocsp: Option<OcspSettings>,
}

/// OCSP settings of [`ClientAuthSettings`].
#[derive(Debug, Clone, Copy)]
pub struct OcspSettings {
    /// Bounds the whole check.
    pub timeout: std::time::Duration,
    /// How long answers are cached.
    pub cache_ttl: std::time::Duration,
    /// What a missing answer means.
    pub failure_mode: FailureMode,
}

fn mode_name(mode: FailureMode) -> &'static str {
    match mode {
        FailureMode::FailOpen => "fail-open",
        FailureMode::FailClosed => "fail-closed",
    }
}

/// The subject and serial number of a certificate, for log lines.
fn describe(cert: &[u8]) -> (String, String) {
    mtls_verifier::subject_and_serial(cert)
        .unwrap_or_else(|| ("(unparsable)".to_owned(), String::new()))
}
