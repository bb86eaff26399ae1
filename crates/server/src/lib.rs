//! The MQTT broker: sessions, routing and the retained store.
