//! Errors at this crate's public boundary.

/// Building a [`ClientVerifier`](crate::ClientVerifier) from its options failed (a config fault).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The CA bundle holds no PEM `CERTIFICATE` block.
    #[error("the client CA bundle holds no certificate")]
    EmptyCaBundle,
    /// The CA bundle is not valid PEM.
    #[error("the client CA bundle is not valid PEM: {0}")]
    CaBundlePem(rustls::pki_types::pem::Error),
    /// A certificate in the CA bundle was refused as a trust anchor.
    #[error("certificate {index} of the client CA bundle is not a usable trust anchor: {source}")]
    CaCertificate {
        /// Position of the certificate in the bundle, from 0.
        index: usize,
        /// Why it was refused.
        source: rustls::Error,
    },
    /// The OCSP HTTP client could not be built.
    #[error("building the OCSP HTTP client: {0}")]
    HttpClient(String),
    /// rustls refused to build the verifier.
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A verified certificate did not yield a user under the configured
/// [`UserMapping`](crate::UserMapping) (the peer's certificate lacks what the mapping needs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The certificate is not parseable X.509.
    #[error("client certificate is not valid X.509: {0}")]
    Parse(String),
    /// The subject has no common name.
    #[error("client certificate subject {subject:?} has no common name")]
    NoCommonName {
        /// The subject, RFC 4514 form.
        subject: String,
    },
    /// The common name is not a UTF-8 string type.
    #[error("client certificate subject {subject:?} has a common name that is not a string")]
    CommonNameNotText {
        /// The subject, RFC 4514 form.
        subject: String,
    },
}

/// [`OcspChecker::check`](crate::OcspChecker::check) got no trustworthy answer; what that means
/// is up to [`FailureMode`](crate::FailureMode). Never cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// The caller passed no certificate.
    #[error("no client certificate to check")]
    EmptyChain,
    /// A certificate of the chain could not be parsed or encoded.
    #[error("client certificate is not valid X.509: {0}")]
    Certificate(String),
    /// Neither the client's chain nor the CA bundle holds the issuer (a config fault or a chain
    /// the handshake did not verify).
    #[error(
        "no certificate named {issuer:?} that signed the client certificate is in its chain or in the CA bundle"
    )]
    NoIssuer {
        /// The issuer name, RFC 4514 form.
        issuer: String,
    },
    /// The certificate names no OCSP responder.
    #[error("client certificate {subject:?} has no OCSP URL in its Authority Information Access")]
    NoOcspUrl {
        /// The subject, RFC 4514 form.
        subject: String,
    },
    /// The responder did not answer in time.
    #[error("OCSP responder {url} did not answer within {timeout:?}")]
    Timeout {
        /// The responder URL.
        url: String,
        /// The configured timeout.
        timeout: std::time::Duration,
    },
    /// Connecting or talking to the responder failed.
    #[error("OCSP request to {url} failed: {reason}")]
    Http {
        /// The responder URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The responder answered with a redirect, which is not followed: the URL in the
    /// certificate is the only responder asked.
    #[error(
        "OCSP responder {url} answered HTTP {status} redirecting to {location:?}; redirects are not followed"
    )]
    Redirect {
        /// The responder URL.
        url: String,
        /// The HTTP status code (3xx).
        status: u16,
        /// The `Location` header as sent (at most 256 characters), empty if there was none.
        location: String,
    },
    /// The response body is larger than the checker reads (64 KiB); the rest was not read.
    #[error("OCSP response from {url} is larger than {limit} bytes")]
    ResponseTooLarge {
        /// The responder URL.
        url: String,
        /// The most bytes read.
        limit: usize,
    },
    /// The responder answered with an HTTP error.
    #[error("OCSP responder {url} answered HTTP {status}")]
    HttpStatus {
        /// The responder URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The response is not a well-formed basic OCSP response.
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    /// The responder refused the request (RFC 6960 §4.2.1 `OCSPResponseStatus`).
    #[error("OCSP responder answered {0}")]
    Responder(String),
    /// The response is signed with an algorithm we do not verify.
    #[error("OCSP response signed with unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Neither the issuer nor an OCSP-signing certificate issued by it signed the response.
    #[error("OCSP response is not signed by the issuer or a responder it authorized")]
    BadSignature,
    /// The response answers for other certificates.
    #[error("OCSP response holds no status for the requested certificate")]
    NoMatchingResponse,
    /// The response echoes a different nonce (a replay, RFC 6960 §4.4.1).
    #[error("OCSP response nonce does not match the request")]
    NonceMismatch,
    /// `thisUpdate` is in the future, beyond the allowed clock skew.
    #[error("OCSP response thisUpdate is in the future")]
    NotYetValid,
    /// `nextUpdate` has passed, beyond the allowed clock skew.
    #[error("OCSP response is stale: nextUpdate has passed")]
    Stale,
    /// The response echoes no nonce and is no longer fresh (its `nextUpdate` has passed or,
    /// without one, its `thisUpdate` is over 5 minutes old): it may be a replayed answer given
    /// before the certificate was revoked.
    #[error(
        "OCSP response echoes no nonce and is not fresh (nextUpdate passed, or thisUpdate over 5 minutes old without nextUpdate)"
    )]
    StaleWithoutNonce,
}

impl OcspError {
    /// A short name for the kind of failure, for metrics labels: `timeout`, `http`,
    /// `bad_response`, `no_url`, `certificate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Http { .. } | Self::HttpStatus { .. } | Self::Redirect { .. } => "http",
            Self::NoOcspUrl { .. } => "no_url",
            Self::EmptyChain | Self::Certificate(_) | Self::NoIssuer { .. } => "certificate",
            Self::Malformed(_)
            | Self::Responder(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::BadSignature
            | Self::NoMatchingResponse
            | Self::NonceMismatch
            | Self::NotYetValid
            | Self::Stale
            | Self::StaleWithoutNonce
            | Self::ResponseTooLarge { .. } => "bad_response",
        }
    }

    pub(crate) fn certificate(e: impl std::fmt::Display) -> Self {
        Self::Certificate(e.to_string())
    }

    pub(crate) fn malformed(e: impl std::fmt::Display) -> Self {
        Self::Malformed(e.to_string())
    }
}
