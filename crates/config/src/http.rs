//! The `http` section: the ports MQTT over WebSocket uses (`port`, `securePort`), who may open a
//! WebSocket from a browser (Harper's `cors` and `corsAccessList`), and the bearer token
//! `/metrics` asks for (`metricsToken`, our addition). Harper's other HTTP keys are ignored.
//!
//! Origins follow Harper's rule for browser requests to its own endpoints: with `cors: true` and
//! a `corsAccessList` naming origins (and no `*`), an upgrade whose `Origin` is not listed is
//! refused with 403; a request without an `Origin` (not a browser) is always let through. With
//! `cors: false` (Harper's default) or no list, any origin may connect.

use std::fmt;

use figment::value::Value;
use serde::{Serialize, Serializer};

use crate::listener::BindAddress;
use crate::read::{Node, Reader};

/// The `http` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    /// `port` (default 9926): MQTT over WebSocket when `mqtt.webSocket` is on, and always
    /// `/health` and `/metrics`; `None` when off.
    pub port: Option<BindAddress>,
    /// `securePort` (default off): MQTT over secure WebSocket when `mqtt.webSocket` is on.
    pub secure_port: Option<BindAddress>,
    /// `cors` (default false, as in Harper's default configuration): check browsers' `Origin`
    /// against `corsAccessList`.
    pub cors: bool,
    /// `corsAccessList` (default `null`): the origins (`https://app.example.com`) allowed, `*`
    /// for any; `None` when unset, `null`, or listing only `null` (Harper's default `[null]`).
    pub cors_access_list: Option<Vec<String>>,
    /// `metricsToken` (our addition, default `null`): `GET /metrics` needs
    /// `Authorization: Bearer <token>`; `None` leaves it open.
    pub metrics_token: Option<MetricsToken>,
}

/// The bearer token of `/metrics`: `Debug` and `Serialize` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// The token, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for MetricsToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Shorter tokens are accepted with a warning: they can be guessed.
const MIN_TOKEN_LEN: usize = 16;

impl Http {
    /// Reads the section; `default_port` is `port`'s default.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        node: &Node<'_>,
        default_port: Option<BindAddress>,
    ) -> Http {
        let http = r.enter(node.clone());
        let cors = r.bool(&http.child("cors")).or(false);
        let cors_access_list = read_origins(r, &http.child("corsAccessList"));
        if !cors && cors_access_list.is_some() {
            r.warn(
                &http.child("corsAccessList"),
                "has no effect while http.cors is false: WebSocket upgrades from any origin are accepted",
            );
        }
        Http {
            port: r
                .port(&http.child("port"))
                .nullable(Some(default_port))
                .flatten(),
            secure_port: r.port(&http.child("securePort")).nullable(None).flatten(),
            cors,
            cors_access_list,
            metrics_token: read_token(r, &http.child("metricsToken")),
        }
    }

    /// The origins a WebSocket upgrade that carries an `Origin` may come from; `None` for any.
    pub fn web_socket_origins(&self) -> Option<&[String]> {
        let list = self.cors_access_list.as_deref().filter(|_| self.cors)?;
        (!list.iter().any(|o| o == "*")).then_some(list)
    }
}

const ORIGINS_ALLOWED: &str = "expected a list of origins such as https://app.example.com (or * for any), \
                               a comma-separated string of them, or null";

/// A list of origins, or a comma-separated string (environment overrides are strings). `null`
/// entries are skipped; an empty result is `None`.
fn read_origins(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Vec<String>> {
    let mut origins = Vec::new();
    match node.value {
        None | Some(Value::Empty(..)) => return None,
        Some(Value::String(_, s)) => origins.extend(s.split(',').map(str::to_owned)),
        Some(Value::Array(_, items)) => {
            for item in items {
                match item {
                    Value::Empty(..) => {}
                    Value::String(_, s) => origins.push(s.clone()),
                    _ => {
                        r.error(node, ORIGINS_ALLOWED);
                        return None;
                    }
                }
            }
        }
        Some(_) => {
            r.error(node, ORIGINS_ALLOWED);
            return None;
        }
    }
    let origins: Vec<String> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    for origin in &origins {
        if origin != "*" && !looks_like_origin(origin) {
            r.warn(
                node,
                format!(
                    "{origin:?} never matches: a browser's Origin is scheme://host[:port], such as https://app.example.com"
                ),
            );
        }
    }
    (!origins.is_empty()).then_some(origins)
}

/// `scheme://host[:port]` with nothing after the host.
fn looks_like_origin(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@'])
    })
}

/// The token, never echoed in a problem (the value is left out of it).
fn read_token(r: &mut Reader<'_>, node: &Node<'_>) -> Option<MetricsToken> {
    let unshown = Node {
        path: node.path.clone(),
        value: None,
    };
    match node.value {
        None | Some(Value::Empty(..)) => None,
        Some(Value::String(_, s)) if !s.trim().is_empty() => {
            let token = s.trim();
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                r.error(
                    &unshown,
                    "must be printable ASCII without spaces, to fit in an Authorization header",
                );
                return None;
            }
            if token.len() < MIN_TOKEN_LEN {
                r.warn(
                    &unshown,
                    format!(
                        "shorter than {MIN_TOKEN_LEN} characters: a short token can be guessed"
                    ),
                );
            }
            Some(MetricsToken(token.to_owned()))
        }
        Some(_) => {
            r.error(
                &unshown,
                "expected a token string (printable ASCII, at least 16 characters), or null for an open /metrics",
            );
            None
        }
    }
}
