//! Which user a verified client certificate logs in as ([`UserMapping`]).

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::UserError;

/// How a verified client certificate maps to a broker user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserMapping {
    /// The subject's common name (CN) is the username.
    #[default]
    CommonName,
    /// Every verified certificate logs in as this user.
    Fixed(String),
    /// The certificate logs nobody in; CONNECT credentials decide.
    None,
}

impl UserMapping {
    /// The user that the end-entity certificate `cert` (DER, already verified) logs in as.
    ///
    /// `Ok(None)` only for [`UserMapping::None`]. A subject without a CN, or with more than one
    /// (the last one wins, as in OpenSSL's name lookups), is handled as documented on
    /// [`UserError`].
    pub fn user_for(&self, cert: &[u8]) -> Result<Option<String>, UserError> {
        match self {
            Self::CommonName => common_name(cert).map(Some),
            Self::Fixed(user) => Ok(Some(user.clone())),
            Self::None => Ok(None),
        }
    }
}

/// The subject (RFC 4514 form) and serial number (hex) of the DER certificate `cert`, for log
/// lines; `None` if it does not parse.
pub fn subject_and_serial(cert: &[u8]) -> Option<(String, String)> {
    let (_, parsed) = X509Certificate::from_der(cert).ok()?;
    Some((parsed.subject().to_string(), parsed.raw_serial_as_string()))
}

/// The subject CN of the DER certificate `cert`.
pub fn common_name(cert: &[u8]) -> Result<String, UserError> {
    let (_, parsed) =
        X509Certificate::from_der(cert).map_err(|e| UserError::Parse(e.to_string()))?;
    let subject = parsed.subject();
    let Some(cn) = subject.iter_common_name().last() else {
        return Err(UserError::NoCommonName {
            subject: subject.to_string(),
        });
    };
    cn.as_str()
        .map(str::to_owned)
        .map_err(|_| UserError::CommonNameNotText {
            subject: subject.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> xtask::pki::Pki {
        xtask::pki::generate(&xtask::pki::PkiOptions::default()).expect("generating the test PKI")
    }

    #[test]
    fn common_name_is_the_username() {
        let pki = pki();
        let user = UserMapping::CommonName.user_for(&pki.alice.cert_der);
        assert_eq!(user, Ok(Some("alice".to_owned())));
        let user = UserMapping::CommonName.user_for(&pki.carol.cert_der);
        assert_eq!(user, Ok(Some("carol".to_owned())));
    }

    #[test]
    fn fixed_mapping_ignores_the_subject() {
        let pki = pki();
        let mapping = UserMapping::Fixed("devices".to_owned());
        assert_eq!(
            mapping.user_for(&pki.alice.cert_der),
            Ok(Some("devices".to_owned()))
        );
    }

    #[test]
    fn none_mapping_logs_nobody_in() {
        let pki = pki();
        assert_eq!(UserMapping::None.user_for(&pki.alice.cert_der), Ok(None));
    }

    #[test]
    fn rejects_garbage_as_certificate() {
        // Not DER: a SEQUENCE tag with a length running past the end.
        let garbage = [0x30, 0x82, 0xff, 0xff, 0x00];
        assert!(matches!(
            UserMapping::CommonName.user_for(&garbage),
            Err(UserError::Parse(_))
        ));
    }
}
