//! Library half of `cargo xtask`: what the tasks share with test suites and the broker.
//!
//! [`pki`] generates the test PKI that `cargo xtask gen-certs` writes, and the server identity the
//! broker creates under `<root>/keys/` at first start. [`testing`] holds what else the test
//! suites share.

pub mod pki;
pub mod testing;
