//! The CA and server certificate the broker writes under `<root>/keys/` at first start when the
//! configuration names no TLS files, as Harper's installer does, so that TLS works out of the box.

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use time::{Duration, OffsetDateTime};

use super::file::{WriteMode, write_file};
use super::{Authority, BACKDATE, CA_LIFETIME, Role, SerialSource, Spec, issue};

/// Harper's file name for the CA certificate under `<root>/keys/`.
pub const CA_FILE: &str = "ca.pem";
/// Harper's file name for the server certificate under `<root>/keys/`.
pub const CERTIFICATE_FILE: &str = "certificate.pem";
/// Harper's file name for the server's private key under `<root>/keys/`.
pub const PRIVATE_KEY_FILE: &str = "privateKey.pem";

const ORGANIZATION: &str = "harper-mqtt";

/// 825 days: the longest server certificate lifetime Apple's TLS clients accept.
const SERVER_LIFETIME: Duration = Duration::days(825);

/// A freshly generated CA certificate and a server certificate it issued, with the server's key.
///
/// The CA's private key is discarded once the server certificate is signed: nobody can issue
/// further certificates under this CA, so trusting `ca.pem` (for example as the mTLS client CA)
/// trusts this one server certificate and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// CA certificate, PEM (`ca.pem`).
    pub ca_pem: String,
    /// Server certificate, PEM (`certificate.pem`).
    pub certificate_pem: String,
    /// Server private key, PKCS #8 PEM (`privateKey.pem`).
    pub private_key_pem: String,
    /// When the server certificate expires.
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("not_after", &self.not_after)
            .field("private_key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// Generates a CA (valid ten years) and a server certificate (valid 825 days, serverAuth) for
/// `hosts`, DNS names or IP addresses; the first host is the server certificate's CN.
pub fn generate_default_server_identity(hosts: &[String]) -> anyhow::Result<ServerIdentity> {
    let server_cn = hosts
        .first()
        .ok_or_else(|| anyhow!("server certificate needs at least one host name"))?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let mut serials = SerialSource::new();
    let ca = Authority::root(
        Spec {
            cn: "harper-mqtt generated CA",
            organization: Some(ORGANIZATION),
            role: Role::RootCa,
            validity: (now - BACKDATE, now + CA_LIFETIME),
        },
        &mut serials,
    )?;
    let server = issue(
        &Spec {
            cn: server_cn,
            organization: Some(ORGANIZATION),
            role: Role::Server { hosts },
            validity: (now - BACKDATE, now + SERVER_LIFETIME),
        },
        &ca,
        &mut serials,
    )?
    .credential;
    Ok(ServerIdentity {
        ca_pem: ca.credential.cert_pem,
        certificate_pem: server.cert_pem,
        private_key_pem: server.key_pem,
        not_after: server.not_after,
    })
}

impl ServerIdentity {
    /// Writes [`CA_FILE`], [`CERTIFICATE_FILE`] and [`PRIVATE_KEY_FILE`] into `keys_dir`, creating
    /// the directory. Fails without writing anything if any of the three exists; the key is
    /// readable by the owner only (on Unix).
    pub fn write_new(&self, keys_dir: &Path) -> anyhow::Result<()> {
        let files = [
            (CA_FILE, &self.ca_pem, false),
            (CERTIFICATE_FILE, &self.certificate_pem, false),
            (PRIVATE_KEY_FILE, &self.private_key_pem, true),
        ];
        let existing: Vec<&str> = files
            .iter()
            .map(|(name, _, _)| *name)
            .filter(|name| keys_dir.join(name).exists())
            .collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {} in {}",
                existing.join(", "),
                keys_dir.display()
            );
        }
        fs::create_dir_all(keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
        for (name, contents, secret) in files {
            write_file(&keys_dir.join(name), contents, secret, WriteMode::CreateNew)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_host_list() {
        let err = generate_default_server_identity(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "server certificate needs at least one host name"
        );
    }

    #[test]
    fn writes_harper_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let identity = generate_default_server_identity(&["localhost".to_owned()]).unwrap();
        identity.write_new(&keys).unwrap();
        for (name, contents) in [
            (CA_FILE, &identity.ca_pem),
            (CERTIFICATE_FILE, &identity.certificate_pem),
            (PRIVATE_KEY_FILE, &identity.private_key_pem),
        ] {
            assert_eq!(&fs::read_to_string(keys.join(name)).unwrap(), contents);
        }
    }

    #[test]
    fn refuses_to_overwrite_and_leaves_existing_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PRIVATE_KEY_FILE), "operator's key").unwrap();
        let identity = generate_default_server_identity(&["localhost".to_owned()]).unwrap();
        let err = identity.write_new(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to overwrite privateKey.pem in {}",
                dir.path().display()
            )
        );
        assert!(!dir.path().join(CA_FILE).exists());
        assert_eq!(
            fs::read_to_string(dir.path().join(PRIVATE_KEY_FILE)).unwrap(),
            "operator's key"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_key_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let identity = generate_default_server_identity(&["localhost".to_owned()]).unwrap();
        identity.write_new(dir.path()).unwrap();
        let mode = |name| {
            fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(PRIVATE_KEY_FILE), 0o600);
    }

    #[test]
    fn debug_hides_the_private_key() {
        let identity = generate_default_server_identity(&["localhost".to_owned()]).unwrap();
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    }
}
