//! Loading: the root directory, the file, environment and command-line overrides, merged with figment
//! and read into a [`Config`] with every problem found.
//!
//! Precedence, lowest first: built-in defaults < the file < environment variables < command-line
//! overrides. An override names a key Harper's way, the key path upper-cased with `_` between levels
//! (`MQTT_NETWORK_PORT=1884`), matched without regard to case; its value is a string (read like the
//! file's strings: `"true"`, `"1884"`), and the exact value `null` stands for YAML `null`. Overriding
//! a key inside `mqtt.network.mtls` turns mTLS on if the file had `false`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Empty, Tag, Value};

use crate::Config;
use crate::error::LoadError;
use crate::keys::{key_for_override, unknown_mqtt_keys};
use crate::problem::{Problem, Problems, Severity};
use crate::read::{Node, Reader, expand_home, origin_of};

/// The configuration file's name in the root directory.
pub const CONFIG_FILE_NAME: &str = "harperdb-config.yaml";

/// What [`load`] found.
///
/// When `problems` has errors the broker must not start; `config` then holds the defaults in place
/// of the rejected values, which is only good for showing the rest of the configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Every problem: type and range errors, unknown keys in `mqtt`, and [`Config::validate`]'s.
    pub problems: Problems,
    /// The overrides that applied, lowest precedence first.
    pub overrides: Vec<Override>,
}

/// One key set by an environment variable or a command-line flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The key set, e.g. `mqtt.network.port`.
    pub key: &'static str,
    /// Where it came from, e.g. `environment variable MQTT_NETWORK_PORT`.
    pub origin: String,
}

/// The root directory: `flag` (`--root`), else `ROOTPATH` from `env`, else `~/hdb`. `~` is expanded
/// with `HOME` from `env`.
pub fn resolve_root<I>(flag: Option<&Path>, env: I) -> Result<PathBuf, LoadError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: Vec<(String, String)> = env.into_iter().collect();
    let home = home_dir(&env);
    let chosen = match flag {
        Some(dir) => dir.to_path_buf(),
        None => match env.iter().find(|(k, v)| k == "ROOTPATH" && !v.is_empty()) {
            Some((_, dir)) => PathBuf::from(dir),
            None => PathBuf::from("~/hdb"),
        },
    };
    expand_home(&chosen, home.as_deref()).ok_or(LoadError::NoHome)
}

/// `<root>/harperdb-config.yaml`, the file read when `--config` is not given.
pub fn default_config_file(root: &Path) -> PathBuf {
    root.join(CONFIG_FILE_NAME)
}

/// Loads the configuration.
///
/// - `file`: the YAML file; `None` runs the built-in defaults (the caller passes `None` when the
///   default file does not exist, and `Some` for a file the operator named, which must exist).
/// - `root`: the root directory; relative paths and defaults hang off it.
/// - `env`: the environment (`HOME` for `~`, and overrides); tests pass a made-up one.
/// - `args`: command-line overrides as (name, value), e.g. `("MQTT_NETWORK_PORT", "1884")`.
///
/// Errors only when the file cannot be read or parsed; everything else is a [`Problem`].
pub fn load<E, A>(file: Option<&Path>, root: &Path, env: E, args: A) -> Result<Loaded, LoadError>
where
    E: IntoIterator<Item = (String, String)>,
    A: IntoIterator<Item = (String, String)>,
{
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                path: path.into(),
                source,
            })?,
        ),
        None => None,
    };
    load_text(text.as_deref(), file, root, env, args)
}

/// [`load`] with the file's text already read; `file` names it in errors.
pub(crate) fn load_text<E, A>(
    text: Option<&str>,
    file: Option<&Path>,
    root: &Path,
    env: E,
    args: A,
) -> Result<Loaded, LoadError>
where
    E: IntoIterator<Item = (String, String)>,
    A: IntoIterator<Item = (String, String)>,
{
    let env: Vec<(String, String)> = env.into_iter().collect();
    let home = home_dir(&env);
    let mut problems = Problems::default();

    let mut figment = Figment::new();
    // An empty file (or one of comments) is "no settings", not a YAML error.
    if let Some(text) = text
        && text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        figment = figment.merge(Yaml::string(text));
    }

    let mut origins = BTreeMap::new();
    let mut overrides = Vec::new();
    let from_env = collect_overrides(env, "environment variable ", &mut problems);
    let from_args = collect_overrides(args, "command line --", &mut problems);
    for (key, value, origin) in from_env.into_iter().chain(from_args) {
        figment = figment.merge(Serialized::default(key, value));
        origins.insert(key.to_owned(), origin.clone());
        overrides.push(Override { key, origin });
    }

    let tree: Dict = figment.extract().map_err(|e| LoadError::Syntax {
        path: file.map(Path::to_path_buf).unwrap_or_default(),
        message: e.to_string(),
    })?;
    let tree = Value::from(tree);

    let mut reader = Reader::new(root, home.as_deref(), &origins);
    let config = Config::read(&mut reader, &Node::root(&tree));
    problems.extend(reader.problems);
    if let Value::Dict(_, dict) = &tree {
        problems.extend(unknown_mqtt_keys(dict));
    }
    problems.extend(
        config
            .validate()
            .into_iter()
            .map(|p| with_origin(p, &origins)),
    );
    Ok(Loaded {
        config,
        problems,
        overrides,
    })
}

/// The overrides among `vars` that name known keys, lowest precedence first: shallower keys before
/// deeper ones (so `MQTT_NETWORK_MTLS_REQUIRED` refines `MQTT_NETWORK_MTLS`), then by name.
/// Command-line names (`prefix` "command line --") must all be keys.
fn collect_overrides<I>(
    vars: I,
    prefix: &str,
    problems: &mut Problems,
) -> Vec<(&'static str, Value, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let from_command_line = prefix.starts_with("command");
    let mut found: Vec<(&'static str, Value, String)> = Vec::new();
    for (name, text) in vars {
        let Some(key) = key_for_override(&name) else {
            if from_command_line {
                problems.push(Problem {
                    severity: Severity::Error,
                    key: name.clone(),
                    value: Some(format!("{text:?}")),
                    message:
                        "not a configuration key (expected a key path such as MQTT_NETWORK_PORT)"
                            .into(),
                    origin: Some(format!("{prefix}{name}")),
                });
            }
            continue;
        };
        let value = if text == "null" {
            Value::Empty(Tag::Default, Empty::None)
        } else {
            Value::from(text)
        };
        found.push((key, value, format!("{prefix}{name}")));
    }
    found.sort_by(|a, b| (a.0.matches('.').count(), &a.2).cmp(&(b.0.matches('.').count(), &b.2)));
    for (i, (key, _, origin)) in found.iter().enumerate() {
        if let Some((_, _, earlier)) = found[..i].iter().find(|(k, _, _)| k == key) {
            problems.push(Problem {
                severity: Severity::Warning,
                key: (*key).to_owned(),
                value: None,
                message: format!("set by both {earlier} and {origin}; the latter is used"),
                origin: None,
            });
        }
    }
    found
}

/// Fills in the origin of a problem found on the typed configuration.
fn with_origin(mut problem: Problem, origins: &BTreeMap<String, String>) -> Problem {
    if problem.origin.is_none() {
        problem.origin = origin_of(origins, &problem.key);
    }
    problem
}

fn home_dir(env: &[(String, String)]) -> Option<PathBuf> {
    env.iter()
        .find(|(k, v)| k == "HOME" && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v))
}
