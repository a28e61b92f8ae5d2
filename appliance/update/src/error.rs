//! Failures of the update machinery, each naming the step and its input, and the reasons a
//! bundle is refused (always before anything is written to a slot).

use std::path::PathBuf;

/// Why a bundle was refused. Nothing was written to any slot when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("not an update bundle: {0}")]
    NotABundle(String),
    #[error("bundle format {0} is newer than this system understands")]
    UnsupportedFormat(u32),
    #[error(
        "bundle format {0} is older than this system accepts; rebuild the bundle with a current `percloud update pack`"
    )]
    RetiredFormat(u32),
    #[error("signed by key {key_id}, which is not in this box's keyring")]
    UnknownKey { key_id: String },
    #[error("bad signature (key {key_id}): the manifest was altered or signed by another key")]
    BadSignature { key_id: String },
    #[error("manifest is invalid: {0}")]
    BadManifest(String),
    #[error("bundle is for board {bundle}, this box is {this}")]
    OtherBoard { bundle: String, this: String },
    #[error("bundle version {bundle} is not newer than the running {running} (force to downgrade)")]
    Downgrade { bundle: String, running: String },
    #[error("bundle {bundle} updates only from {min} or later; this box runs {running}")]
    BelowMinimum {
        bundle: String,
        min: String,
        running: String,
    },
    #[error("payload does not match its manifest: {0}")]
    Tampered(String),
    #[error("payload of {payload} bytes does not fit the {slot}-byte slot")]
    TooLarge { payload: u64, slot: u64 },
    #[error(
        "this box boots from a boot partition per slot (kernel, initramfs); the bundle carries no boot payload for them"
    )]
    MissingBootPayload,
    #[error(
        "the bundle carries boot partition payloads, but this box has no boot partition per slot"
    )]
    UnexpectedBootPayload,
    #[error("slot {0}'s boot partition is mounted; only a partition nothing uses can be written")]
    MountedBootPartition(crate::Slot),
    #[error("slot {0} is the running system; only the other slot can be written")]
    RunningSlot(crate::Slot),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("keyring {path}: {reason}")]
    Keyring { path: PathBuf, reason: String },
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("channel {url}: {reason}")]
    Channel { url: String, reason: String },
    #[error("slot {path}: {reason}")]
    Slot { path: PathBuf, reason: String },
    #[error("boot selection ({backend}): {reason}")]
    Boot {
        backend: &'static str,
        reason: String,
    },
    #[error("update state {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("cancelled")]
    Cancelled,
}

impl UpdateError {
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> UpdateError {
        let path = path.into();
        move |source| UpdateError::Read { path, source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> UpdateError {
        let path = path.into();
        move |source| UpdateError::Write { path, source }
    }

    /// The refusal, when the bundle itself was refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            UpdateError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}
