//! The test PKI written by `cargo xtask gen-certs`. (The CA and server certificate the broker
//! writes at first start are the binary's own: `crates/server/src/bin/server/default_keys.rs`.)
//!
//! [`generate`] builds every certificate in memory from fresh keys (ECDSA P-256 with SHA-256,
//! through `ring`); [`Pki::write_to`] writes them under the names scripts and docs depend on:
//!
//! | files | what |
//! | --- | --- |
//! | `ca.pem` `ca.key` | root CA |
//! | `intermediate.pem` `intermediate.key` | intermediate CA, issued by the root |
//! | `server.pem` `server.key` | server (`localhost`, `127.0.0.1`, `::1`), issued by the intermediate; `.pem` holds server + intermediate |
//! | `alice.pem` `alice.key`, `bob.pem` `bob.key` | clients CN `alice` and `bob`, issued by the root |
//! | `carol.pem` `carol.key` | client CN `carol`, issued by the intermediate; `.pem` holds carol + intermediate |
//! | `expired.pem` `expired.key` | client issued by the root, validity entirely in the past |
//! | `revoked.pem` `revoked.key` | client issued by the root, marked revoked in `index.txt` |
//! | `other-ca.pem` | a second, unrelated root CA |
//! | `stranger.pem` `stranger.key` | client issued by the other CA |
//! | `ocsp.pem` `ocsp.key` | delegated OCSP responder (OCSP-signing EKU, OCSP no-check), issued by the root |
//! | `index.txt` | `openssl ca` database of the root's client certificates, for `openssl ocsp` |
//!
//! Every client certificate has the clientAuth EKU and an Authority Information Access extension
//! naming [`PkiOptions::ocsp_url`]; the server certificate has serverAuth; CAs have
//! `basicConstraints CA:TRUE` and `keyCertSign`/`cRLSign`. Each certificate has its own random
//! 128-bit serial ([`Credential::serial`]).
//!
//! `openssl ocsp` answers for one issuer: [`Pki::ocsp_responder_command`] serves the root's
//! certificates (`alice`, `bob`, `expired` good, `revoked` revoked). It answers `unknown` for
//! `carol` (intermediate) and `stranger` (other CA), in a response their clients cannot verify:
//! RFC 6960 §4.2.2.2 wants a delegated responder issued by the certificate's own CA.
//!
//! [`Pki::ocsp_answer_from_before_revocation`] makes the answer an attacker would replay: `good`
//! for a certificate, an hour (or any age) old, echoing no nonce.
//!
//! Wait for that responder by reading the `ACCEPT` line it prints on stdout, not by connecting to
//! its port: a connection that closes without sending a request wedges the openssl 3.0 responder.

mod authority;
mod der;
mod file;
mod index;
mod ocsp_server;
mod replay;
mod responder;

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, anyhow};
use time::{Duration, OffsetDateTime};

use authority::{Authority, Role, SerialSource, Spec, issue};
use file::write_file;

pub use ocsp_server::OcspResponder;

/// OCSP URL written into client certificates when [`PkiOptions`] names none.
pub const DEFAULT_OCSP_URL: &str = "http://127.0.0.1:8888";

/// Names the test server certificate is valid for.
pub const DEFAULT_SERVER_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Organization in the CAs' subjects, so a stray test certificate is recognisable.
const ORGANIZATION: &str = "harper-mqtt test";

/// Certificates start an hour early so a verifier with a slightly slow clock accepts them.
const BACKDATE: Duration = Duration::hours(1);
const CA_LIFETIME: Duration = Duration::days(3650);
const LEAF_LIFETIME: Duration = Duration::days(365);

/// What [`generate`] puts into the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// OCSP responder URL in every client certificate's Authority Information Access extension.
    /// Must be a plain `http://` URL: that is all `openssl ocsp` serves.
    pub ocsp_url: String,
    /// DNS names and IP addresses in the server certificate's subjectAltName; the first is its CN.
    pub server_hosts: Vec<String>,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            ocsp_url: DEFAULT_OCSP_URL.to_owned(),
            server_hosts: DEFAULT_SERVER_HOSTS.map(str::to_owned).to_vec(),
        }
    }
}

/// One certificate with its private key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Subject in openssl's one-line form, e.g. `/CN=alice`.
    pub subject: String,
    /// Serial number in upper-case hex without separators, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The certificate alone, DER.
    pub cert_der: Vec<u8>,
    /// The certificate alone, PEM.
    pub cert_pem: String,
    /// The certificate followed by the intermediate CAs up to (not including) the root, PEM: what
    /// the `.pem` file holds and what a TLS peer sends.
    pub chain_pem: String,
    /// The private key, PKCS #8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("subject", &self.subject)
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// The whole test PKI. Field names follow the file names.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Root CA (`ca.pem`, `ca.key`).
    pub ca: Credential,
    /// Intermediate CA issued by the root (`intermediate.pem`, `intermediate.key`).
    pub intermediate: Credential,
    /// Server certificate issued by the intermediate (`server.pem` holds the chain, `server.key`).
    pub server: Credential,
    /// Client CN `alice`, issued by the root.
    pub alice: Credential,
    /// Client CN `bob`, issued by the root.
    pub bob: Credential,
    /// Client CN `carol`, issued by the intermediate (`carol.pem` holds the chain).
    pub carol: Credential,
    /// Client CN `expired`, issued by the root, validity entirely in the past.
    pub expired: Credential,
    /// Client CN `revoked`, issued by the root, revoked in `index.txt`.
    pub revoked: Credential,
    /// A second root CA unrelated to [`Pki::ca`]; only its certificate is written (`other-ca.pem`).
    pub other_ca: Credential,
    /// Client CN `stranger`, issued by the other CA.
    pub stranger: Credential,
    /// Delegated OCSP responder for the root (`ocsp.pem`, `ocsp.key`).
    pub ocsp: Credential,
    /// `index.txt` for `openssl ocsp -index`: the root's client certificates, `revoked` marked `R`.
    pub index_txt: String,
    /// The OCSP URL in the client certificates.
    pub ocsp_url: String,
    ocsp_port: u16,
}

/// One file of [`Pki::files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkiFile<'a> {
    /// File name inside the output directory.
    pub name: &'static str,
    /// File contents.
    pub contents: &'a str,
    /// A private key: written readable by the owner only.
    pub secret: bool,
}

/// Generates the complete test PKI described in the [module docs](self).
pub fn generate(options: &PkiOptions) -> anyhow::Result<Pki> {
    let ocsp_port = responder::ocsp_listen_port(&options.ocsp_url)?;
    let aia = der::authority_info_access_ocsp(&options.ocsp_url)?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let current = (now - BACKDATE, now + LEAF_LIFETIME);
    let mut serials = SerialSource::new();

    let client = |cn: &'static str, validity| Spec {
        cn,
        organization: None,
        role: Role::Client { aia: &aia },
        validity,
    };
    let ca_spec = |cn: &'static str, role| Spec {
        cn,
        organization: Some(ORGANIZATION),
        role,
        validity: (now - BACKDATE, now + CA_LIFETIME),
    };

    let root = Authority::root(
        ca_spec("harper-mqtt test root CA", Role::RootCa),
        &mut serials,
    )?;
    let intermediate = Authority::intermediate(
        ca_spec("harper-mqtt test intermediate CA", Role::IntermediateCa),
        &root,
        &mut serials,
    )?;
    let other_root = Authority::root(
        ca_spec("harper-mqtt test other CA", Role::RootCa),
        &mut serials,
    )?;

    let server_cn = options
        .server_hosts
        .first()
        .ok_or_else(|| anyhow!("server certificate needs at least one host name"))?;
    let server = issue(
        &Spec {
            cn: server_cn,
            organization: None,
            role: Role::Server {
                hosts: &options.server_hosts,
            },
            validity: current,
        },
        &intermediate,
        &mut serials,
    )?
    .credential;

    let alice = issue(&client("alice", current), &root, &mut serials)?.credential;
    let bob = issue(&client("bob", current), &root, &mut serials)?.credential;
    let carol = issue(&client("carol", current), &intermediate, &mut serials)?.credential;
    let past = (now - Duration::days(30), now - Duration::days(1));
    let expired = issue(&client("expired", past), &root, &mut serials)?.credential;
    let revoked = issue(&client("revoked", current), &root, &mut serials)?.credential;
    let stranger = issue(&client("stranger", current), &other_root, &mut serials)?.credential;
    let ocsp = issue(
        &Spec {
            cn: "harper-mqtt test OCSP responder",
            organization: Some(ORGANIZATION),
            role: Role::OcspResponder,
            validity: current,
        },
        &root,
        &mut serials,
    )?
    .credential;

    let index_txt = [
        index::line(index::Status::Valid, &alice),
        index::line(index::Status::Valid, &bob),
        index::line(index::Status::Valid, &expired),
        index::line(index::Status::Revoked { at: now }, &revoked),
    ]
    .concat();

    Ok(Pki {
        ca: root.credential,
        intermediate: intermediate.credential,
        server,
        alice,
        bob,
        carol,
        expired,
        revoked,
        other_ca: other_root.credential,
        stranger,
        ocsp,
        index_txt,
        ocsp_url: options.ocsp_url.clone(),
        ocsp_port,
    })
}

impl Pki {
    /// Every file [`Pki::write_to`] writes, in a stable order.
    pub fn files(&self) -> Vec<PkiFile<'_>> {
        fn cert<'a>(name: &'static str, contents: &'a str) -> PkiFile<'a> {
            PkiFile {
                name,
                contents,
                secret: false,
            }
        }
        fn key<'a>(name: &'static str, contents: &'a str) -> PkiFile<'a> {
            PkiFile {
                name,
                contents,
                secret: true,
            }
        }
        vec![
            cert("ca.pem", &self.ca.chain_pem),
            key("ca.key", &self.ca.key_pem),
            cert("intermediate.pem", &self.intermediate.chain_pem),
            key("intermediate.key", &self.intermediate.key_pem),
            cert("server.pem", &self.server.chain_pem),
            key("server.key", &self.server.key_pem),
            cert("alice.pem", &self.alice.chain_pem),
            key("alice.key", &self.alice.key_pem),
            cert("bob.pem", &self.bob.chain_pem),
            key("bob.key", &self.bob.key_pem),
            cert("carol.pem", &self.carol.chain_pem),
            key("carol.key", &self.carol.key_pem),
            cert("expired.pem", &self.expired.chain_pem),
            key("expired.key", &self.expired.key_pem),
            cert("revoked.pem", &self.revoked.chain_pem),
            key("revoked.key", &self.revoked.key_pem),
            cert("other-ca.pem", &self.other_ca.chain_pem),
            cert("stranger.pem", &self.stranger.chain_pem),
            key("stranger.key", &self.stranger.key_pem),
            cert("ocsp.pem", &self.ocsp.chain_pem),
            key("ocsp.key", &self.ocsp.key_pem),
            cert("index.txt", &self.index_txt),
        ]
    }

    /// Writes [`Pki::files`] into `dir`, creating it and replacing files already there. Keys are
    /// made readable by the owner only (on Unix).
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in self.files() {
            write_file(&dir.join(file.name), file.contents, file.secret)?;
        }
        Ok(())
    }

    /// Arguments after `openssl` that serve `index.txt` from `dir` as a delegated OCSP responder
    /// on the port of [`Pki::ocsp_url`], printing requests and responses.
    pub fn ocsp_responder_args(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let path = |name: &str| {
            let path = dir.join(name);
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))
        };
        Ok(vec![
            "ocsp".to_owned(),
            "-port".to_owned(),
            self.ocsp_port.to_string(),
            "-index".to_owned(),
            path("index.txt")?,
            "-CA".to_owned(),
            path("ca.pem")?,
            "-rsigner".to_owned(),
            path("ocsp.pem")?,
            "-rkey".to_owned(),
            path("ocsp.key")?,
            "-text".to_owned(),
        ])
    }

    /// [`Pki::ocsp_responder_args`] as one shell command line, quoted where needed.
    pub fn ocsp_responder_command(&self, dir: &Path) -> anyhow::Result<String> {
        let args = self.ocsp_responder_args(dir)?;
        let quoted: Vec<String> = args.iter().map(|arg| responder::shell_quote(arg)).collect();
        Ok(format!("openssl {}", quoted.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::authority::SERIAL_LEN;
    use super::*;

    fn pki() -> Pki {
        generate(&PkiOptions::default()).unwrap()
    }

    fn all(pki: &Pki) -> [&Credential; 11] {
        [
            &pki.ca,
            &pki.intermediate,
            &pki.server,
            &pki.alice,
            &pki.bob,
            &pki.carol,
            &pki.expired,
            &pki.revoked,
            &pki.other_ca,
            &pki.stranger,
            &pki.ocsp,
        ]
    }

    #[test]
    fn writes_the_file_names_scripts_depend_on() {
        let names: Vec<_> = pki().files().iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca.key",
                "intermediate.pem",
                "intermediate.key",
                "server.pem",
                "server.key",
                "alice.pem",
                "alice.key",
                "bob.pem",
                "bob.key",
                "carol.pem",
                "carol.key",
                "expired.pem",
                "expired.key",
                "revoked.pem",
                "revoked.key",
                "other-ca.pem",
                "stranger.pem",
                "stranger.key",
                "ocsp.pem",
                "ocsp.key",
                "index.txt",
            ]
        );
    }

    #[test]
    fn marks_exactly_the_key_files_secret() {
        for file in pki().files() {
            assert_eq!(file.secret, file.name.ends_with(".key"), "{}", file.name);
            if file.secret {
                assert!(file.contents.starts_with("-----BEGIN PRIVATE KEY-----"));
            }
        }
    }

    #[test]
    fn gives_every_certificate_a_distinct_positive_serial() {
        let pki = pki();
        let serials: HashSet<&str> = all(&pki).iter().map(|c| c.serial.as_str()).collect();
        assert_eq!(serials.len(), 11);
        for serial in serials {
            assert_eq!(serial.len(), 2 * SERIAL_LEN);
            assert_eq!(serial, serial.to_uppercase());
            // No leading zero octet, top bit clear: openssl prints exactly these digits.
            assert!(("01".."80").contains(&&serial[..2]), "{serial}");
        }
    }

    #[test]
    fn indexes_root_clients_with_revoked_marked() {
        let pki = pki();
        let lines: Vec<Vec<&str>> = pki
            .index_txt
            .lines()
            .map(|line| line.split('\t').collect())
            .collect();
        let expected = [
            ("V", &pki.alice),
            ("V", &pki.bob),
            ("V", &pki.expired),
            ("R", &pki.revoked),
        ];
        assert_eq!(lines.len(), expected.len());
        for (fields, (status, credential)) in lines.iter().zip(expected) {
            assert_eq!(fields.len(), 6);
            assert_eq!(fields[0], status);
            assert_eq!(fields[1], index::asn1_time(credential.not_after));
            assert_eq!(fields[2].is_empty(), status == "V");
            assert_eq!(fields[3], credential.serial);
            assert_eq!(fields[4], "unknown");
            assert_eq!(fields[5], credential.subject);
        }
        assert_eq!(pki.alice.subject, "/CN=alice");
    }

    #[test]
    fn chain_files_hold_leaf_then_intermediate() {
        let pki = pki();
        let intermediate = &pki.intermediate.cert_pem;
        assert_eq!(
            pki.carol.chain_pem,
            format!("{}{intermediate}", pki.carol.cert_pem)
        );
        assert_eq!(
            pki.server.chain_pem,
            format!("{}{intermediate}", pki.server.cert_pem)
        );
        for root_issued in [&pki.alice, &pki.intermediate, &pki.stranger, &pki.ca] {
            assert_eq!(root_issued.chain_pem, root_issued.cert_pem);
        }
    }

    #[test]
    fn expired_certificate_lies_in_the_past_and_others_are_current() {
        let pki = pki();
        let now = OffsetDateTime::now_utc();
        assert!(pki.expired.not_after < now);
        for credential in all(&pki).into_iter().filter(|c| c.subject != "/CN=expired") {
            assert!(credential.not_before < now && now < credential.not_after);
        }
    }

    #[test]
    fn rejects_ocsp_urls_openssl_cannot_serve() {
        for (url, message) in [
            (
                "https://127.0.0.1:8888",
                "ocsp url `https://127.0.0.1:8888` must start with http:// (openssl ocsp serves plain HTTP only)",
            ),
            ("http://:8888", "ocsp url `http://:8888` has no host"),
            (
                "http://h:0",
                "ocsp url `http://h:0` has an invalid port `0`",
            ),
            (
                "http://h:http",
                "ocsp url `http://h:http` has an invalid port `http`",
            ),
            (
                "http://[::1/",
                "ocsp url `http://[::1/` has an unclosed `[` in its host",
            ),
            (
                "http://[::1]x",
                "ocsp url `http://[::1]x` has junk `x` after its host",
            ),
        ] {
            let options = PkiOptions {
                ocsp_url: url.to_owned(),
                ..PkiOptions::default()
            };
            assert_eq!(generate(&options).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn prints_responder_command_for_the_url_port() {
        let options = PkiOptions {
            ocsp_url: "http://127.0.0.1:9999/".to_owned(),
            ..PkiOptions::default()
        };
        let pki = generate(&options).unwrap();
        assert_eq!(
            pki.ocsp_responder_command(Path::new("my certs")).unwrap(),
            "openssl ocsp -port 9999 -index 'my certs/index.txt' -CA 'my certs/ca.pem' \
             -rsigner 'my certs/ocsp.pem' -rkey 'my certs/ocsp.key' -text"
        );
    }

    #[cfg(unix)]
    #[test]
    fn writes_keys_owner_only_even_over_looser_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("alice.key"), "old").unwrap();
        fs::set_permissions(
            dir.path().join("alice.key"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let pki = pki();
        pki.write_to(dir.path()).unwrap();
        for file in pki.files() {
            let path = dir.path().join(file.name);
            assert_eq!(fs::read_to_string(&path).unwrap(), file.contents);
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            if file.secret {
                assert_eq!(mode, 0o600, "{}", file.name);
            }
        }
    }

    #[test]
    fn debug_hides_private_keys() {
        assert!(!format!("{:?}", pki()).contains("PRIVATE KEY"));
    }
}
