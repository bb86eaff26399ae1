//! TCP, TLS and WebSocket listeners turned into MQTT byte streams.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout.
