//! The one check that touches the file system: certificate and key files the configuration names
//! exist and can be read. Harper's default files under `<root>/keys/` are not checked: the
//! transport creates them on first start (a CA named by `mqtt.network.mtls.certificateAuthority`
//! is checked even there: a generated CA cannot have issued client certificates).

use std::fs::File;
use std::path::Path;

use crate::Config;
use crate::mtls::CaSource;
use crate::problem::{Problems, Severity};
use crate::tls::{PrivateKey, TlsOrigin};
use crate::validate::problem;

impl Config {
    /// Problems with the files the configuration names: each must be a readable file.
    pub fn check_files(&self) -> Problems {
        let mut problems = Problems::default();
        let mut check = |key: &str, path: &Path| {
            if let Some(why) = unreadable(path) {
                problems.push(problem(
                    Severity::Error,
                    key,
                    Some(format!("{:?}", path.display().to_string())),
                    format!("{why}; expected a readable PEM file"),
                ));
            }
        };
        if self.tls.origin == TlsOrigin::Configured {
            if let Some(path) = &self.tls.certificate {
                check("tls.certificate", path);
            }
            if let Some(PrivateKey::File(path)) = &self.tls.private_key {
                check("tls.privateKey", path);
            }
            if let Some(path) = &self.tls.certificate_authority {
                check("tls.certificateAuthority", path);
            }
        }
        if let Some(mtls) = &self.mqtt.network.mtls
            && let Some(path) = &mtls.certificate_authority
            // Named under mtls: checked even at Harper's default path, where the broker would
            // otherwise write its own CA at first start. From tls: checked above, or a default
            // that `validate()` reports.
            && mtls.certificate_authority_source == CaSource::Mtls
            && !(self.tls.origin == TlsOrigin::Configured
                && self.tls.certificate_authority.as_ref() == Some(path))
        {
            check("mqtt.network.mtls.certificateAuthority", path);
        }
        problems
    }
}

/// Why `path` cannot be read as a file, or `None` if it can.
fn unreadable(path: &Path) -> Option<String> {
    match File::open(path).and_then(|f| f.metadata()) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("is not a file".to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".to_owned()),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}
