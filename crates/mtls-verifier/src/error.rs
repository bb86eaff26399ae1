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
