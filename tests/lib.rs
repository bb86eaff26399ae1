//! Black-box tests of the broker live in this package; see the `[[test]]` targets.
