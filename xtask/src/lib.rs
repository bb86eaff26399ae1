//! Library half of `cargo xtask`: what the tasks share with the test suites.
//!
//! [`pki`] generates the test PKI that `cargo xtask gen-certs` writes. [`testing`] holds what else
//! the test suites share.

pub mod pki;
pub mod testing;
