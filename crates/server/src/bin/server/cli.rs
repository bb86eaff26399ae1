//! The command line: `server [--config PATH] [--root DIR] [--KEY VALUE]...` runs the broker,
//! `server check-config [same options]` checks the configuration. Scripts and docs depend on
//! these flags; keep them.
//!
//! Hand-written rather than clap: two subcommands and Harper-style key flags (`--MQTT_NETWORK_PORT
//! 1884`, any key that an environment variable can set) that a derive parser cannot list ahead.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// The help text.
pub const USAGE: &str = "\
usage: server [--config PATH] [--root DIR] [--KEY VALUE]...
       server check-config [--config PATH] [--root DIR] [--KEY VALUE]...
       server user add NAME [--role ROLE]... [--password-stdin] [--config PATH] [--root DIR]
       server user passwd NAME [--password-stdin] [--config PATH] [--root DIR]
       server user del NAME [--config PATH] [--root DIR]
       server user list [--config PATH] [--root DIR]

  (no command)      run the broker
  check-config      print the effective configuration and every problem; exit 1 if any is an error
  user ...          edit the users file (authentication.usersFile); a running broker picks the
                    change up by itself. The password is asked on the terminal, or read as one
                    line from stdin with --password-stdin

  --config PATH     the configuration file (default: <root>/harperdb-config.yaml; built-in
                    defaults when that file does not exist)
  --root DIR        the root directory (default: $ROOTPATH, else ~/hdb)
  --KEY VALUE       set one configuration key, named like its environment variable, e.g.
                    --MQTT_NETWORK_PORT 1884 (beats the environment, which beats the file)
  -h, --help        print this help
  -V, --version     print the version
";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the broker.
    Run(Options),
    /// Print the effective configuration and its problems.
    CheckConfig(Options),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
    /// Edit the users file.
    User(Options, UserCommand),
}

/// `server user ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Add a user (or replace its password and roles).
    Add {
        /// User name.
        name: String,
        /// Roles, in order.
        roles: Vec<String>,
        /// Read the password from stdin instead of the terminal.
        password_stdin: bool,
    },
    /// Change a user's password.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from stdin instead of the terminal.
        password_stdin: bool,
    },
    /// Remove a user.
    Del {
        /// User name.
        name: String,
    },
    /// List users and their roles.
    List,
}

/// Where the configuration comes from, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--root DIR`.
    pub root: Option<PathBuf>,
    /// `--KEY VALUE` overrides, as (name as given, value), in order.
    pub overrides: Vec<(String, String)>,
}

/// A command line that makes no sense; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage_error(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let mut options = Options::default();
    let mut check = false;
    // `user`: the positional words after it, --role values, --password-stdin.
    let mut user: Option<(Vec<String>, Vec<String>, bool)> = None;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return Err(usage_error(format!("unexpected argument {arg:?}")));
        };
        let text = text.to_owned();
        match text.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "check-config" if !check && user.is_none() => check = true,
            "user" if !check && user.is_none() => user = Some((Vec::new(), Vec::new(), false)),
            "--password-stdin" if user.is_some() => {
                if let Some(u) = user.as_mut() {
                    u.2 = true;
                }
            }
            "--role" if user.is_some() => {
                let role = args
                    .next()
                    .and_then(|r| r.into_string().ok())
                    .ok_or_else(|| usage_error("--role needs a value"))?;
                if let Some(u) = user.as_mut() {
                    u.1.push(role);
                }
            }
            word if user.is_some() && !word.starts_with("--") => {
                if let Some(u) = user.as_mut() {
                    u.0.push(word.to_owned());
                }
            }
            _ => {
                let Some(flag) = text.strip_prefix("--") else {
                    return Err(usage_error(format!("unexpected argument `{text}`")));
                };
                let (name, inline) = match flag.split_once('=') {
                    Some((name, value)) => (name, Some(OsString::from(value))),
                    None => (flag, None),
                };
                let known =
                    matches!(name, "config" | "root") || config::key_for_override(name).is_some();
                if !known {
                    return Err(usage_error(format!(
                        "unknown option `--{name}` (expected --config, --root, or a configuration key such as \
                         --MQTT_NETWORK_PORT)"
                    )));
                }
                let Some(value) = inline.or_else(|| args.next()) else {
                    return Err(usage_error(format!("--{name} needs a value")));
                };
                match name {
                    "config" => set_once(&mut options.config, "config", value)?,
                    "root" => set_once(&mut options.root, "root", value)?,
                    _ => {
                        let value = value.into_string().map_err(|v| {
                            usage_error(format!("--{name}: the value {v:?} is not UTF-8"))
                        })?;
                        options.overrides.push((name.to_owned(), value));
                    }
                }
            }
        }
    }
    if let Some((words, roles, password_stdin)) = user {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let command = match words.as_slice() {
            ["add", name] => UserCommand::Add {
                name: (*name).to_owned(),
                roles,
                password_stdin,
            },
            ["passwd", name] => UserCommand::Passwd {
                name: (*name).to_owned(),
                password_stdin,
            },
            ["del", name] => UserCommand::Del {
                name: (*name).to_owned(),
            },
            ["list"] => UserCommand::List,
            _ => {
                return Err(usage_error(
                    "expected `user add NAME`, `user passwd NAME`, `user del NAME` or `user list`",
                ));
            }
        };
        return Ok(Command::User(options, command));
    }
    Ok(if check {
        Command::CheckConfig(options)
    } else {
        Command::Run(options)
    })
}

fn set_once(slot: &mut Option<PathBuf>, name: &str, value: OsString) -> Result<(), UsageError> {
    if slot.is_some() {
        return Err(usage_error(format!("--{name} is given twice")));
    }
    if value.is_empty() {
        return Err(usage_error(format!("--{name} needs a non-empty value")));
    }
    *slot = Some(PathBuf::from(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_commands() {
        let cmd = parse_str(&[
            "user",
            "add",
            "alice",
            "--role",
            "a",
            "--role",
            "b",
            "--password-stdin",
            "--root",
            "/r",
        ]);
        let Ok(Command::User(
            options,
            UserCommand::Add {
                name,
                roles,
                password_stdin,
            },
        )) = cmd
        else {
            panic!("{cmd:?}")
        };
        assert_eq!(
            (name.as_str(), roles, password_stdin),
            ("alice", vec!["a".to_owned(), "b".to_owned()], true)
        );
        assert_eq!(options.root, Some(PathBuf::from("/r")));
        assert_eq!(
            parse_str(&["user", "list"]),
            Ok(Command::User(Options::default(), UserCommand::List))
        );
        assert!(parse_str(&["user", "frobnicate"]).is_err());
        assert!(parse_str(&["--role", "x"]).is_err());
    }

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_runs_the_broker_with_defaults() {
        assert_eq!(parse_str(&[]), Ok(Command::Run(Options::default())));
    }

    #[test]
    fn reads_config_and_root_in_both_spellings() {
        let expected = Options {
            config: Some("/c.yaml".into()),
            root: Some("/r".into()),
            overrides: vec![],
        };
        assert_eq!(
            parse_str(&["--config", "/c.yaml", "--root", "/r"]),
            Ok(Command::Run(expected.clone()))
        );
        assert_eq!(
            parse_str(&["--config=/c.yaml", "--root=/r"]),
            Ok(Command::Run(expected))
        );
    }

    #[test]
    fn check_config_takes_the_same_options() {
        let expected = Options {
            config: None,
            root: Some("/r".into()),
            overrides: vec![],
        };
        assert_eq!(
            parse_str(&["check-config", "--root", "/r"]),
            Ok(Command::CheckConfig(expected.clone()))
        );
        assert_eq!(
            parse_str(&["--root", "/r", "check-config"]),
            Ok(Command::CheckConfig(expected))
        );
    }

    #[test]
    fn configuration_keys_are_flags() {
        let got = parse_str(&[
            "--MQTT_NETWORK_PORT",
            "1884",
            "--mqtt_requireAuthentication=false",
        ]);
        let overrides = vec![
            ("MQTT_NETWORK_PORT".to_owned(), "1884".to_owned()),
            ("mqtt_requireAuthentication".to_owned(), "false".to_owned()),
        ];
        assert_eq!(
            got,
            Ok(Command::Run(Options {
                overrides,
                ..Options::default()
            }))
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["check-config", "-h"]), Ok(Command::Help));
        assert_eq!(parse_str(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(
            parse_str(&["--port", "1"])
                .is_err_and(|e| e.to_string().contains("unknown option `--port`"))
        );
        assert!(
            parse_str(&["--bogus"])
                .is_err_and(|e| e.to_string().contains("unknown option `--bogus`"))
        );
        assert!(parse_str(&["serve"]).is_err());
        assert!(parse_str(&["--config"]).is_err_and(|e| e.to_string().contains("needs a value")));
        assert!(
            parse_str(&["--root", "/a", "--root", "/b"])
                .is_err_and(|e| e.to_string().contains("twice"))
        );
        assert!(parse_str(&["--root", ""]).is_err());
        assert!(parse_str(&["check-config", "check-config"]).is_err());
    }
}
