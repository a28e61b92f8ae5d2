//! Errors of loading and creating the appliance's certificates.

use std::io;
use std::path::PathBuf;

/// A failure to load, create or use the TLS files; each variant names the step and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server identity asked for a name that cannot go into a certificate.
    #[error("invalid server name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    /// The server identity holds neither names nor addresses.
    #[error("server identity has no names and no IP addresses")]
    EmptyIdentity,

    /// Creating the TLS directory failed.
    #[error("creating directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },

    /// Reading a certificate or key file failed.
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    /// Writing a certificate or key file (or syncing its directory) failed.
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },

    /// A certificate file holds no readable PEM certificate.
    #[error("parsing certificate {path}: {reason}")]
    ParseCert { path: PathBuf, reason: String },

    /// A private key file could not be parsed.
    #[error("parsing private key {path}: {source}")]
    ParseKey { path: PathBuf, source: rcgen::Error },

    /// The CA certificate exists but its key is gone; replacing the CA would break every device.
    #[error(
        "CA key {key} is missing but CA certificate {cert} exists; restore the key, \
         or delete the certificate to create a new CA (devices must then trust it again)"
    )]
    CaKeyMissing { key: PathBuf, cert: PathBuf },

    /// The CA key on disk does not belong to the CA certificate on disk.
    #[error("CA key {key} does not belong to CA certificate {cert}; restore the matching pair")]
    CaKeyMismatch { key: PathBuf, cert: PathBuf },

    /// The CA certificate cannot serve as a trust anchor (corrupt or not a CA).
    #[error("using CA certificate {path} as a trust anchor: {source}")]
    TrustAnchor {
        path: PathBuf,
        source: rustls::Error,
    },

    /// Generating a fresh key pair failed.
    #[error("generating {what} key: {source}")]
    GenerateKey {
        what: &'static str,
        source: rcgen::Error,
    },

    /// Building or signing a certificate failed.
    #[error("signing {what} certificate: {source}")]
    Sign {
        what: &'static str,
        source: rcgen::Error,
    },

    /// A freshly issued server certificate does not verify against the stored CA
    /// (typically `ca.key` does not belong to `ca.pem`, or the CA has expired).
    #[error("new server certificate does not verify against CA {ca}: {source}")]
    IssuedCertRejected { ca: PathBuf, source: rustls::Error },

    /// A publicly trusted (ACME) certificate or its key could not be used.
    #[error("using the certificate for {domain}: {reason}")]
    PublicCert { domain: String, reason: String },

    /// rustls refused the certificate and key for the server configuration.
    #[error("building the rustls server configuration: {source}")]
    ServerConfig { source: rustls::Error },
}
