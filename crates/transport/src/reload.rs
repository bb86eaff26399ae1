//! Reloading the server certificate and key when their files change, as Harper does: new
//! connections get the new identity; a broken new file is reported and the old identity stays.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::TlsError;
use crate::tls::{ServerTls, TlsIdentity};

/// Where the server's certificate chain and key come from.
#[derive(Clone)]
pub struct IdentityFiles {
    /// The PEM certificate chain file.
    pub certificate: PathBuf,
    /// The private key.
    pub private_key: KeySource,
}

/// A private key: a PEM file, or PEM text given directly (which is never printed).
#[derive(Clone)]
pub enum KeySource {
    /// A PEM file, watched like the certificate.
    File(PathBuf),
    /// PEM text; only the certificate file can change.
    Pem(String),
}

impl std::fmt::Debug for IdentityFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = match &self.private_key {
            KeySource::File(path) => path.display().to_string(),
            KeySource::Pem(_) => "<inline PEM>".to_owned(),
        };
        f.debug_struct("IdentityFiles")
            .field("certificate", &self.certificate)
            .field("private_key", &key)
            .finish()
    }
}

/// A failure to read the identity files.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files are read but unusable.
    #[error("{certificate}: {source}")]
    Tls {
        /// The certificate file.
        certificate: PathBuf,
        /// Why.
        source: TlsError,
    },
}

impl IdentityFiles {
    /// Reads and checks the certificate and key.
    pub fn load(&self) -> Result<TlsIdentity, LoadError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let certificate = read(&self.certificate)?;
        let key = match &self.private_key {
            KeySource::File(path) => read(path)?,
            KeySource::Pem(pem) => pem.as_bytes().to_vec(),
        };
        TlsIdentity::from_pem(&certificate, &key).map_err(|source| LoadError::Tls {
            certificate: self.certificate.clone(),
            source,
        })
    }

    /// Modification time and length of each file, to notice a change.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        let mut paths = vec![self.certificate.as_path()];
        if let KeySource::File(path) = &self.private_key {
            paths.push(path);
        }
        paths
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(p).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }
}

impl ServerTls {
    /// Checks `files` every `every` and, when one changed, loads them and uses the new identity
    /// for new connections. `reloaded` hears every attempt: `Ok` after a swap, `Err` for files
    /// that could not be used (the previous identity stays). Runs until dropped.
    pub async fn watch_files(
        self,
        files: IdentityFiles,
        every: Duration,
        mut reloaded: impl FnMut(Result<(), LoadError>),
    ) {
        let mut seen = files.stamp();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = files.stamp();
            if now == seen {
                continue;
            }
            seen = now;
            reloaded(files.load().map(|identity| self.replace_identity(identity)));
        }
    }
}
