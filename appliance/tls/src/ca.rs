//! The local certificate authority: created once, then only ever loaded.

use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::files::{self, CERT_MODE, KEY_MODE};
use crate::{TlsError, TlsPaths};

/// CA validity: ten years.
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
/// The CA is backdated so devices with a slightly slow clock accept it.
const CA_BACKDATE: time::Duration = time::Duration::days(1);

/// The loaded CA: its certificate as stored, and what is needed to sign with it.
pub(crate) struct Ca {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    /// Rebuilt from the key on every load; rcgen takes the issuer name and key identifier from it.
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// Signs `params` for the holder of `public_key` with the CA key.
    pub(crate) fn sign(
        &self,
        params: CertificateParams,
        public_key: &KeyPair,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        params.signed_by(public_key, &self.issuer, &self.key)
    }
}

/// Loads the CA from `paths`, creating it when neither file exists.
///
/// A missing `ca.pem` next to an existing `ca.key` (a crash during creation) is rebuilt from
/// the key with the same name; a missing `ca.key` next to an existing `ca.pem` is an error,
/// because a new CA would make every enrolled device distrust the box.
pub(crate) fn load_or_create(paths: &TlsPaths, now: SystemTime) -> Result<Ca, TlsError> {
    let key_pem = files::read_optional(paths.ca_key())?;
    let cert_pem = files::read_optional(paths.ca_cert())?;
    let key_pem = match (key_pem, &cert_pem) {
        (None, None) => return create(paths, now),
        (None, Some(_)) => {
            return Err(TlsError::CaKeyMissing {
                key: paths.ca_key().to_owned(),
                cert: paths.ca_cert().to_owned(),
            });
        }
        (Some(key_pem), _) => key_pem,
    };

    files::tighten_key_permissions(paths.ca_key())?;
    let key = KeyPair::from_pem(&key_pem).map_err(|source| TlsError::ParseKey {
        path: paths.ca_key().to_owned(),
        source,
    })?;
    let issuer = self_sign(&key, now)?;
    let cert_pem = match cert_pem {
        Some(pem) => pem,
        None => {
            tracing::warn!(
                path = %paths.ca_cert().display(),
                "CA certificate missing; rebuilding it from the existing CA key (same name and key)"
            );
            let pem = issuer.pem();
            files::write_atomic(paths.ca_cert(), pem.as_bytes(), CERT_MODE)?;
            pem
        }
    };
    let cert_der = files::parse_cert_pem(paths.ca_cert(), &cert_pem)?;
    if !contains(&cert_der, &key.public_key_der()) {
        return Err(TlsError::CaKeyMismatch {
            key: paths.ca_key().to_owned(),
            cert: paths.ca_cert().to_owned(),
        });
    }
    tracing::debug!(name = %common_name(&key), "loaded local CA");
    Ok(Ca {
        cert_pem,
        cert_der,
        issuer,
        key,
    })
}

/// Generates the CA key and certificate and writes them, key first: a crash in between
/// leaves a key the certificate is rebuilt from on the next start.
fn create(paths: &TlsPaths, now: SystemTime) -> Result<Ca, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| TlsError::GenerateKey { what: "CA", source })?;
    let issuer = self_sign(&key, now)?;
    let cert_pem = issuer.pem();
    files::write_atomic(paths.ca_key(), key.serialize_pem().as_bytes(), KEY_MODE)?;
    files::write_atomic(paths.ca_cert(), cert_pem.as_bytes(), CERT_MODE)?;
    tracing::info!(name = %common_name(&key), path = %paths.ca_cert().display(), "created local CA");
    Ok(Ca {
        cert_pem,
        cert_der: issuer.der().clone(),
        issuer,
        key,
    })
}

/// The CA certificate for `key`. Its distinguished name is derived from the key alone and is
/// rebuilt on every start to sign with, so it must never change between releases: a
/// different name would no longer match the `ca.pem` devices trust.
fn self_sign(key: &KeyPair, now: SystemTime) -> Result<rcgen::Certificate, TlsError> {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name(key));
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    // Path length 0: the CA signs server certificates only, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::from(now);
    params.not_before = now - CA_BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params
        .self_signed(key)
        .map_err(|source| TlsError::Sign { what: "CA", source })
}

/// `percloud local CA <short id>`, the id being the first 4 bytes of BLAKE3 of the public key:
/// distinct per box, so a user with two boxes can tell their CAs apart.
fn common_name(key: &KeyPair) -> String {
    let hash = blake3::hash(&key.public_key_der());
    let short: String = hash.as_bytes()[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("percloud local CA {short}")
}

/// Whether `haystack` contains `needle`. A certificate embeds its DER SubjectPublicKeyInfo
/// verbatim, so this tells whether a certificate is for a given key without an X.509 parser.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
