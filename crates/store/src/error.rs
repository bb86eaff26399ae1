//! Why the store could not be opened. Writes never fail to the caller: the writer retries them
//! and reports its state in [`StoreStats`](crate::StoreStats).

use std::path::PathBuf;

/// An error opening the store; each names the file or directory and the reason.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file could not be opened or read as a redb database (not a database, truncated,
    /// unreadable, already open in another process).
    #[error("cannot open the store {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause, from redb or the operating system.
        reason: String,
    },
    /// The file is a redb database, but not one this crate wrote, or of another format version.
    #[error("{path} is not a broker store this version can read: {reason}")]
    WrongFormat {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stored value could not be decoded.
    #[error("the store {path} is corrupt: table {table}, key {key}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The table holding the value.
        table: &'static str,
        /// The key of the value.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store writer thread: {0}")]
    Spawn(std::io::Error),
}
