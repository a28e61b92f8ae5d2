//! Failures of obtaining a certificate, each naming the step.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("account file {path} is unreadable: {reason}")]
    AccountFile { path: PathBuf, reason: String },
    #[error("ACME {step}: {source}")]
    Protocol {
        step: &'static str,
        source: instant_acme::Error,
    },
    #[error("the ACME server offers no tls-alpn-01 challenge for {domain}")]
    NoTlsAlpnChallenge { domain: String },
    #[error("authorization for {domain} ended {status}")]
    Authorization { domain: String, status: String },
    #[error(
        "order ended {status} (the validator could not reach port 443 of {domain}, or saw the wrong certificate)"
    )]
    Order { domain: String, status: String },
    #[error("certificate step {step}: {source}")]
    Tls {
        step: &'static str,
        source: percloud_tls::TlsError,
    },
    #[error("building the certificate request: {0}")]
    Csr(rcgen::Error),
    #[error("timed out after {secs} s")]
    Timeout { secs: u64 },
}

impl AcmeError {
    pub(crate) fn protocol(step: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
        move |source| AcmeError::Protocol { step, source }
    }
}
