//! Writing PEM files, with private keys readable by their owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// What to do when the file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteMode {
    /// Truncate and rewrite it.
    Replace,
    /// Fail if the file exists: never overwrite an operator's key.
    CreateNew,
}

/// Writes `contents` to `path`; `secret` files are readable by the owner only (on Unix).
pub(super) fn write_file(
    path: &Path,
    contents: &str,
    secret: bool,
    mode: WriteMode,
) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    match mode {
        WriteMode::Replace => options.create(true).truncate(true),
        WriteMode::CreateNew => options.create_new(true),
    };
    if secret {
        owner_only(&mut options, path, mode == WriteMode::Replace)?;
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes `options` create the file readable by the owner only and, if `tighten_existing`, tightens
/// a file already there (the creation mode applies only to a file the open call creates).
#[cfg(unix)]
fn owner_only(
    options: &mut fs::OpenOptions,
    path: &Path,
    tighten_existing: bool,
) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    options.mode(0o600);
    if tighten_existing && path.exists() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_: &mut fs::OpenOptions, _: &Path, _: bool) -> anyhow::Result<()> {
    Ok(())
}
