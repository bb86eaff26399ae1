//! The broker binary: command line, configuration, logging and signals; wiring only.
//!
//! Start-up: parse the command line, load the configuration (defaults < file < environment <
//! command line), stop with every problem if any is an error, install logging, print the banner,
//! then start the broker. SIGHUP re-reads the configuration and applies its logging settings;
//! other changes need a restart, and the log says so.
//!
//! The parsed configuration is mapped onto the options the library crates take in one place,
//! `wiring.rs`. The modules beside this file are the binary's alone: they and their
//! dependencies sit behind the `cli` feature.

mod accounts;
mod cli;
mod default_keys;
mod log_file;
mod logging;
mod open_files;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use config::{Config, ListenerKind, Loaded};

use crate::cli::{Command, Options};
use crate::logging::{LogHandle, NOTIFY};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("server: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("server {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CheckConfig(options) => check_config(&options),
        Command::Run(options) => run(&options),
        Command::User(options, command) => user_command(&options, command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Below this many open files the broker warns at start-up.
const LOW_OPEN_FILES: u64 = 4096;

/// Where the configuration comes from, resolved once and used again on SIGHUP.
#[derive(Debug, Clone)]
struct Sources {
    root: PathBuf,
    /// The file read, or `None` when the default file does not exist.
    file: Option<PathBuf>,
    /// The file looked for (shown when it does not exist).
    file_looked_for: PathBuf,
    /// `--KEY VALUE` overrides.
    overrides: Vec<(String, String)>,
}

impl Sources {
    fn resolve(options: &Options) -> anyhow::Result<Sources> {
        let root = config::resolve_root(options.root.as_deref(), environment())?;
        let (file, file_looked_for) = match &options.config {
            // A file the operator named must exist: `load` reports it if not.
            Some(path) => (Some(path.clone()), path.clone()),
            None => {
                let path = config::default_config_file(&root);
                (path.is_file().then(|| path.clone()), path)
            }
        };
        Ok(Sources {
            root,
            file,
            file_looked_for,
            overrides: options.overrides.clone(),
        })
    }

    /// Loads and validates, file checks included.
    fn load(&self) -> anyhow::Result<Loaded> {
        let mut loaded = config::load(
            self.file.as_deref(),
            &self.root,
            environment(),
            self.overrides.clone(),
        )?;
        let files = loaded.config.check_files();
        loaded.problems.extend(files);
        Ok(loaded)
    }

    fn describe_file(&self) -> String {
        match &self.file {
            Some(path) => path.display().to_string(),
            None => format!(
                "{} (not found: built-in defaults)",
                self.file_looked_for.display()
            ),
        }
    }
}

/// The process environment, as the UTF-8 pairs the configuration reads.
fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// `server user ...`: edits the users file the configuration names.
fn user_command(options: &Options, command: cli::UserCommand) -> anyhow::Result<()> {
    let sources = Sources::resolve(options)?;
    let loaded = sources.load()?;
    accounts::run(&loaded.config.authentication.users_file, command)
}

/// `server check-config`: the effective configuration, then every problem; fails on errors.
fn check_config(options: &Options) -> anyhow::Result<()> {
    let sources = Sources::resolve(options)?;
    let loaded = sources.load()?;
    println!("root: {}", sources.root.display());
    println!("config file: {}", sources.describe_file());
    println!();
    println!("effective configuration:");
    for (key, value) in loaded.config.entries() {
        let origin = loaded
            .overrides
            .iter()
            .rev()
            .find(|o| key == o.key || key.starts_with(&format!("{}.", o.key)));
        match origin {
            Some(o) => println!("  {key}: {value}  # {}", o.origin),
            None => println!("  {key}: {value}"),
        }
    }
    println!();
    println!("{}", banner(&loaded.config));
    if let Some(addr) = loaded.config.http_status_port() {
        println!("HTTP: {addr} (/health and /metrics only: mqtt.webSocket is false)");
    }
    println!();
    if loaded.problems.is_empty() {
        println!("no problems");
        return Ok(());
    }
    println!("problems:");
    for problem in &loaded.problems {
        println!("  {problem}");
    }
    let errors = loaded.problems.errors().count();
    let warnings = loaded.problems.len() - errors;
    println!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 {
        anyhow::bail!("the configuration has {errors} error(s)");
    }
    Ok(())
}

/// The start-up banner: the listeners that are on, Harper's way.
fn banner(config: &Config) -> String {
    let listeners: Vec<String> = config
        .listeners()
        .iter()
        .map(|l| format!("{}: {}", l.kind, l.addr))
        .collect();
    if listeners.is_empty() {
        "MQTT: no listener is on".to_owned()
    } else {
        format!("MQTT: {}", listeners.join(", "))
    }
}

/// Runs the broker.
fn run(options: &Options) -> anyhow::Result<()> {
    let sources = Sources::resolve(options)?;
    let loaded = sources.load()?;
    if loaded.problems.has_errors() {
        for problem in &loaded.problems {
            eprintln!("{problem}");
        }
        anyhow::bail!(
            "the configuration has {} error(s); `server check-config` shows the effective configuration",
            loaded.problems.errors().count()
        );
    }
    let config = loaded.config;
    let log = logging::install(&config.mqtt.logging)?;
    let files = open_files::raise();
    let shown =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    if files.now != files.before {
        tracing::info!(before = %shown(files.before), now = %shown(files.now), "open-files limit raised");
    }
    if files.now.is_some_and(|n| n < LOW_OPEN_FILES) {
        tracing::warn!(
            limit = %shown(files.now),
            "open-files limit is low: each client connection takes one; raise the hard limit (`ulimit -Hn`, systemd `LimitNOFILE=`) to serve more clients"
        );
    }
    for warning in loaded.problems.warnings() {
        eprintln!("{warning}");
        tracing::warn!("configuration: {warning}");
    }
    // Set once the store is open. A worker thread that runs out of work says so to the store,
    // whose collecting batch then commits soon instead of after `batchMaxDelay`: no more
    // changes are coming from this side for now (see `store::Store::submitters_idle`).
    let idle_store: Arc<OnceLock<store::Store>> = Arc::default();
    let on_park = idle_store.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(move || {
            if let Some(store) = on_park.get() {
                store.submitters_idle();
            }
        })
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config, sources, log, idle_store))
}

/// Binds the listeners, prints the banner, and serves until SIGINT or SIGTERM.
async fn serve(
    config: Config,
    sources: Sources,
    log: LogHandle,
    idle_store: Arc<OnceLock<store::Store>>,
) -> anyhow::Result<()> {
    let options = wiring::broker_options(&config);
    let (tls, client_auth) = wiring::tls(&config)?;
    let handshakes = wiring::handshake_limit(&config.mqtt.limits);
    let handshake_timeout = wiring::handshake_timeout(&config.mqtt.limits);
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for listener in config.listeners() {
        let protocol = match (listener.kind, &tls) {
            (ListenerKind::Tcp, _) => transport::Protocol::Tcp,
            (ListenerKind::WebSocket, _) => transport::Protocol::WebSocket,
            (ListenerKind::Tls, Some(tls)) => transport::Protocol::Tls(tls.clone()),
            (ListenerKind::SecureWebSocket, Some(tls)) => {
                transport::Protocol::SecureWebSocket(tls.clone())
            }
            (kind, None) => unreachable!("TLS is set up whenever a {kind} listener is on"),
        };
        let tcp = bind(&listener.addr)
            .await
            .with_context(|| format!("{}: cannot listen on {}", listener.key, listener.addr))?;
        let shown = match listener.addr {
            config::BindAddress::AllInterfaces(port) => port.to_string(),
            config::BindAddress::Addr(_) => tcp.local_addr()?.to_string(),
        };
        bound.push(format!("{}: {shown}", listener.kind));
        // Handshakes have their own timeout; CONNECT has what is left of the connect timeout.
        listeners.push(
            transport::Listener::new(tcp, protocol, handshake_timeout)
                .with_handshake_limit(handshakes.clone())
                // No WebSocket message needs to be larger than the largest MQTT packet.
                .with_max_message_size(
                    usize::try_from(options.max_packet_size.get())
                        .unwrap_or(usize::MAX)
                        .saturating_add(64),
                ),
        );
    }
    let status = status_listener(&config, handshake_timeout, &handshakes).await;
    let banner = if bound.is_empty() {
        "MQTT: no listener is on".to_owned()
    } else {
        format!("MQTT: {}", bound.join(", "))
    };
    let file = sources.describe_file();
    println!("{banner}");
    println!("root: {}, config file: {file}", sources.root.display());
    tracing::info!(target: NOTIFY, root = %sources.root.display(), config_file = %file, "{banner}");
    if let Some((listener, shown)) = status {
        tracing::info!(target: NOTIFY, "HTTP: /health and /metrics on {shown} (mqtt.webSocket is false: no MQTT over WebSocket)");
        listeners.push(listener);
    }
    let users_file = config.authentication.users_file.clone();
    accounts::ensure_users_file(&users_file)?;
    let access = std::sync::Arc::new(
        auth::UsersAccess::load(&users_file, config.mqtt.require_authentication)
            .context("authentication.usersFile")?,
    );

    let storage = &config.mqtt.storage;
    let opened = match &storage.path {
        Some(path) => {
            let (store, recovered) =
                store::Store::open(path, wiring::store_policy(storage.durability))
                    .with_context(|| format!("mqtt.storage.path: {}", path.display()))?;
            let _ = idle_store.set(store.clone());
            tracing::info!(
                target: NOTIFY,
                path = %store.path().display(),
                durability = storage.durability.name(),
                sessions = recovered.sessions.len(),
                retained = recovered.retained.len(),
                "store opened"
            );
            Some((store, recovered))
        }
        None => {
            tracing::info!(target: NOTIFY, "mqtt.storage.path is null: sessions and retained messages are kept in memory only");
            None
        }
    };
    let mut builder = server::Broker::builder(options).access(access.clone());
    if let Some((store, recovered)) = opened {
        builder = builder.store(store, recovered);
    }
    if let Some(client_auth) = client_auth {
        builder = builder.client_auth(client_auth);
    }
    let broker = builder.build();
    let users = tokio::spawn(watch_users_file(access, broker.clone()));
    // The HTTP port answers /health and /metrics beside the WebSocket upgrade.
    let listeners = listeners
        .into_iter()
        .map(|l| match l.kind() {
            transport::TransportKind::WebSocket | transport::TransportKind::SecureWebSocket => {
                wiring::http_side(l, &config.http, broker.http_status())
            }
            _ => l,
        })
        .collect();
    let reloader = tokio::spawn(reload_logging_on_sighup(sources, log, config));
    broker.serve(listeners, shutdown_signal()).await;
    reloader.abort();
    users.abort();
    tracing::info!(target: NOTIFY, "MQTT: stopped");
    Ok(())
}

/// With `mqtt.webSocket` off, `http.port` still answers `/health` and `/metrics` (and refuses
/// upgrades with 404); the listener and the address to show. The port may be Harper's own: one
/// that cannot be bound is logged and left out, and the broker runs without the endpoints.
async fn status_listener(
    config: &Config,
    handshake_timeout: std::time::Duration,
    handshakes: &transport::HandshakeLimit,
) -> Option<(transport::Listener, String)> {
    let addr = config.http_status_port()?;
    match bind(&addr).await {
        Ok(tcp) => {
            let shown = match addr {
                config::BindAddress::AllInterfaces(port) => port.to_string(),
                config::BindAddress::Addr(_) => tcp
                    .local_addr()
                    .map_or_else(|_| addr.to_string(), |a| a.to_string()),
            };
            let listener =
                transport::Listener::new(tcp, transport::Protocol::WebSocket, handshake_timeout)
                    .with_handshake_limit(handshakes.clone())
                    .status_only();
            Some((listener, shown))
        }
        Err(e) => {
            tracing::warn!(error = %e, "http.port: cannot listen on {addr}; /health and /metrics are not served");
            None
        }
    }
}

/// Binds one listener address. "Every interface" is `[::]`, which also accepts IPv4 on Linux,
/// falling back to `0.0.0.0` where IPv6 is unavailable.
async fn bind(addr: &config::BindAddress) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    match addr {
        config::BindAddress::Addr(a) => tokio::net::TcpListener::bind(a).await,
        config::BindAddress::AllInterfaces(port) => {
            let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port.get()));
            match tokio::net::TcpListener::bind(v6).await {
                Ok(l) => Ok(l),
                Err(_) => {
                    tokio::net::TcpListener::bind(SocketAddr::from((
                        Ipv4Addr::UNSPECIFIED,
                        port.get(),
                    )))
                    .await
                }
            }
        }
    }
}

/// Reloads the users file when it changes (checked every two seconds) or on SIGHUP, then
/// disconnects clients whose user was removed or deactivated. A broken file is logged and the
/// policy in force stays.
async fn watch_users_file(access: std::sync::Arc<auth::UsersAccess>, broker: server::Broker) {
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(access.path());
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = hangup => true,
        };
        let now = stamp(access.path());
        if !forced && now == seen {
            continue;
        }
        seen = now;
        match access.reload() {
            Ok(()) => {
                let evicted = broker.enforce_access();
                tracing::info!(path = %access.path().display(), disconnected = evicted, "users file reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "users file not reloaded; the previous one stays in force")
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!(target: NOTIFY, "MQTT: shutting down");
}

/// On each SIGHUP, re-reads the configuration and applies its logging settings; everything else
/// needs a restart, and the log says so. A configuration with errors is not applied.
async fn reload_logging_on_sighup(sources: Sources, log: LogHandle, mut running: Config) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; logging changes need a restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let loaded = match sources.load() {
            Ok(loaded) if !loaded.problems.has_errors() => loaded,
            Ok(loaded) => {
                tracing::error!(problems = %loaded.problems, "SIGHUP: configuration has errors; nothing reloaded");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: configuration cannot be read; nothing reloaded");
                continue;
            }
        };
        let fresh = loaded.config;
        if let Err(e) = log.reload(&fresh.mqtt.logging) {
            tracing::error!(error = %e, "SIGHUP: logging settings not applied");
            continue;
        }
        tracing::info!(target: NOTIFY, level = %fresh.mqtt.logging.level, "SIGHUP: logging settings applied");
        let mut rest = fresh.clone();
        rest.logging = running.logging.clone();
        rest.mqtt.logging = running.mqtt.logging.clone();
        if rest != running {
            tracing::warn!(
                "SIGHUP: configuration changes other than logging take effect after a restart"
            );
        }
        running.logging = fresh.logging;
        running.mqtt.logging = fresh.mqtt.logging;
    }
}
