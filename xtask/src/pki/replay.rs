//! An OCSP answer recorded before a revocation, for tests of what replaying it achieves.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ::der::asn1::{BitString, GeneralizedTime, OctetString};
use ::der::{Decode, Encode};
use anyhow::{Context, anyhow, ensure};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use x509_ocsp::{BasicOcspResponse, OcspGeneralizedTime, OcspResponse};

use super::Pki;

/// `ecdsa-with-SHA256`, how `openssl ocsp` signs with the PKI's P-256 responder key.
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";

impl Pki {
    /// What the PKI's responder answered about the client `name` (`revoked`, `alice`, ...) `age`
    /// ago, before any certificate was revoked: a `good` answer to a request without nonce,
    /// with no `nextUpdate`, as an attacker records it while a certificate is good and replays it
    /// after the revocation. Needs `openssl`.
    ///
    /// `openssl ocsp` makes the answer offline from an `index.txt` where every certificate is
    /// still valid. It always dates an answer now, so `thisUpdate` and `producedAt` are then moved
    /// back by `age` and the answer is signed again with the responder's key, as the responder
    /// would have signed it then.
    pub fn ocsp_answer_from_before_revocation(
        &self,
        name: &str,
        age: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        self.answer_in(dir.path(), name, age)
    }

    fn answer_in(&self, dir: &Path, name: &str, age: Duration) -> anyhow::Result<Vec<u8>> {
        self.write_to(dir)?;
        let all_valid: String = self
            .index_txt
            .lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split('\t').collect();
                if fields.len() > 2 {
                    fields[0] = "V";
                    fields[2] = "";
                }
                format!("{}\n", fields.join("\t"))
            })
            .collect();
        std::fs::write(dir.join("index.txt"), all_valid).context("writing index.txt")?;
        let cert = format!("{name}.pem");
        openssl(
            dir,
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-cert",
                &cert,
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        )?;
        openssl(
            dir,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-rsigner",
                "ocsp.pem",
                "-rkey",
                "ocsp.key",
                "-reqin",
                "req.der",
                "-respout",
                "resp.der",
            ],
        )?;
        let body = std::fs::read(dir.join("resp.der")).context("reading openssl's answer")?;
        backdate(&body, age, &self.ocsp.key_pem)
    }
}

/// `body` with `thisUpdate` and `producedAt` moved back by `age`, signed again with `key_pem`.
fn backdate(body: &[u8], age: Duration, key_pem: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = OcspResponse::from_der(body).map_err(|e| anyhow!("decoding: {e}"))?;
    let bytes = response
        .response_bytes
        .as_mut()
        .context("a successful response")?;
    let mut basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| anyhow!("decoding the basic response: {e}"))?;
    ensure!(
        basic.signature_algorithm.oid.to_string() == ECDSA_WITH_SHA256,
        "openssl signed with {}, not ecdsa-with-SHA256",
        basic.signature_algorithm.oid
    );
    let earlier = |t: OcspGeneralizedTime| -> anyhow::Result<OcspGeneralizedTime> {
        let then =
            t.0.to_system_time()
                .checked_sub(age)
                .context("a time before 1970")?;
        Ok(OcspGeneralizedTime(
            GeneralizedTime::from_system_time(then).map_err(|e| anyhow!("{e}"))?,
        ))
    };
    let data = &mut basic.tbs_response_data;
    data.produced_at = earlier(data.produced_at)?;
    for single in &mut data.responses {
        single.this_update = earlier(single.this_update)?;
    }
    let signed = data.to_der().map_err(|e| anyhow!("encoding: {e}"))?;
    let key = rcgen::KeyPair::from_pem(key_pem).context("the responder key")?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng)
        .map_err(|e| anyhow!("the responder key is not ECDSA P-256: {e}"))?;
    let signature = key
        .sign(&rng, &signed)
        .map_err(|e| anyhow!("signing: {e}"))?;
    basic.signature = BitString::from_bytes(signature.as_ref()).map_err(|e| anyhow!("{e}"))?;
    bytes.response = OctetString::new(basic.to_der().map_err(|e| anyhow!("encoding: {e}"))?)
        .map_err(|e| anyhow!("{e}"))?;
    response.to_der().map_err(|e| anyhow!("encoding: {e}"))
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
