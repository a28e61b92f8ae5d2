//! The server certificate: kept while it is sound, otherwise issued anew by the CA.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Ia5String, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use time::OffsetDateTime;

use crate::ca::Ca;
use crate::files::{self, CERT_MODE, KEY_MODE};
use crate::{ServerIdentity, TlsError, TlsPaths, config};

/// Validity of a server certificate: 397 days, the most Apple and browsers accept.
const SERVER_VALIDITY: time::Duration = time::Duration::days(397);
/// Backdating for clients whose clock is a little behind.
const SERVER_BACKDATE: time::Duration = time::Duration::hours(1);
/// A certificate expiring within this window is replaced at load.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The server certificate and its key, ready for rustls.
pub(crate) struct ServerCert {
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) key_der: PrivateKeyDer<'static>,
}

/// Returns the stored server certificate if it is sound for `identity`, otherwise issues,
/// writes and returns a new one.
pub(crate) fn load_or_issue(
    paths: &TlsPaths,
    ca: &Ca,
    identity: &ServerIdentity,
    now: SystemTime,
) -> Result<ServerCert, TlsError> {
    let verifier =
        config::verifier_for(ca.cert_der.clone()).map_err(|source| TlsError::TrustAnchor {
            path: paths.ca_cert().to_owned(),
            source,
        })?;
    match load_existing(paths)? {
        Some(existing) => match reissue_reason(&verifier, &existing, identity, now) {
            None => return Ok(existing),
            Some(reason) => tracing::info!(%reason, "issuing a new server certificate"),
        },
        None => tracing::info!("no usable server certificate; issuing one"),
    }
    issue(paths, ca, &verifier, identity, now)
}

/// The stored certificate and key; `None` when either is missing or unreadable as PEM.
fn load_existing(paths: &TlsPaths) -> Result<Option<ServerCert>, TlsError> {
    let (Some(cert_pem), Some(key_pem)) = (
        files::read_optional(paths.server_cert())?,
        files::read_optional(paths.server_key())?,
    ) else {
        return Ok(None);
    };
    files::tighten_key_permissions(paths.server_key())?;
    let cert_der = match files::parse_cert_pem(paths.server_cert(), &cert_pem) {
        Ok(der) => der,
        Err(err) => {
            tracing::warn!(%err, "ignoring unreadable server certificate");
            return Ok(None);
        }
    };
    let key_der = match rustls_pemfile::private_key(&mut key_pem.as_bytes()) {
        Ok(Some(der)) => der,
        Ok(None) | Err(_) => {
            tracing::warn!(path = %paths.server_key().display(), "ignoring unreadable server key");
            return Ok(None);
        }
    };
    Ok(Some(ServerCert { cert_der, key_der }))
}

/// Why `existing` must be replaced, or `None` if it is fine: its key must match, it must
/// chain to the CA, cover every name and address, and stay valid for [`RENEW_BEFORE`].
fn reissue_reason(
    verifier: &WebPkiServerVerifier,
    existing: &ServerCert,
    identity: &ServerIdentity,
    now: SystemTime,
) -> Option<String> {
    let keys = rustls::sign::CertifiedKey::from_der(
        vec![existing.cert_der.clone()],
        existing.key_der.clone_key(),
        &config::provider(),
    );
    if let Err(err) = keys {
        return Some(format!("server key does not match certificate: {err}"));
    }
    if let Err(err) = verify_names(verifier, &existing.cert_der, identity, now) {
        return Some(format!("current certificate rejected: {err}"));
    }
    let soon = now + RENEW_BEFORE;
    if let Err(err) = verify_names(verifier, &existing.cert_der, identity, soon) {
        return Some(format!("certificate expires within 30 days: {err}"));
    }
    None
}

/// Checks `cert` as a client trusting only our CA would, for every name in `identity`, at `at`.
fn verify_names(
    verifier: &WebPkiServerVerifier,
    cert: &CertificateDer<'_>,
    identity: &ServerIdentity,
    at: SystemTime,
) -> Result<(), rustls::Error> {
    let at = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap_or_default());
    for name in identity.server_names() {
        verifier
            .verify_server_cert(cert, &[], &name, &[], at)
            .map_err(|err| rustls::Error::General(format!("for {}: {err}", name.to_str())))?;
    }
    Ok(())
}

/// Issues a certificate for `identity` with a fresh key, checks it, and writes it key first:
/// a crash in between leaves a mismatched pair, which the next start replaces.
fn issue(
    paths: &TlsPaths,
    ca: &Ca,
    verifier: &WebPkiServerVerifier,
    identity: &ServerIdentity,
    now: SystemTime,
) -> Result<ServerCert, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| {
        TlsError::GenerateKey {
            what: "server",
            source,
        }
    })?;
    let cert = ca
        .sign(server_params(identity, now)?, &key)
        .map_err(|source| TlsError::Sign {
            what: "server",
            source,
        })?;
    let cert_der = cert.der().clone();
    verify_names(verifier, &cert_der, identity, now).map_err(|source| {
        TlsError::IssuedCertRejected {
            ca: paths.ca_cert().to_owned(),
            source,
        }
    })?;

    files::write_atomic(paths.server_key(), key.serialize_pem().as_bytes(), KEY_MODE)?;
    files::write_atomic(paths.server_cert(), cert.pem().as_bytes(), CERT_MODE)?;
    tracing::info!(names = ?identity.names, ips = ?identity.ips, "issued server certificate");
    Ok(ServerCert {
        cert_der,
        key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// Leaf parameters: SANs from `identity`, serverAuth, digital signature (ECDSA), 397 days.
fn server_params(
    identity: &ServerIdentity,
    now: SystemTime,
) -> Result<CertificateParams, TlsError> {
    let mut sans = Vec::with_capacity(identity.names.len() + identity.ips.len());
    for name in &identity.names {
        let dns = Ia5String::try_from(name.as_str()).map_err(|err| TlsError::InvalidName {
            name: name.clone(),
            reason: err.to_string(),
        })?;
        sans.push(SanType::DnsName(dns));
    }
    sans.extend(identity.ips.iter().map(|ip| SanType::IpAddress(*ip)));

    let mut subject = DistinguishedName::new();
    let common_name = identity.names.first().map_or("percloud", String::as_str);
    subject.push(DnType::CommonName, common_name);

    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::from(now);
    params.not_before = now - SERVER_BACKDATE;
    params.not_after = now + SERVER_VALIDITY;
    Ok(params)
}
