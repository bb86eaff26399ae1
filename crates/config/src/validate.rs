//! Checks across keys that no single value shows: listeners sharing a port, TLS or mTLS without the
//! files they need, options that have no effect. Pure: no file system access.

use crate::listener::ListenerKind;
use crate::mtls::CaSource;
use crate::problem::{Problem, Problems, Severity};
use crate::tls::TlsOrigin;
use crate::{Config, Listener};

impl Config {
    /// Every cross-key problem, all at once. Values of the wrong type or out of range are found
    /// while loading ([`crate::load`]), which also runs this.
    pub fn validate(&self) -> Problems {
        let mut problems = Problems::default();
        let listeners = self.listeners();
        self.check_ports(&listeners, &mut problems);
        self.check_tls(&listeners, &mut problems);
        self.check_mtls(&listeners, &mut problems);
        self.check_handshakes(&mut problems);
        problems
    }

    fn check_handshakes(&self, problems: &mut Problems) {
        let limits = &self.mqtt.limits;
        if let (Some(all), Some(per)) = (limits.max_handshakes, limits.max_handshakes_per_address)
            && per > all
        {
            problems.push(problem(
                Severity::Warning,
                "mqtt.limits.maxHandshakesPerAddress",
                Some(per.to_string()),
                format!("has no effect: above mqtt.limits.maxHandshakes ({all})"),
            ));
        }
    }

    fn check_ports(&self, listeners: &[Listener], problems: &mut Problems) {
        for (i, later) in listeners.iter().enumerate() {
            if let Some(earlier) = listeners[..i]
                .iter()
                .find(|l| l.addr.conflicts_with(&later.addr))
            {
                problems.push(problem(
                    Severity::Error,
                    later.key,
                    Some(later.addr.to_string()),
                    format!(
                        "port {} is also used by {}; each listener needs its own port (or 0/null to turn one off)",
                        later.addr.port(),
                        earlier.key
                    ),
                ));
            }
        }
        if listeners.is_empty() {
            problems.push(problem(
                Severity::Warning,
                "mqtt.network",
                None,
                "every listener is off (port, securePort, and webSocket or http ports); the broker accepts no connections",
            ));
        }
    }

    fn check_tls(&self, listeners: &[Listener], problems: &mut Problems) {
        if self.tls.origin != TlsOrigin::Configured {
            return;
        }
        let Some(user) = listeners.iter().find(|l| l.kind.is_tls()) else {
            return;
        };
        if self.tls.certificate.is_none() {
            problems.push(problem(
                Severity::Error,
                "tls.certificate",
                None,
                format!(
                    "not set, but tls names other files and {} needs a certificate chain (a PEM file path)",
                    user.key
                ),
            ));
        }
        if self.tls.private_key.is_none() {
            problems.push(problem(
                Severity::Error,
                "tls.privateKey",
                None,
                format!("not set, but tls names other files and {} needs a private key (a PEM file path)", user.key),
            ));
        }
    }

    fn check_mtls(&self, listeners: &[Listener], problems: &mut Problems) {
        let Some(mtls) = &self.mqtt.network.mtls else {
            return;
        };
        let tls_listener = listeners.iter().find(|l| l.kind.is_tls());
        if mtls.certificate_authority.is_none() {
            problems.push(problem(
                Severity::Error,
                "mqtt.network.mtls.certificateAuthority",
                None,
                "not set, and tls.certificateAuthority is not set either; mTLS needs the CA file (PEM) that \
                 client certificates chain to",
            ));
        } else if mtls.certificate_authority_source == CaSource::Tls
            && self.tls.origin == TlsOrigin::Defaults
            && let Some(listener) = tls_listener
        {
            // Nothing names a CA: the default `<root>/keys/ca.pem` is the one the broker writes
            // at first start for its own server certificate, and it keeps no key to issue
            // client certificates with, so every one would fail as "unknown ca".
            problems.push(problem(
                Severity::Error,
                "mqtt.network.mtls.certificateAuthority",
                None,
                format!(
                    "not set, and the tls section names no file, so client certificates would be checked \
                     against Harper's default CA {}, which the broker creates at first start without keeping \
                     its key: every client certificate on {} would be refused as \"unknown ca\"; set \
                     mqtt.network.mtls.certificateAuthority (or tls.certificateAuthority, with \
                     tls.certificate and tls.privateKey) to the CA file (PEM) that issues the client \
                     certificates",
                    mtls.certificate_authority
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    listener.key
                ),
            ));
        }
        if tls_listener.is_none() {
            problems.push(problem(
                Severity::Warning,
                "mqtt.network.mtls",
                None,
                "has no effect: no TLS listener is on (mqtt.network.securePort, or http.securePort with mqtt.webSocket)",
            ));
        }
        if mtls.required {
            let plain: Vec<&str> = listeners
                .iter()
                .filter(|l| matches!(l.kind, ListenerKind::Tcp | ListenerKind::WebSocket))
                .map(|l| l.key)
                .collect();
            if !plain.is_empty() {
                problems.push(problem(
                    Severity::Warning,
                    "mqtt.network.mtls.required",
                    Some("true".to_owned()),
                    format!(
                        "clients of the plaintext listeners ({}) cannot present a certificate and will be refused; \
                         turn those listeners off (0 or null) if that is intended",
                        plain.join(", ")
                    ),
                ));
            }
        }
    }
}

/// A problem about a typed value (the origin is filled in by the loader).
pub(crate) fn problem(
    severity: Severity,
    key: &str,
    value: Option<String>,
    message: impl Into<String>,
) -> Problem {
    Problem {
        severity,
        key: key.to_owned(),
        value,
        message: message.into(),
        origin: None,
    }
}
