//! DER bodies of the X.509 extensions rcgen cannot write itself: Authority Information Access
//! (OCSP) and OCSP no-check.

use anyhow::ensure;

/// `id-pe-authorityInfoAccess` (RFC 5280 §4.2.2.1).
pub(super) const AUTHORITY_INFO_ACCESS_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// `id-pkix-ocsp-nocheck` (RFC 6960 §4.2.2.2.1): clients need not check the responder's own status.
pub(super) const OCSP_NO_CHECK_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// The extension value of `id-pkix-ocsp-nocheck` is an ASN.1 NULL.
pub(super) const OCSP_NO_CHECK_VALUE: &[u8] = &[0x05, 0x00];

/// `id-ad-ocsp` (1.3.6.1.5.5.7.48.1) as a complete DER OBJECT IDENTIFIER.
const ID_AD_OCSP: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];

const TAG_SEQUENCE: u8 = 0x30;
/// GeneralName `uniformResourceIdentifier [6] IA5String`, implicitly tagged (RFC 5280 §4.2.1.6).
const TAG_URI: u8 = 0x86;

/// `AuthorityInfoAccessSyntax` with one `AccessDescription { id-ad-ocsp, URI }`.
pub(super) fn authority_info_access_ocsp(url: &str) -> anyhow::Result<Vec<u8>> {
    // IA5String is 7-bit ASCII; a URI with other characters must be percent-encoded first.
    ensure!(url.is_ascii(), "ocsp url `{url}` is not ASCII");
    let location = tlv(TAG_URI, url.as_bytes());
    let description = tlv(TAG_SEQUENCE, &[ID_AD_OCSP, &location].concat());
    Ok(tlv(TAG_SEQUENCE, &description))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 10);
    out.push(tag);
    let len = content.len().to_be_bytes();
    let first = len.iter().position(|&b| b != 0).unwrap_or(len.len() - 1);
    let significant = &len[first..];
    // X.690 §8.1.3: short form below 128, else 0x80 | count followed by the big-endian length.
    if content.len() >= 0x80 {
        out.push(0x80 | significant.len() as u8);
    }
    out.extend_from_slice(significant);
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_aia_with_one_ocsp_uri() {
        let der = authority_info_access_ocsp("http://a/").unwrap();
        #[rustfmt::skip]
        let expected = [
            0x30, 0x17,                   // AuthorityInfoAccessSyntax SEQUENCE, 23 bytes
              0x30, 0x15,                 // AccessDescription SEQUENCE, 21 bytes
                0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, // id-ad-ocsp
                0x86, 0x09,               // [6] uniformResourceIdentifier, 9 bytes
                  b'h', b't', b't', b'p', b':', b'/', b'/', b'a', b'/',
        ];
        assert_eq!(der, expected);
    }

    #[test]
    fn uses_long_form_length_from_128_bytes() {
        let url = format!("http://{}", "a".repeat(121)); // 128 bytes
        let der = authority_info_access_ocsp(&url).unwrap();
        // URI: 0x86 0x81 0x80; AccessDescription: 10 + 131 = 141 = 0x8d; outer: 144 = 0x90.
        assert_eq!(&der[..3], &[0x30, 0x81, 0x90]);
        assert_eq!(&der[3..6], &[0x30, 0x81, 0x8d]);
        assert_eq!(&der[16..19], &[0x86, 0x81, 0x80]);
        assert_eq!(der.len(), 3 + 0x90);
    }

    #[test]
    fn uses_two_length_bytes_past_255() {
        assert_eq!(&tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn rejects_non_ascii_ocsp_url() {
        let err = authority_info_access_ocsp("http://exämple/").unwrap_err();
        assert_eq!(err.to_string(), "ocsp url `http://exämple/` is not ASCII");
    }
}
