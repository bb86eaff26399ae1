//! Credential checks and publish/subscribe permissions.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout.
