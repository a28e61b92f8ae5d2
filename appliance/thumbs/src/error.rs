//! The crate's error type.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What went wrong making a thumbnail; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThumbError {
    #[error("thumbnail size {0} is out of range")]
    InvalidSize(u32),
    #[error("reading the image: {0}")]
    ReadInput(#[source] io::Error),
    #[error("the image is larger than {limit} bytes")]
    InputTooLarge { limit: u64 },
    #[error("not a JPEG, PNG, WebP or GIF image")]
    UnsupportedFormat,
    #[error("the image is too large to decode ({width}×{height} pixels)")]
    TooManyPixels { width: u32, height: u32 },
    #[error("decoding the image: {0}")]
    Decode(#[source] image::ImageError),
    #[error("encoding the thumbnail: {0}")]
    Encode(#[source] image::ImageError),
    #[error("writing the thumbnail: {0}")]
    WriteOutput(#[source] io::Error),
    #[error("lowering the helper's resource limits: {0}")]
    LowerLimits(#[source] io::Error),
    #[error("finding the current executable: {0}")]
    CurrentExe(#[source] io::Error),
    #[error("starting the thumbnail helper {program:?}: {source}")]
    SpawnHelper {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening the image's content: {0}")]
    OpenContent(#[source] io::Error),
    #[error("reading the image's content: {0}")]
    ReadContent(#[source] io::Error),
    #[error("talking to the thumbnail helper: {0}")]
    HelperIo(#[source] io::Error),
    #[error("the thumbnail helper ran longer than {0:?} and was killed")]
    HelperTimeout(Duration),
    #[error("the thumbnail helper failed ({status}): {stderr}")]
    HelperFailed { status: ExitStatus, stderr: String },
    #[error("the thumbnail helper wrote more than {limit} bytes")]
    OutputTooLarge { limit: u64 },
    #[error("the thumbnail helper's output is not a JPEG")]
    NotJpeg,
    #[error("thumbnail cache {path:?}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ThumbError {
    /// True when the image itself is to blame (it cannot be decoded, or decoding it crashed,
    /// hung or blew a limit), so trying again would fail again; false for passing troubles
    /// (the content could not be read, the helper could not be started, the disk is full).
    pub fn is_image_fault(&self) -> bool {
        matches!(
            self,
            ThumbError::InputTooLarge { .. }
                | ThumbError::UnsupportedFormat
                | ThumbError::TooManyPixels { .. }
                | ThumbError::Decode(_)
                | ThumbError::Encode(_)
                | ThumbError::HelperTimeout(_)
                | ThumbError::HelperFailed { .. }
                | ThumbError::OutputTooLarge { .. }
                | ThumbError::NotJpeg
        )
    }

    pub(crate) fn cache(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ThumbError {
        let path = path.into();
        move |source| ThumbError::Cache { path, source }
    }
}
