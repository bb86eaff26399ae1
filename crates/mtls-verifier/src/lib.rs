//! Client-certificate verification for rustls servers, with OCSP revocation checks.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout.
