//! Writing PEM files, with private keys readable by their owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `contents` to `path`, replacing a file already there; `secret` files are readable by
/// the owner only (on Unix), an existing one included.
pub(super) fn write_file(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        owner_only(&mut options, path)?;
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes `options` create the file readable by the owner only, and tightens a file already there
/// (the creation mode applies only to a file the open call creates).
#[cfg(unix)]
fn owner_only(options: &mut fs::OpenOptions, path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    options.mode(0o600);
    if path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_: &mut fs::OpenOptions, _: &Path) -> anyhow::Result<()> {
    Ok(())
}
