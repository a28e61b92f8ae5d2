//! The store's one error type. Each variant names the failed step and its input; the HTTP
//! layer maps these to statuses in one place (`percloud-dav`'s `status_for`).

use std::path::PathBuf;

use crate::{PathError, StorePath};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("{path} not found")]
    NotFound { path: StorePath },
    #[error("{path} already exists")]
    AlreadyExists { path: StorePath },
    #[error("the folder containing {path} does not exist")]
    ParentMissing { path: StorePath },
    #[error("{path} is not a folder")]
    NotADirectory { path: StorePath },
    #[error("{path} is a folder")]
    IsADirectory { path: StorePath },
    #[error("cannot move or copy {from} into itself ({to})")]
    IntoItself { from: StorePath, to: StorePath },
    #[error("{path} changed since the client last saw it")]
    PreconditionFailed { path: StorePath },
    #[error("quota of user {user} exceeded: {needed} bytes needed, {available} available")]
    QuotaExceeded {
        user: String,
        needed: u64,
        available: u64,
    },
    #[error("no space left on the data disk while {op}")]
    StorageFull { op: &'static str },
    #[error("user {name} already exists")]
    UserExists { name: String },
    #[error("no user named {name}")]
    UnknownUser { name: String },
    #[error("invalid user name {name:?}: {why}")]
    InvalidUserName { name: String, why: &'static str },
    #[error("version {version} of {path} not found")]
    VersionNotFound { path: StorePath, version: u64 },
    #[error("share link {id} not found")]
    ShareNotFound { id: u64 },
    #[error("resumable upload {id} not found")]
    StagedNotFound { id: u64 },
    #[error("resumable upload {id} is at offset {actual}, not {expected}")]
    OffsetMismatch { id: u64, expected: u64, actual: u64 },
    #[error("resumable upload {id} would exceed its announced length {length}")]
    BeyondLength { id: u64, length: u64 },
    #[error("resumable upload {id} is being written to by another request")]
    StagedBusy { id: u64 },
    #[error("the owner's account cannot be removed")]
    OwnerRequired,
    #[error("trash item {id} not found")]
    TrashItemNotFound { id: u64 },
    #[error("the data folder {dir} is in use by another process (is `percloud serve` running?)")]
    InUse { dir: PathBuf },
    #[error("{what} is damaged: {detail}")]
    Corrupt { what: String, detail: String },
    #[error(
        "unsupported on-disk format version {found} in {what} (this build reads up to {supported})"
    )]
    UnsupportedFormat {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata database error while {op}: {detail}")]
    Database { op: &'static str, detail: String },
    #[error("cannot {op} a user's root folder")]
    RootNotAllowed { op: &'static str },
}

impl StoreError {
    /// Wraps an I/O error, turning "no space left" into [`StoreError::StorageFull`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EDQUOT)
        {
            return StoreError::StorageFull { op };
        }
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
