//! Typed, validated configuration for the broker, read from `harperdb-config.yaml`.
