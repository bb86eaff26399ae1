//! The users file from the binary's side: created with a super user on first run, and edited by
//! `server user ...` (written to a temporary file, then renamed, so a running broker that
//! reloads it never sees half a file).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use auth::{UserEntry, UsersFile, generate_password, hash_password};

use crate::cli::UserCommand;

/// Creates the users file with one super user when it does not exist: `HDB_ADMIN_USERNAME` /
/// `HDB_ADMIN_PASSWORD` as Harper's installer reads them, else `admin` with a random password
/// printed once on stdout.
pub fn ensure_users_file(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let name = std::env::var("HDB_ADMIN_USERNAME").unwrap_or_else(|_| "admin".to_owned());
    let (password, generated) = match std::env::var("HDB_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (generate_password(), true),
    };
    UsersFile::with_admin(&name, &password)?.save(path)?;
    if generated {
        println!(
            "created {} with super user `{name}`, password: {password}",
            path.display()
        );
        println!("(shown once; change it with `server user passwd {name}`)");
    } else {
        println!(
            "created {} with super user `{name}` from HDB_ADMIN_USERNAME/HDB_ADMIN_PASSWORD",
            path.display()
        );
    }
    tracing::info!(path = %path.display(), user = %name, "created the users file with a super user");
    Ok(())
}

/// Runs `server user ...` against the users file at `path`.
pub fn run(path: &Path, command: UserCommand) -> anyhow::Result<()> {
    let mut file = if path.exists() {
        UsersFile::load(path)?
    } else {
        UsersFile::default()
    };
    match command {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
        } => {
            for role in &roles {
                if !file.roles.contains_key(role) {
                    bail!(
                        "unknown role `{role}`; roles in {}: {:?}",
                        path.display(),
                        file.roles.keys().collect::<Vec<_>>()
                    );
                }
            }
            let password = read_password(password_stdin)?;
            file.users.insert(
                name.clone(),
                UserEntry {
                    password: Some(hash_password(&password)?),
                    roles,
                    active: true,
                },
            );
            file.save(path)?;
            println!("user `{name}` saved");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            if !file.users.contains_key(&name) {
                bail!("no user `{name}` in {}", path.display());
            }
            let hash = hash_password(&read_password(password_stdin)?)?;
            if let Some(user) = file.users.get_mut(&name) {
                user.password = Some(hash);
            }
            file.save(path)?;
            println!("password of `{name}` changed");
        }
        UserCommand::Del { name } => {
            if file.users.remove(&name).is_none() {
                bail!("no user `{name}` in {}", path.display());
            }
            file.save(path)?;
            println!("user `{name}` removed");
        }
        UserCommand::List => {
            for (name, user) in &file.users {
                let state = if user.active { "" } else { " (inactive)" };
                println!("{name}: {}{state}", user.roles.join(", "));
            }
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        rpassword::prompt_password("password: ")
            .context("reading the password from the terminal")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}
