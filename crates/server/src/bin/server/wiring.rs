//! The parsed configuration mapped onto the options each library crate takes, in one place: the
//! crates themselves know nothing of the configuration format.

use std::sync::Arc;

use anyhow::Context;
use config::Config;
use server::{ClientAuth, ClientAuthSettings, OcspSettings};

use crate::default_keys;
use crate::logging::NOTIFY;

/// The TLS set-up of the TLS listeners, when any is on, and client certificates
/// (`mqtt.network.mtls`), when on.
pub(crate) fn tls(
    config: &Config,
) -> anyhow::Result<(Option<transport::ServerTls>, Option<Arc<ClientAuth>>)> {
    let any_tls = config.listeners().iter().any(|l| l.kind.is_tls());
    // The default keys (created on first start) come first: the client CA may be among them.
    let identity = if any_tls {
        Some(tls_identity(&config.tls)?)
    } else {
        None
    };
    let client_auth = match &config.mqtt.network.mtls {
        Some(mtls) if any_tls => Some(Arc::new(client_auth(mtls)?)),
        Some(mtls) => {
            tracing::warn!(
                "mqtt.network.mtls is on but no TLS listener is (mqtt.network.securePort): no client can present a certificate"
            );
            Some(Arc::new(server::ClientAuth::without_tls(mtls.required)))
        }
        None => None,
    };
    // `mtls.required` with plaintext listeners on is a warning of the configuration check.
    let tls = match identity {
        Some((identity, files)) => Some(server_tls(
            identity,
            files,
            client_auth.as_ref().and_then(|a| a.verifier()),
        )?),
        None => None,
    };
    Ok((tls, client_auth))
}

/// The server's certificate and key from the `tls` section (created on first start when the
/// section is left at its defaults), and the files to watch for changes.
fn tls_identity(
    tls: &config::Tls,
) -> anyhow::Result<(transport::TlsIdentity, transport::IdentityFiles)> {
    let (Some(certificate), Some(key)) = (&tls.certificate, &tls.private_key) else {
        // `validate()` reports a section naming one without the other.
        anyhow::bail!("tls: a certificate and a private key are needed for the TLS listeners");
    };
    if let (config::TlsOrigin::Defaults, config::PrivateKey::File(key_file), Some(ca)) =
        (tls.origin, key, &tls.certificate_authority)
    {
        let created = default_keys::ensure(&default_keys::DefaultFiles {
            certificate,
            private_key: key_file,
            certificate_authority: ca,
        })?;
        if !created.is_empty() {
            let files: Vec<String> = created.iter().map(|p| p.display().to_string()).collect();
            tracing::info!(
                target: NOTIFY,
                "TLS: no certificate configured; created a CA and a server certificate: {}",
                files.join(", ")
            );
        }
    }
    let files = transport::IdentityFiles {
        certificate: certificate.clone(),
        private_key: match key {
            config::PrivateKey::File(path) => transport::KeySource::File(path.clone()),
            config::PrivateKey::Inline(pem) => transport::KeySource::Pem(pem.expose().to_owned()),
        },
    };
    let identity = files.load().context("tls")?;
    Ok((identity, files))
}

/// The TLS set-up of every TLS listener: the server identity (reloaded when its files change)
/// and, with mTLS on, the client-certificate verifier.
fn server_tls(
    identity: transport::TlsIdentity,
    files: transport::IdentityFiles,
    client_verifier: Option<
        std::sync::Arc<dyn transport::rustls::server::danger::ClientCertVerifier>,
    >,
) -> anyhow::Result<transport::ServerTls> {
    let server_tls = match client_verifier {
        Some(verifier) => transport::ServerTls::with_client_verifier(identity, verifier)?,
        None => transport::ServerTls::new(identity)?,
    };
    tokio::spawn(server_tls.clone().watch_files(
        files,
        CERTIFICATE_CHECK_INTERVAL,
        |outcome| match outcome {
            Ok(()) => tracing::info!(target: NOTIFY, "TLS: certificate files changed; reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                "TLS: certificate files changed but cannot be used; the previous certificate stays"
            ),
        },
    ));
    Ok(server_tls)
}

/// How often the TLS certificate and key files are checked for changes.
const CERTIFICATE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The broker's options from `mqtt.limits`.
pub(crate) fn broker_options(config: &Config) -> server::BrokerOptions {
    let limits = &config.mqtt.limits;
    let defaults = server::BrokerOptions::default();
    server::BrokerOptions {
        max_packet_size: limits
            .max_packet_size
            .unwrap_or(const { std::num::NonZeroU32::new(config::PROTOCOL_MAX_PACKET_SIZE).expect("non-zero") }),
        receive_maximum: limits.receive_maximum,
        max_inflight: limits.max_inflight,
        max_queued_messages: limits.max_queued_messages.get() as usize,
        max_topic_alias: limits.max_topic_alias.map_or(0, |a| a.get()),
        max_keep_alive: limits
            .max_keep_alive
            .and_then(|d| u16::try_from(d.as_secs()).ok())
            .and_then(std::num::NonZeroU16::new)
            .unwrap_or(defaults.max_keep_alive),
        connect_timeout: limits.connect_timeout,
        connection_rate_per_ip: limits.connection_rate_per_ip,
        max_session_expiry: limits.max_session_expiry,
        max_subscriptions_per_client: limits.max_subscriptions_per_client,
        max_queued_bytes: limits.max_queued_bytes,
        max_retained_messages: limits.max_retained_messages,
        max_retained_bytes: limits.max_retained_bytes,
        ..defaults
    }
}

/// The store's policy from `mqtt.storage.durability`: the one place the configuration meets
/// `store`, which knows nothing of the configuration format.
pub(crate) fn store_policy(durability: config::Durability) -> store::Policy {
    match durability {
        config::Durability::Always => store::Policy::Always,
        config::Durability::Batch {
            max_delay,
            max_size,
        } => store::Policy::Batch {
            max_delay,
            max_size: usize::try_from(max_size.get()).unwrap_or(usize::MAX),
        },
        config::Durability::Interval(every) => store::Policy::Interval(every),
        config::Durability::Never => store::Policy::Never,
    }
}

/// The handshake slots shared by every TLS and WebSocket listener, from `mqtt.limits`
/// (`maxHandshakes`, `maxHandshakesPerAddress`; `null` is no limit).
pub(crate) fn handshake_limit(limits: &config::Limits) -> transport::HandshakeLimit {
    let count = |n: Option<std::num::NonZeroU32>| {
        n.map_or(usize::MAX, |n| {
            usize::try_from(n.get()).unwrap_or(usize::MAX)
        })
    };
    transport::HandshakeLimit::per_address(
        count(limits.max_handshakes),
        count(limits.max_handshakes_per_address),
    )
}

/// How long TLS and WebSocket handshakes may take: `handshakeTimeout`, and never past
/// `connectTimeout`, the budget from accept to CONNECT they are part of.
pub(crate) fn handshake_timeout(limits: &config::Limits) -> std::time::Duration {
    limits.handshake_timeout.min(limits.connect_timeout)
}

/// The HTTP side of a WebSocket listener, or of the port kept for `/health` and `/metrics`:
/// the broker's status, the `/metrics` token (`http.metricsToken`) and the origins an upgrade
/// may come from (`http.cors` with `http.corsAccessList`).
pub(crate) fn http_side(
    listener: transport::Listener,
    http: &config::Http,
    status: Arc<dyn transport::HttpStatus>,
) -> transport::Listener {
    let mut listener = listener.with_http_status(status);
    if let Some(token) = &http.metrics_token {
        listener = listener.with_metrics_token(token.expose());
    }
    if let Some(origins) = http.web_socket_origins() {
        listener = listener.with_allowed_origins(origins.to_vec());
    }
    listener
}

/// Builds the verifier and the OCSP checker from `mqtt.network.mtls`, reading the CA bundle.
/// Errors name the configuration key at fault.
fn client_auth(mtls: &config::Mtls) -> anyhow::Result<ClientAuth> {
    let Some(ca_path) = &mtls.certificate_authority else {
        anyhow::bail!(
            "mqtt.network.mtls.certificateAuthority: mTLS needs a CA bundle (this key or tls.certificateAuthority)"
        );
    };
    let ca_bundle_pem = std::fs::read(ca_path).with_context(|| {
        format!(
            "mqtt.network.mtls.certificateAuthority: cannot read {}",
            ca_path.display()
        )
    })?;
    let mapping = match &mtls.user {
        config::MtlsUser::CommonName => mtls_verifier::UserMapping::CommonName,
        config::MtlsUser::Fixed(user) => mtls_verifier::UserMapping::Fixed(user.clone()),
        config::MtlsUser::CredentialsRequired => mtls_verifier::UserMapping::None,
    };
    let ocsp = mtls.certificate_verification.map(|v| OcspSettings {
        timeout: v.timeout,
        cache_ttl: v.cache_ttl,
        failure_mode: match v.failure_mode {
            config::FailureMode::FailOpen => mtls_verifier::FailureMode::FailOpen,
            config::FailureMode::FailClosed => mtls_verifier::FailureMode::FailClosed,
        },
    });
    ClientAuth::new(ClientAuthSettings {
        ca_bundle_pem,
        mapping,
        required: mtls.required,
        ocsp,
    })
    .with_context(|| {
        format!(
            "mqtt.network.mtls.certificateAuthority: {}",
            ca_path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn handshakes_end_within_the_connect_timeout() {
        let limits = config::Limits::default();
        assert_eq!(handshake_timeout(&limits), Duration::from_secs(5));
        let short = config::Limits {
            connect_timeout: Duration::from_secs(2),
            ..limits
        };
        assert_eq!(handshake_timeout(&short), Duration::from_secs(2));
    }

    #[test]
    fn default_durability_is_the_store_default_policy() {
        assert_eq!(
            store_policy(config::Durability::default()),
            store::Policy::default()
        );
    }

    #[test]
    fn maps_every_durability_onto_its_store_policy() {
        assert_eq!(
            store_policy(config::Durability::Batch {
                max_delay: Duration::from_millis(20),
                max_size: std::num::NonZeroU32::new(7).expect("non-zero"),
            }),
            store::Policy::Batch {
                max_delay: Duration::from_millis(20),
                max_size: 7
            }
        );
        assert_eq!(
            store_policy(config::Durability::Interval(Duration::from_secs(1))),
            store::Policy::Interval(Duration::from_secs(1))
        );
        assert_eq!(
            store_policy(config::Durability::Always),
            store::Policy::Always
        );
        assert_eq!(
            store_policy(config::Durability::Never),
            store::Policy::Never
        );
    }
}
