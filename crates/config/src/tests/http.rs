//! The `http` section beyond its ports: Harper's `cors` and `corsAccessList` (the origins a
//! WebSocket upgrade may come from), our `metricsToken`, and `/health` with WebSocket off.

use super::*;

#[test]
fn origins_and_token_are_open_by_default() {
    let c = clean("");
    assert!(!c.http.cors);
    assert_eq!(c.http.cors_access_list, None);
    assert_eq!(c.http.web_socket_origins(), None);
    assert_eq!(c.http.metrics_token, None);
    // Harper's default file lists `null`: no list.
    let c = clean("http: {cors: true, corsAccessList: [null]}");
    assert_eq!(c.http.web_socket_origins(), None);
}

#[test]
fn cors_access_list_limits_websocket_origins_when_cors_is_on() {
    let c = clean(
        "http: {cors: true, corsAccessList: ['https://app.example.com/', ' http://localhost:8080', null]}",
    );
    let expected = ["https://app.example.com", "http://localhost:8080"].map(String::from);
    assert_eq!(c.http.web_socket_origins(), Some(&expected[..]));
    // `*` allows any origin.
    let c = clean("http: {cors: true, corsAccessList: ['https://a.example', '*']}");
    assert_eq!(c.http.web_socket_origins(), None);
    // From the environment: comma-separated.
    let loaded = load_full(
        "",
        &[
            ("HTTP_CORS", "true"),
            ("HTTP_CORSACCESSLIST", "https://a.example,https://b.example"),
        ],
        &[],
    );
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    assert_eq!(
        loaded.config.http.web_socket_origins().map(<[String]>::len),
        Some(2)
    );
}

#[test]
fn warns_about_origins_that_cannot_apply() {
    // Harper checks the list only with `cors: true`.
    let loaded = load_yaml("http: {corsAccessList: ['https://a.example']}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    assert!(
        warning_at(&loaded, "http.corsAccessList")
            .message
            .contains("http.cors is false")
    );
    assert_eq!(loaded.config.http.web_socket_origins(), None);
    for never in ["app.example.com", "https://a.example/path"] {
        let loaded = load_yaml(&format!(
            "http: {{cors: true, corsAccessList: ['{never}']}}"
        ));
        assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
        assert!(
            warning_at(&loaded, "http.corsAccessList")
                .message
                .contains("never matches"),
            "{never}"
        );
    }
    error_at("http: {corsAccessList: 5}", "http.corsAccessList");
    error_at("http: {corsAccessList: [[1]]}", "http.corsAccessList");
    error_at("http: {cors: often}", "http.cors");
}

#[test]
fn metrics_token_is_read_and_never_shown() {
    let secret = "s3cret-token-0123456789";
    let loaded = load_full("", &[("HTTP_METRICSTOKEN", secret)], &[]);
    assert!(loaded.problems.is_empty(), "{}", loaded.problems);
    let token = loaded.config.http.metrics_token.clone().expect("set");
    assert_eq!(token.expose(), secret);
    assert!(!format!("{:?}", loaded.config).contains(secret));
    let shown: Vec<(String, String)> = loaded.config.entries();
    assert!(
        shown
            .iter()
            .any(|(k, v)| k == "http.metricsToken" && v == "\"<redacted>\""),
        "{shown:?}"
    );
    assert!(!shown.iter().any(|(_, v)| v.contains(secret)));

    // Problems about the token never print its value.
    let loaded = load_yaml("http: {metricsToken: short}");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    let p = warning_at(&loaded, "http.metricsToken");
    assert!(!p.to_string().contains("short\""), "{p}");
    for bad in [
        "'two words here, long enough'",
        "12345678901234567890",
        "''",
    ] {
        let p = error_at(
            &format!("http: {{metricsToken: {bad}}}"),
            "http.metricsToken",
        );
        assert_eq!(p.value, None, "{p}");
    }
}

#[test]
fn health_stays_on_the_http_port_with_websocket_off() {
    let c = clean("");
    assert_eq!(
        c.http_status_port(),
        None,
        "the WebSocket listener serves it"
    );
    let c = clean("mqtt: {webSocket: false}");
    assert_eq!(c.http_status_port(), all(9926));
    assert!(
        !c.listeners()
            .iter()
            .any(|l| l.kind == ListenerKind::WebSocket)
    );
    let c = clean("mqtt: {webSocket: false}\nhttp: {port: '127.0.0.1:0'}");
    assert_eq!(c.http_status_port(), addr("127.0.0.1:0"));
    assert_eq!(
        clean("mqtt: {webSocket: false}\nhttp: {port: 0}").http_status_port(),
        None
    );
}
