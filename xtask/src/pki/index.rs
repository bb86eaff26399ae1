//! The certificate database of `openssl ca` (`index.txt`), which `openssl ocsp -index` serves.
//!
//! One line per certificate, six tab-separated fields: status (`V` valid, `R` revoked), expiry,
//! revocation time (empty unless revoked), serial in upper-case hex, file name (`unknown`), and
//! subject in openssl's one-line form (`/CN=alice`). Times use ASN.1 UTCTime `YYMMDDHHMMSSZ`
//! (GeneralizedTime `YYYYMMDDHHMMSSZ` outside 1950..=2049, as RFC 5280 §4.1.2.5 requires).
//! `openssl ocsp` finds a certificate by serial, comparing upper-case hex with leading zeros
//! ignored.

use time::OffsetDateTime;

use super::Credential;

/// Whether the responder reports a certificate as good or revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Valid,
    Revoked { at: OffsetDateTime },
}

/// One `index.txt` line, newline included.
pub(super) fn line(status: Status, credential: &Credential) -> String {
    let (flag, revoked_at) = match status {
        Status::Valid => ('V', String::new()),
        Status::Revoked { at } => ('R', asn1_time(at)),
    };
    format!(
        "{flag}\t{}\t{revoked_at}\t{}\tunknown\t{}\n",
        asn1_time(credential.not_after),
        credential.serial,
        credential.subject,
    )
}

/// `YYMMDDHHMMSSZ`, or `YYYYMMDDHHMMSSZ` outside the UTCTime years.
pub(super) fn asn1_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    let year = if (1950..=2049).contains(&year) {
        format!("{:02}", year % 100)
    } else {
        format!("{year:04}")
    };
    format!(
        "{year}{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn credential(name: &str, serial: &str) -> Credential {
        Credential {
            subject: format!("/CN={name}"),
            serial: serial.to_owned(),
            not_before: datetime!(2026-01-01 00:00 UTC),
            not_after: datetime!(2027-03-04 05:06:07 UTC),
            cert_der: Vec::new(),
            cert_pem: String::new(),
            chain_pem: String::new(),
            key_pem: String::new(),
        }
    }

    #[test]
    fn valid_line_leaves_revocation_time_empty() {
        let line = line(Status::Valid, &credential("alice", "0A1B"));
        assert_eq!(line, "V\t270304050607Z\t\t0A1B\tunknown\t/CN=alice\n");
    }

    #[test]
    fn revoked_line_carries_revocation_time() {
        let at = datetime!(2026-02-03 04:05:06 UTC);
        let line = line(Status::Revoked { at }, &credential("revoked", "7F"));
        assert_eq!(
            line,
            "R\t270304050607Z\t260203040506Z\t7F\tunknown\t/CN=revoked\n"
        );
    }

    #[test]
    fn formats_utc_time_in_utc_whatever_the_offset() {
        assert_eq!(
            asn1_time(datetime!(2026-01-01 01:30:00 +02:00)),
            "251231233000Z"
        );
    }

    #[test]
    fn switches_to_generalized_time_from_2050() {
        assert_eq!(
            asn1_time(datetime!(2049-12-31 23:59:59 UTC)),
            "491231235959Z"
        );
        assert_eq!(
            asn1_time(datetime!(2050-01-01 00:00:00 UTC)),
            "20500101000000Z"
        );
    }
}
