//! First start without TLS files: Harper's installer writes a CA and a server certificate under
//! `<root>/keys/`, and so does the broker, so that the TLS listeners work out of the box.
//!
//! The CA's private key is never written: the CA exists only to let clients pin `ca.pem`, and
//! trusting it trusts this one server certificate.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Organization in both subjects, so a generated certificate is recognisable as the broker's.
const ORGANIZATION: &str = "harper-mqtt";

/// Certificates start an hour early so clients with a slightly slow clock accept them.
const BACKDATE: Duration = Duration::hours(1);
const CA_LIFETIME: Duration = Duration::days(3650);
/// 825 days: the longest server certificate lifetime Apple's TLS clients accept.
const SERVER_LIFETIME: Duration = Duration::days(825);

/// Harper's default files, as `config::Tls::defaults` names them.
pub struct DefaultFiles<'a> {
    pub certificate: &'a Path,
    pub private_key: &'a Path,
    pub certificate_authority: &'a Path,
}

/// Creates the default CA, certificate and key when neither certificate nor key exists; returns
/// the files written. Certificate and key both present: nothing to do. One without the other is
/// an error naming the missing file (nothing is overwritten).
pub fn ensure(files: &DefaultFiles<'_>) -> anyhow::Result<Vec<PathBuf>> {
    match (files.certificate.exists(), files.private_key.exists()) {
        (true, true) => return Ok(Vec::new()),
        (true, false) => anyhow::bail!(
            "tls: {} exists but the private key {} does not",
            files.certificate.display(),
            files.private_key.display()
        ),
        (false, true) => anyhow::bail!(
            "tls: {} exists but the certificate {} does not",
            files.private_key.display(),
            files.certificate.display()
        ),
        (false, false) => {}
    }
    let (ca_pem, certificate_pem, key_pem) = generate(&host_names())?;
    let mut written = Vec::new();
    // An existing `ca.pem` may be the operator's (the default mTLS CA): leave it alone.
    if !files.certificate_authority.exists() {
        write_new(files.certificate_authority, &ca_pem, false)?;
        written.push(files.certificate_authority.to_path_buf());
    }
    write_new(files.certificate, &certificate_pem, false)?;
    written.push(files.certificate.to_path_buf());
    write_new(files.private_key, &key_pem, true)?;
    written.push(files.private_key.to_path_buf());
    Ok(written)
}

/// `localhost`, the loopback addresses and the machine's host name.
fn host_names() -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned()];
    if let Ok(name) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() && name != "localhost" {
            hosts.push(name.to_owned());
        }
    }
    hosts.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
    hosts
}

/// A CA and a server certificate (serverAuth) it issued for `hosts`: PEM CA certificate, PEM
/// server certificate, PKCS #8 PEM server key.
fn generate(hosts: &[String]) -> anyhow::Result<(String, String, String)> {
    let now = OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = subject("harper-mqtt generated CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca_params.not_before, ca_params.not_after) = (now - BACKDATE, now + CA_LIFETIME);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(hosts.to_vec())?;
    let cn = hosts.first().map_or("localhost", String::as_str);
    params.distinguished_name = subject(cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (params.not_before, params.not_after) = (now - BACKDATE, now + SERVER_LIFETIME);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// `O = harper-mqtt, CN = cn`, in that order (rcgen's default subject holds a CN of its own).
fn subject(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, cn);
    name
}

/// Writes a file that must not exist yet, creating its directory; a key is readable by its owner
/// only.
fn write_new(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_usable_identity_once_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("default-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let keys = dir.join("keys");
        let (certificate, private_key, certificate_authority) = (
            keys.join("certificate.pem"),
            keys.join("privateKey.pem"),
            keys.join("ca.pem"),
        );
        let files = DefaultFiles {
            certificate: &certificate,
            private_key: &private_key,
            certificate_authority: &certificate_authority,
        };
        assert_eq!(ensure(&files).expect("first start").len(), 3);
        let pem = fs::read(&certificate).expect("written");
        let key = fs::read(&private_key).expect("written");
        transport::TlsIdentity::from_pem(&pem, &key).expect("certificate and key belong together");
        assert!(ensure(&files).expect("second start").is_empty());
        assert_eq!(fs::read(&certificate).expect("still there"), pem);

        fs::remove_file(&private_key).expect("remove");
        let err = ensure(&files).expect_err("a key is missing");
        assert!(err.to_string().contains("privateKey.pem"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
