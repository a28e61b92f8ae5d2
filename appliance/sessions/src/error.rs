//! Errors of the session database; each names the failed step.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("cannot open the session database {path}: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("session database error while {op}: {detail}")]
    Database { op: &'static str, detail: String },
    #[error(
        "unsupported session record format version {found} (this build reads up to {supported})"
    )]
    UnsupportedFormat { found: u8, supported: u8 },
    #[error("damaged session record: {detail}")]
    Corrupt { detail: String },
    #[error("this account has {max} app passwords already; revoke unused devices first")]
    TooManyAppPasswords { max: usize },
    #[error("too many device sign-ins are pending; try again in a few minutes")]
    TooManyFlows,
}
