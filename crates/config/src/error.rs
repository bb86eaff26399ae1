//! Why a configuration could not be loaded at all (as opposed to a [`crate::Problem`] with one key).

use std::io;
use std::path::PathBuf;

/// A configuration that cannot be read, before any key is looked at.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration file named by the operator cannot be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The configuration file is not YAML, or its top level is not a mapping of sections.
    #[error("the configuration file {} is not a valid YAML mapping: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said, with the line and column.
        message: String,
    },
    /// `~` (or the default root `~/hdb`) is needed but the home directory is unknown.
    #[error("cannot find the home directory for `~`: set HOME, or pass --root")]
    NoHome,
}
