//! Issuing certificates: what each role puts into a certificate, CAs that sign, random serials.

use std::collections::HashSet;

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::{Credential, der};

/// Random serial length; RFC 5280 §4.1.2.2 allows up to 20 octets and CAs use at least 64 bits.
pub(super) const SERIAL_LEN: usize = 16;

/// What a certificate is for; decides its extensions.
pub(super) enum Role<'a> {
    RootCa,
    IntermediateCa,
    Server {
        hosts: &'a [String],
    },
    /// `aia` is the DER body of the Authority Information Access extension.
    Client {
        aia: &'a [u8],
    },
    OcspResponder,
}

/// One certificate to issue.
pub(super) struct Spec<'a> {
    pub(super) cn: &'a str,
    pub(super) organization: Option<&'a str>,
    pub(super) role: Role<'a>,
    pub(super) validity: (OffsetDateTime, OffsetDateTime),
}

impl Spec<'_> {
    fn params(&self, serial: [u8; SERIAL_LEN]) -> anyhow::Result<CertificateParams> {
        let mut params = match self.role {
            Role::Server { hosts } => CertificateParams::new(hosts.to_vec())
                .with_context(|| format!("server host names {hosts:?}"))?,
            _ => CertificateParams::default(),
        };
        (params.not_before, params.not_after) = self.validity;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        if let Some(organization) = self.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, organization);
        }
        params.distinguished_name.push(DnType::CommonName, self.cn);
        params.use_authority_key_identifier_extension = !matches!(self.role, Role::RootCa);

        let ca_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        match self.role {
            Role::RootCa => {
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = ca_usages;
            }
            Role::IntermediateCa => {
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.key_usages = ca_usages;
            }
            Role::Server { .. } => {
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Role::Client { aia } => {
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        der::AUTHORITY_INFO_ACCESS_OID,
                        aia.to_vec(),
                    ));
            }
            Role::OcspResponder => {
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        der::OCSP_NO_CHECK_OID,
                        der::OCSP_NO_CHECK_VALUE.to_vec(),
                    ));
            }
        }
        Ok(params)
    }

    /// The subject as openssl prints it with `-nameopt compat` and writes it to `index.txt`.
    fn openssl_subject(&self) -> String {
        match self.organization {
            Some(organization) => format!("/O={organization}/CN={}", self.cn),
            None => format!("/CN={}", self.cn),
        }
    }
}

/// A CA that can sign, with its own certificate.
pub(super) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub(super) credential: Credential,
    /// Self-signed: certificates it issues carry no further chain.
    is_root: bool,
}

impl Authority {
    pub(super) fn root(spec: Spec<'_>, serials: &mut SerialSource) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let serial = serials.next()?;
        let params = spec.params(serial)?;
        let cert = params.self_signed(&key)?;
        let credential = Credential::new(&spec, serial, &cert, &key, "");
        Ok(Self {
            issuer: Issuer::new(params, key),
            credential,
            is_root: true,
        })
    }

    pub(super) fn intermediate(
        spec: Spec<'_>,
        parent: &Authority,
        serials: &mut SerialSource,
    ) -> anyhow::Result<Self> {
        let Issued {
            credential,
            params,
            key,
        } = issue(&spec, parent, serials)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            credential,
            is_root: false,
        })
    }

    /// What follows a certificate this authority issued in its chain file.
    fn chain_pem(&self) -> &str {
        if self.is_root {
            ""
        } else {
            &self.credential.chain_pem
        }
    }
}

/// A certificate just issued, with what it takes to make it a CA.
pub(super) struct Issued {
    pub(super) credential: Credential,
    params: CertificateParams,
    key: KeyPair,
}

/// Issues the certificate `spec` describes, signed by `by`.
pub(super) fn issue(
    spec: &Spec<'_>,
    by: &Authority,
    serials: &mut SerialSource,
) -> anyhow::Result<Issued> {
    let key = KeyPair::generate()?;
    let serial = serials.next()?;
    let params = spec.params(serial)?;
    let cert = params
        .signed_by(&key, &by.issuer)
        .with_context(|| format!("issuing certificate for {}", spec.cn))?;
    let credential = Credential::new(spec, serial, &cert, &key, by.chain_pem());
    Ok(Issued {
        credential,
        params,
        key,
    })
}

impl Credential {
    fn new(
        spec: &Spec<'_>,
        serial: [u8; SERIAL_LEN],
        cert: &Certificate,
        key: &KeyPair,
        issuer_chain_pem: &str,
    ) -> Self {
        let cert_pem = cert.pem();
        Self {
            subject: spec.openssl_subject(),
            serial: hex_upper(&serial),
            not_before: spec.validity.0,
            not_after: spec.validity.1,
            cert_der: cert.der().to_vec(),
            chain_pem: format!("{cert_pem}{issuer_chain_pem}"),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

/// Distinct random serials, positive and without a leading zero octet so that their DER
/// encoding, rcgen's and openssl's hex all agree.
pub(super) struct SerialSource {
    rng: SystemRandom,
    issued: HashSet<[u8; SERIAL_LEN]>,
}

impl SerialSource {
    pub(super) fn new() -> Self {
        Self {
            rng: SystemRandom::new(),
            issued: HashSet::new(),
        }
    }

    fn next(&mut self) -> anyhow::Result<[u8; SERIAL_LEN]> {
        loop {
            let mut serial = [0; SERIAL_LEN];
            self.rng
                .fill(&mut serial)
                .map_err(|_| anyhow!("system random number generator failed"))?;
            serial[0] &= 0x7f;
            if serial[0] != 0 && self.issued.insert(serial) {
                return Ok(serial);
            }
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
