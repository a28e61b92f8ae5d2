//! The appliance's own certificate authority and HTTPS server certificate.
//!
//! This crate owns the files under `<data>/tls/`: a local CA (`ca.pem`, `ca.key`) that
//! devices install once, and a server certificate (`server.pem`, `server.key`) signed by it
//! for the box's names and addresses. It creates the CA on first start, reissues the server
//! certificate when it is missing, about to expire, or does not cover the wanted names,
//! and builds the [`rustls::ServerConfig`] the HTTPS listener uses. The certificate is
//! picked per handshake by a swappable [`CertResolver`]: the server certificate is reissued
//! while the daemon runs when the identity grows (the external address, once known), a
//! publicly trusted certificate (obtained by ACME elsewhere) is served for the owner's
//! domain, and TLS-ALPN-01 challenge certificates are presented to ACME validators.
//!
//! It must never replace an existing CA on its own (devices trust it; losing it means
//! re-enrolling every device), never write a private key with permissions wider than
//! `0600` or non-atomically, and never open sockets, speak HTTP or log key material.
//!
//! Certificate dates come from the system clock: the caller should load after the clock
//! is plausible (a Raspberry Pi has no RTC), or certificates may be issued for the wrong time.

mod aead;
mod ca;
mod config;
mod error;
mod files;
mod identity;
mod resolver;
mod server_cert;
mod x509;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;

pub use aead::AeadPreference;
pub use error::TlsError;
pub use files::TlsPaths;
pub use identity::ServerIdentity;
pub use resolver::{ACME_TLS_ALPN, CertResolver};
pub use x509::{CertFacts, cert_facts};

/// The loaded CA and server certificate, with a ready rustls server configuration.
pub struct Tls {
    paths: TlsPaths,
    ca: ca::Ca,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: Mutex<CertificateDer<'static>>,
    resolver: Arc<CertResolver>,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the CA and server certificate from `<data_dir>/tls`, creating the CA on first
    /// start and (re)issuing the server certificate when it is missing, unreadable, expires
    /// within 30 days, or does not cover every name and address of `identity`.
    pub fn load_or_create(data_dir: &Path, identity: &ServerIdentity) -> Result<Tls, TlsError> {
        Self::load_or_create_at(data_dir, identity, SystemTime::now())
    }

    /// [`Tls::load_or_create`] with an explicit "now", for tests and callers with their own clock.
    pub fn load_or_create_at(
        data_dir: &Path,
        identity: &ServerIdentity,
        now: SystemTime,
    ) -> Result<Tls, TlsError> {
        let identity = identity.validated()?;
        let paths = TlsPaths::new(data_dir);
        files::ensure_dir(paths.dir())?;

        let ca = ca::load_or_create(&paths, now)?;
        let server = server_cert::load_or_issue(&paths, &ca, &identity, now)?;
        let lan = config::certified_key(server.cert_der.clone(), server.key_der)
            .map_err(|source| TlsError::ServerConfig { source })?;
        let resolver = Arc::new(CertResolver::new(lan));
        let preference = AeadPreference::for_this_cpu();
        if preference == AeadPreference::ChaCha20 {
            tracing::info!("this CPU has no AES instructions: HTTPS prefers ChaCha20-Poly1305");
        }
        let config = config::server_config(resolver.clone(), preference)
            .map_err(|source| TlsError::ServerConfig { source })?;

        Ok(Tls {
            paths,
            ca_pem: ca.cert_pem.clone(),
            ca_der: ca.cert_der.clone(),
            ca,
            server_der: Mutex::new(server.cert_der),
            resolver,
            config: Arc::new(config),
        })
    }

    /// Makes the server certificate cover `identity` (reissuing it if it does not), and
    /// presents the new one on the next handshakes without a restart. Returns whether the
    /// certificate changed.
    pub fn update_identity(&self, identity: &ServerIdentity) -> Result<bool, TlsError> {
        let identity = identity.validated()?;
        let server =
            server_cert::load_or_issue(&self.paths, &self.ca, &identity, SystemTime::now())?;
        let mut current = self
            .server_der
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current == server.cert_der {
            return Ok(false);
        }
        let lan = config::certified_key(server.cert_der.clone(), server.key_der)
            .map_err(|source| TlsError::ServerConfig { source })?;
        self.resolver.set_lan(lan);
        *current = server.cert_der;
        Ok(true)
    }

    /// The resolver the listener asks for a certificate on every handshake.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// The rustls configuration for the HTTPS listener: ALPN `h2` and `http/1.1`, ring provider,
    /// cipher suites preferred as [`AeadPreference::for_this_cpu`] says.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The same configuration with the cipher suites preferred as on another CPU (tests, and
    /// measuring what a Pi would negotiate).
    pub fn server_config_for(
        &self,
        preference: AeadPreference,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        config::server_config(self.resolver.clone(), preference)
            .map(Arc::new)
            .map_err(|source| TlsError::ServerConfig { source })
    }

    /// The CA certificate in PEM form, for devices to download and trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// SHA-256 of the server certificate's DER, as uppercase hex pairs joined by colons.
    pub fn server_fingerprint_sha256(&self) -> String {
        fingerprint_sha256(
            &self
                .server_der
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// SHA-256 of the CA certificate's DER, as uppercase hex pairs joined by colons.
    pub fn ca_fingerprint_sha256(&self) -> String {
        fingerprint_sha256(&self.ca_der)
    }

    /// Where the certificate and key files live.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }
}

/// Formats a SHA-256 digest the way browsers and `openssl x509 -fingerprint` show it.
fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    hex.join(":")
}
