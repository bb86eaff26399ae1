//! The users file: users with Argon2id password hashes and roles, and roles with permission
//! rules. Parsed and checked here; [`crate::Policy`] turns it into decisions.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::{Deserialize, Serialize};

use crate::filter;

/// The whole file, as written on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
    /// Roles by name. The role named `anonymous` applies to clients without a user.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleEntry>,
}

/// One user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Argon2id PHC hash of the password; a user without one cannot log in with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Role names, in order.
    #[serde(default)]
    pub roles: Vec<String>,
    /// An inactive user cannot connect.
    #[serde(default = "yes")]
    pub active: bool,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("password", &self.password.as_ref().map(|_| "<hash>"))
            .field("roles", &self.roles)
            .field("active", &self.active)
            .finish()
    }
}

fn yes() -> bool {
    true
}

/// One role: a super user, or an ordered list of permission rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Everything is allowed, `$SYS` included.
    #[serde(default, rename = "superUser")]
    pub super_user: bool,
    /// Rules, checked in order.
    #[serde(default)]
    pub permissions: Vec<RuleEntry>,
}

/// One permission rule: a topic filter (with `%u` for the user name and `%c` for the client id)
/// and the verbs it decides. A verb it does not name is left to later rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Topic filter.
    pub topic: String,
    /// Subscribe, and receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<bool>,
    /// Publish without retain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert: Option<bool>,
    /// Publish with retain (replaces the retained message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<bool>,
    /// Publish a retained empty payload (clears the retained message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<bool>,
}

/// Why a users file cannot be used. The operator caused it.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },
    /// The file parsed but its content is wrong; every problem is listed.
    #[error("{path}: {}", .problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, naming the user, role or rule.
        problems: Vec<String>,
    },
    /// Hashing a password failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

impl UsersFile {
    /// Reads and checks a users file.
    pub fn load(path: &Path) -> Result<Self, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks the text of a users file; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, UsersFileError> {
        let file: UsersFile = if text.trim().is_empty() {
            UsersFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| UsersFileError::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        let problems = file.problems();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(UsersFileError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Every problem: hashes that are not PHC strings, unknown roles, invalid rule filters.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, user) in &self.users {
            if let Some(hash) = &user.password
                && PasswordHash::new(hash).is_err()
            {
                problems.push(format!(
                    "users.{name}.password: not an Argon2 PHC hash string"
                ));
            }
            for role in &user.roles {
                if !self.roles.contains_key(role) {
                    problems.push(format!("users.{name}.roles: unknown role `{role}`"));
                }
            }
        }
        for (name, role) in &self.roles {
            for (i, rule) in role.permissions.iter().enumerate() {
                let probe = rule.topic.replace("%u", "u").replace("%c", "c");
                if !filter::is_valid(&probe) {
                    problems.push(format!(
                        "roles.{name}.permissions[{i}].topic: `{}` is not a valid topic filter",
                        rule.topic
                    ));
                }
            }
        }
        problems
    }

    /// Writes the file atomically: a temporary file beside it, then a rename, so a running
    /// broker never reads half a file. The temporary file is created new and readable by its
    /// owner only (0600) before a byte is written: whatever is at its path (a leftover of an
    /// interrupted save, a link) is removed, never written through.
    pub fn save(&self, path: &Path) -> Result<(), UsersFileError> {
        let io = |source| UsersFileError::Io {
            path: path.to_owned(),
            source,
        };
        let text = serde_yaml::to_string(self).map_err(|e| UsersFileError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("yaml.tmp");
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let mut file = create_private(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Creates `path`, which must not exist (a link there is not followed), mode 0600 from the start.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Hashes a password as an Argon2id PHC string with a random salt (argon2's default
/// parameters: 19 MiB, 2 passes, 1 lane).
pub fn hash_password(password: &str) -> Result<String, UsersFileError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersFileError::Hash(e.to_string()))
}

/// A random password of 24 characters from an unambiguous alphabet (about 137 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 55: the bias this leaves is below half a bit in total.
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl UsersFile {
    /// A file with one super user, as a first run creates it: the user `name` with role
    /// `super` (`superUser: true`), and an empty `anonymous` role.
    pub fn with_admin(name: &str, password: &str) -> Result<Self, UsersFileError> {
        let mut file = UsersFile::default();
        file.roles.insert(
            "super".into(),
            RoleEntry {
                super_user: true,
                permissions: Vec::new(),
            },
        );
        file.roles.insert("anonymous".into(), RoleEntry::default());
        file.users.insert(
            name.into(),
            UserEntry {
                password: Some(hash_password(password)?),
                roles: vec!["super".into()],
                active: true,
            },
        );
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem() {
        let text = "
users:
  alice: { password: 'plain', roles: [missing] }
roles:
  r: { permissions: [ { topic: 'a/#/b', read: true } ] }
";
        let Err(UsersFileError::Invalid { problems, .. }) =
            UsersFile::parse(text, Path::new("users.yaml"))
        else {
            panic!("expected problems")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn rejects_unknown_keys() {
        let e = UsersFile::parse("users:\n  a: { pasword: x }\n", Path::new("u.yaml"));
        assert!(matches!(e, Err(UsersFileError::Syntax { .. })));
    }

    /// The permission bits of `path`, and whether it is a plain file (not a link).
    #[cfg(unix)]
    fn mode(path: &Path) -> (u32, bool) {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path).expect("the file is there");
        (
            meta.permissions().mode() & 0o777,
            meta.file_type().is_file(),
        )
    }

    #[cfg(unix)]
    #[test]
    fn saves_through_a_new_owner_only_copy_never_through_what_is_at_its_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("users.yaml");
        let file = UsersFile::with_admin("admin", "secret").expect("a users file");
        // Someone left a world-readable file where the temporary copy goes, and a link to it:
        // the copy must be a new file of the broker's, 0600 before the hashes go in.
        let planted = dir.path().join("planted");
        std::fs::write(&planted, "").expect("planting a file");
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&planted, path.with_extension("yaml.tmp")).expect("a link");
        file.save(&path).expect("saved");
        assert_eq!(mode(&path), (0o600, true), "the users file");
        assert_eq!(
            std::fs::read_to_string(&planted).expect("reading the planted file"),
            "",
            "nothing was written through the link"
        );
        assert_eq!(mode(&planted).0, 0o644, "the planted file was not touched");
        assert!(!path.with_extension("yaml.tmp").exists());
        let read = UsersFile::load(&path).expect("the saved file loads");
        assert!(read.users.contains_key("admin"));

        // A plain leftover of an interrupted save, world-readable, is replaced by a new copy.
        std::fs::write(path.with_extension("yaml.tmp"), "half a file").expect("a leftover");
        std::fs::set_permissions(
            path.with_extension("yaml.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        file.save(&path).expect("saved again");
        assert_eq!(mode(&path), (0o600, true));
    }

    #[test]
    fn debug_hides_hashes() {
        let user = UserEntry {
            password: Some("$argon2id$secret".into()),
            roles: vec![],
            active: true,
        };
        assert!(!format!("{user:?}").contains("secret"));
    }
}
