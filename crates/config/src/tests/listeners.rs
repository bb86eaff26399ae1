//! Listener keys: `mqtt.network.port`, `securePort`, `http.*`, `webSocket`, and `requireAuthentication`.

use super::*;

#[test]
fn port_accepts_integers_numeric_strings_and_host_port() {
    assert_eq!(
        clean("mqtt: {network: {port: 1884}}").mqtt.network.port,
        all(1884)
    );
    assert_eq!(
        clean("mqtt: {network: {port: '1884'}}").mqtt.network.port,
        all(1884)
    );
    assert_eq!(
        clean("mqtt: {network: {port: '127.0.0.1:1884'}}")
            .mqtt
            .network
            .port,
        addr("127.0.0.1:1884")
    );
    assert_eq!(
        clean("mqtt: {network: {port: '[::1]:1884'}}")
            .mqtt
            .network
            .port,
        addr("[::1]:1884")
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: 8884}}")
            .mqtt
            .network
            .secure_port,
        all(8884)
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: '0.0.0.0:8884'}}")
            .mqtt
            .network
            .secure_port,
        addr("0.0.0.0:8884")
    );
}

#[test]
fn port_zero_or_null_turns_the_listener_off() {
    assert_eq!(clean("mqtt: {network: {port: 0}}").mqtt.network.port, None);
    assert_eq!(
        clean("mqtt: {network: {port: null}}").mqtt.network.port,
        None
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: 0}}")
            .mqtt
            .network
            .secure_port,
        None
    );
    assert_eq!(
        clean("mqtt: {network: {securePort: ~}}")
            .mqtt
            .network
            .secure_port,
        None
    );
}

#[test]
fn rejects_ports_out_of_range_naming_key_value_and_what_is_allowed() {
    let p = error_at("mqtt: {network: {port: 70000}}", "mqtt.network.port");
    assert_eq!(p.value.as_deref(), Some("70000"));
    assert!(p.message.contains("1 to 65535"), "{p}");
    assert!(p.message.contains("0 or null"), "{p}");
    let p = error_at(
        "mqtt: {network: {securePort: -1}}",
        "mqtt.network.securePort",
    );
    assert_eq!(p.value.as_deref(), Some("-1"));
    let p = error_at(
        "mqtt: {network: {port: 'example.com:1883'}}",
        "mqtt.network.port",
    );
    assert_eq!(p.value.as_deref(), Some("\"example.com:1883\""));
    error_at("mqtt: {network: {port: true}}", "mqtt.network.port");
    error_at("mqtt: {network: {port: [1883]}}", "mqtt.network.port");
}

#[test]
fn rejects_two_listeners_on_one_port() {
    let p = error_at("mqtt: {network: {port: 8883}}", "mqtt.network.securePort");
    assert!(p.message.contains("mqtt.network.port"), "{p}");
    assert!(p.message.contains("8883"), "{p}");
    let p = error_at("http: {port: 1883}", "http.port");
    assert!(p.message.contains("also used by mqtt.network.port"), "{p}");
    let p = error_at("http: {securePort: 9926}", "http.securePort");
    assert!(p.message.contains("http.port"), "{p}");
    // Different addresses on the same port do not clash.
    clean("mqtt: {network: {port: '127.0.0.1:1883', securePort: '127.0.0.2:1883'}}");
}

#[test]
fn http_ports_are_read_and_other_http_keys_ignored() {
    let c = clean("http: {port: 9000, securePort: 9443, cors: true, compressionThreshold: 1200}");
    assert_eq!(c.http.port, all(9000));
    assert_eq!(c.http.secure_port, all(9443));
    assert_eq!(clean("http: {securePort: null}").http.secure_port, None);
}

#[test]
fn listeners_follow_ports_and_web_socket() {
    let kinds = |c: &Config| {
        c.listeners()
            .iter()
            .map(|l| (l.kind, l.addr.to_string()))
            .collect::<Vec<_>>()
    };
    let c = clean("http: {securePort: 9927}");
    assert_eq!(
        kinds(&c),
        vec![
            (ListenerKind::Tcp, "1883".into()),
            (ListenerKind::Tls, "8883".into()),
            (ListenerKind::WebSocket, "9926".into()),
            (ListenerKind::SecureWebSocket, "9927".into()),
        ]
    );
    let c = clean("mqtt: {webSocket: false, network: {securePort: 0}}");
    assert_eq!(kinds(&c), vec![(ListenerKind::Tcp, "1883".into())]);
    // With WebSocket off, the HTTP port is Harper's, not ours: no clash.
    clean("mqtt: {webSocket: false}\nhttp: {port: 1883}");
}

#[test]
fn warns_when_every_listener_is_off() {
    let loaded = load_yaml("mqtt: {webSocket: false, network: {port: 0, securePort: null}}");
    assert!(!loaded.problems.has_errors());
    warning_at(&loaded, "mqtt.network");
}

#[test]
fn web_socket_and_require_authentication_accept_booleans_and_their_strings() {
    let c = clean("mqtt: {webSocket: false, requireAuthentication: false}");
    assert!(!c.mqtt.web_socket);
    assert!(!c.mqtt.require_authentication);
    let c = clean("mqtt: {webSocket: 'false', requireAuthentication: 'FALSE'}");
    assert!(!c.mqtt.web_socket);
    assert!(!c.mqtt.require_authentication);
    let c = clean("mqtt: {webSocket: 'true', requireAuthentication: true}");
    assert!(c.mqtt.web_socket);
    assert!(c.mqtt.require_authentication);
}

#[test]
fn rejects_non_booleans() {
    let p = error_at(
        "mqtt: {requireAuthentication: 'yes'}",
        "mqtt.requireAuthentication",
    );
    assert_eq!(p.value.as_deref(), Some("\"yes\""));
    assert!(p.message.contains("true or false"), "{p}");
    error_at("mqtt: {webSocket: 1}", "mqtt.webSocket");
}
