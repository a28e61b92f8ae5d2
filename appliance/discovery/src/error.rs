//! The crate's typed errors: each variant names the failed step and its input.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error("reading the discovery state {path}: {source}")]
    ReadState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the discovery state {path} is damaged: {message}")]
    ParseState { path: PathBuf, message: String },
    #[error("the discovery state {path} has version {version}, newer than this software")]
    StateVersion { path: PathBuf, version: u32 },
    #[error("writing the discovery state {path}: {source}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "host name {0:?} must be 1-63 letters, digits or hyphens (no leading or trailing hyphen)"
    )]
    InvalidHostname(String),
    #[error("instance name {0:?} must be 1-63 bytes of printable text")]
    InvalidInstance(String),
    #[error("starting the mDNS responder: {0}")]
    Start(String),
    #[error("registering {service}: {message}")]
    Register { service: String, message: String },
    #[error("browsing {service}: {message}")]
    Browse { service: String, message: String },
}
