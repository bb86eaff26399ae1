//! Typed, validated configuration for the broker, read from `harperdb-config.yaml`.
//!
//! [`load`] merges the built-in defaults, the file, the environment and command-line overrides (in
//! that order of precedence, later wins) into a [`Config`], and returns it with every [`Problem`]
//! found: values of the wrong type or out of range, unknown keys inside `mqtt` (warnings), and
//! what [`Config::validate`] finds across keys. [`Config::check_files`] is the one check that
//! touches the file system (named certificate files exist and can be read).
//!
//! Keys, types, defaults and meaning follow Harper's documentation of the `mqtt` section; our own
//! additions (`mqtt.limits`, `mqtt.storage`, `authentication.usersFile`) use the same camelCase style.
//! The types are plain data: `Option` for "off" or "no limit", `Duration` for times.

mod error;
mod files;
mod http;
mod keys;
mod limits;
mod listener;
mod load;
mod logging;
mod mtls;
mod problem;
mod read;
mod rotation;
mod ser;
mod show;
mod storage;
#[cfg(test)]
mod tests;
mod tls;
mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::LoadError;
pub use http::{Http, MetricsToken};
pub use keys::{key_for_override, settable_keys};
pub use limits::{Limits, PROTOCOL_MAX_KEEP_ALIVE, PROTOCOL_MAX_PACKET_SIZE};
pub use listener::{BindAddress, Listener, ListenerKind};
pub use load::{CONFIG_FILE_NAME, Loaded, Override, default_config_file, load, resolve_root};
pub use logging::{Level, Logging, MQTT_TAG};
pub use mtls::{CaSource, CertificateVerification, FailureMode, Mtls, MtlsUser};
pub use problem::{Problem, Problems, Severity};
pub use rotation::{MIN_ROTATION_SIZE, Rotation};
pub use storage::{Durability, Storage};
pub use tls::{InlinePem, PrivateKey, Tls, TlsOrigin};

use read::{Node, Reader};

/// The whole configuration the broker uses, with every default resolved and every path expanded.
///
/// Serializing it gives the effective configuration in the file's own shape (inline keys redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The root directory (`--root`, else `ROOTPATH`, else `~/hdb`); relative paths in the file are
    /// taken relative to it.
    #[serde(rename = "rootPath")]
    pub root: PathBuf,
    /// The `mqtt` section.
    pub mqtt: Mqtt,
    /// The `http` section: the ports MQTT over WebSocket uses, `/health` and `/metrics`.
    pub http: Http,
    /// The `tls` section: the server certificate, shared with Harper's HTTP server.
    pub tls: Tls,
    /// The top-level `logging` section: Harper's main log.
    pub logging: Logging,
    /// The `authentication` section.
    pub authentication: Authentication,
}

/// The `mqtt` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mqtt {
    /// `mqtt.network`: listeners and mTLS.
    pub network: Network,
    /// `mqtt.webSocket` (default true): MQTT over WebSocket on `http.port` and `http.securePort`.
    pub web_socket: bool,
    /// `mqtt.requireAuthentication` (default true): a client needs credentials or a certificate-derived
    /// user; when false, anonymous clients connect and are checked on every operation.
    pub require_authentication: bool,
    /// Where MQTT logs go: `mqtt.logging` over the main log's settings (see [`Logging`]).
    pub logging: Logging,
    /// `mqtt.limits` (our addition).
    pub limits: Limits,
    /// `mqtt.storage` (our addition).
    pub storage: Storage,
}

/// `mqtt.network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `port` (default 1883 on every interface): plain MQTT; `None` when off.
    pub port: Option<BindAddress>,
    /// `securePort` (default 8883 on every interface): MQTT over TLS; `None` when off.
    pub secure_port: Option<BindAddress>,
    /// `mtls` (default off): client-certificate authentication on the TLS listeners.
    #[serde(serialize_with = "mtls::mtls_or_false")]
    pub mtls: Option<Mtls>,
}

/// The `authentication` section; only our key is read, Harper's others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// `usersFile` (default `<root>/users.yaml`): MQTT users and roles (our addition).
    pub users_file: PathBuf,
}

/// The default plain MQTT port.
pub const DEFAULT_PORT: u16 = 1883;
/// The default MQTT over TLS port.
pub const DEFAULT_SECURE_PORT: u16 = 8883;
/// The default HTTP port, which carries MQTT over WebSocket.
pub const DEFAULT_HTTP_PORT: u16 = 9926;

impl Config {
    /// The built-in defaults for a root directory: what runs with no file and no overrides.
    pub fn defaults(root: &Path) -> Config {
        let origins = Default::default();
        let empty = figment::value::Value::from(figment::value::Dict::new());
        Config::read(&mut Reader::new(root, None, &origins), &Node::root(&empty))
    }

    /// Reads every section from the merged tree.
    fn read(r: &mut Reader<'_>, top: &Node<'_>) -> Config {
        let tls = Tls::read(r, &top.child("tls"));
        let logging = Logging::read_main(r, &top.child("logging"));
        let mqtt_node = r.enter(top.child("mqtt"));
        let network = r.enter(mqtt_node.child("network"));
        let authentication = r.enter(top.child("authentication"));
        Config {
            mqtt: Mqtt {
                network: Network {
                    port: r
                        .port(&network.child("port"))
                        .nullable(Some(default_port(DEFAULT_PORT)))
                        .flatten(),
                    secure_port: r
                        .port(&network.child("securePort"))
                        .nullable(Some(default_port(DEFAULT_SECURE_PORT)))
                        .flatten(),
                    mtls: Mtls::read(
                        r,
                        &network.child("mtls"),
                        tls.certificate_authority.as_ref(),
                    ),
                },
                web_socket: r.bool(&mqtt_node.child("webSocket")).or(true),
                require_authentication: r.bool(&mqtt_node.child("requireAuthentication")).or(true),
                logging: Logging::read_mqtt(r, &mqtt_node.child("logging"), &logging),
                limits: Limits::read(r, &mqtt_node.child("limits")),
                storage: Storage::read(r, &mqtt_node.child("storage")),
            },
            http: Http::read(r, &top.child("http"), default_port(DEFAULT_HTTP_PORT)),
            authentication: Authentication {
                users_file: r
                    .path(&authentication.child("usersFile"))
                    .or_else_with(|| r.root.join("users.yaml")),
            },
            tls,
            logging,
            root: r.root.to_path_buf(),
        }
    }

    /// The listeners that are on, in banner order: TCP, TLS, WS, WSS. WebSocket listeners are on
    /// only with `mqtt.webSocket`.
    pub fn listeners(&self) -> Vec<Listener> {
        let net = &self.mqtt.network;
        let mut on = Vec::new();
        let mut add = |kind, addr: Option<BindAddress>, key| {
            if let Some(addr) = addr {
                on.push(Listener { kind, addr, key });
            }
        };
        add(ListenerKind::Tcp, net.port, "mqtt.network.port");
        add(
            ListenerKind::Tls,
            net.secure_port,
            "mqtt.network.securePort",
        );
        if self.mqtt.web_socket {
            add(ListenerKind::WebSocket, self.http.port, "http.port");
            add(
                ListenerKind::SecureWebSocket,
                self.http.secure_port,
                "http.securePort",
            );
        }
        on
    }

    /// Where `/health` and `/metrics` are answered with no WebSocket listener to carry them:
    /// `http.port` when `mqtt.webSocket` is off (WebSocket upgrades there are refused). `None`
    /// when `mqtt.webSocket` is on (the WebSocket listeners answer them) or `http.port` is off.
    /// The port may be Harper's own, so failing to bind it does not stop the broker.
    pub fn http_status_port(&self) -> Option<BindAddress> {
        self.http.port.filter(|_| !self.mqtt.web_socket)
    }
}

fn default_port(port: u16) -> Option<BindAddress> {
    std::num::NonZeroU16::new(port).map(BindAddress::AllInterfaces)
}
