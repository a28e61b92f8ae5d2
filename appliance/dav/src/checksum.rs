//! `OC-Checksum: SHA1:<hex>` (the Nextcloud and ownCloud clients' upload checksum): parsed,
//! computed over the body as it streams, compared before anything is committed. SHA-1 is what
//! the clients send; here it only detects transfer damage, it is no security boundary.

use http::HeaderMap;
use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

use crate::status::DavError;

/// A malformed or mismatching `OC-Checksum`: the request is refused with 400, nothing stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("OC-Checksum is not ASCII")]
    NotAscii,
    #[error("OC-Checksum {0:?} has no type")]
    NoType(String),
    #[error("OC-Checksum {0:?} is not a SHA1 digest")]
    BadDigest(String),
    #[error("checksum mismatch: the client announced SHA1:{announced}, the body has SHA1:{actual}")]
    Mismatch { announced: String, actual: String },
}

impl From<ChecksumError> for DavError {
    fn from(e: ChecksumError) -> Self {
        DavError::bad_request(e.to_string())
    }
}

/// The checksum a client announced for the body it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// Lowercase hex digest.
    hex: String,
}

impl Announced {
    /// Reads `OC-Checksum`. `Ok(None)` when absent or of a type we do not verify (MD5,
    /// Adler-32: stored nowhere, since we could not vouch for it); 400 when malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ChecksumError> {
        let Some(value) = headers.get("oc-checksum") else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| ChecksumError::NotAscii)?;
        Self::parse(value)
    }

    /// Parses `TYPE:hex` (several space-separated entries are allowed: the SHA1 one counts).
    pub fn parse(value: &str) -> Result<Option<Self>, ChecksumError> {
        for item in value.split_ascii_whitespace() {
            let Some((kind, hex)) = item.split_once(':') else {
                return Err(ChecksumError::NoType(item.to_owned()));
            };
            if !kind.eq_ignore_ascii_case("SHA1") {
                continue;
            }
            if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ChecksumError::BadDigest(item.to_owned()));
            }
            return Ok(Some(Announced {
                hex: hex.to_ascii_lowercase(),
            }));
        }
        Ok(None)
    }

    /// The form kept in the store and reported in `oc:checksums`: `SHA1:<hex>`.
    pub fn stored_form(&self) -> String {
        format!("SHA1:{}", self.hex)
    }
}

/// SHA-1 of a body, fed as it arrives.
#[derive(Clone)]
pub struct Sha1(Context);

impl std::fmt::Debug for Sha1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha1")
    }
}

impl Default for Sha1 {
    fn default() -> Self {
        Sha1(Context::new(&SHA1_FOR_LEGACY_USE_ONLY))
    }
}

impl Sha1 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest, lowercase hex.
    pub fn hex(self) -> String {
        let digest = self.0.finish();
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// An error (the request gets 400, nothing is stored) unless the digest is the announced
    /// one; the form to store.
    pub fn verify(self, announced: &Announced) -> Result<String, ChecksumError> {
        let hex = self.hex();
        if hex != announced.hex {
            return Err(ChecksumError::Mismatch {
                announced: announced.hex.clone(),
                actual: hex,
            });
        }
        Ok(announced.stored_form())
    }
}

/// Verifies `data` against the announced checksum, if any; the form to store.
pub fn verify_whole(
    announced: Option<&Announced>,
    data: &[u8],
) -> Result<Option<String>, ChecksumError> {
    let Some(announced) = announced else {
        return Ok(None);
    };
    let mut sha = Sha1::default();
    sha.update(data);
    sha.verify(announced).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

    #[test]
    fn parses_and_verifies() {
        let a = Announced::parse(&format!("MD5:00 SHA1:{}", ABC.to_uppercase()))
            .expect("valid")
            .expect("sha1");
        assert_eq!(
            verify_whole(Some(&a), b"abc").expect("ok"),
            Some(format!("SHA1:{ABC}"))
        );
        let err = verify_whole(Some(&a), b"abd").expect_err("mismatch");
        assert!(matches!(err, ChecksumError::Mismatch { .. }));
        assert_eq!(DavError::from(err).status, http::StatusCode::BAD_REQUEST);
        assert_eq!(Announced::parse("ADLER32:1234").expect("ignored"), None);
        assert!(Announced::parse("SHA1:xyz").is_err());
        assert!(Announced::parse("nocolon").is_err());
    }
}
