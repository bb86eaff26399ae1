//! Client-certificate verification for rustls servers.
//!
//! [`ClientVerifier`] is a rustls 0.23 [`ClientCertVerifier`](rustls::server::danger::ClientCertVerifier)
//! (ring provider) that checks client chains against a PEM CA bundle; clients may send
//! intermediates in their chain. `required: false` asks for a certificate without insisting.
//! [`UserMapping`] turns the verified end-entity certificate into a username.
//!
//! rustls verifiers are synchronous, so nothing here does network I/O inside the handshake.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use mtls_verifier::{ClientVerifier, UserMapping, VerifierOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (server_chain, server_key) = (vec![], unimplemented!());
//! let verifier = ClientVerifier::new(&VerifierOptions {
//!     ca_bundle_pem: std::fs::read("clients-ca.pem")?,
//!     required: true,
//! })?;
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let config = rustls::ServerConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_client_cert_verifier(verifier.into_arc())
//!     .with_single_cert(server_chain, server_key)?;
//! # let conn: rustls::ServerConnection = unimplemented!();
//! // After the handshake: the peer's leaf certificate names the user.
//! if let Some(leaf) = conn.peer_certificates().and_then(|chain| chain.first()) {
//!     let user = UserMapping::CommonName.user_for(leaf)?;
//! #   let _ = (user, config);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod user;
mod verifier;

pub use error::{BuildError, UserError};
pub use user::{UserMapping, common_name};
pub use verifier::{ClientVerifier, VerifierOptions};
