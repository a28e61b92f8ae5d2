//! The binary's error type; exit codes are decided in one place, [`CliError::exit_code`].

use crate::config::ConfigError;
use crate::control::ControlError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] percloud_store::StoreError),
    #[error(transparent)]
    Tls(#[from] percloud_tls::TlsError),
    #[error(transparent)]
    Web(#[from] percloud_web::WebError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Account(#[from] percloud_accounts::AccountError),
    #[error(transparent)]
    Thumb(#[from] percloud_thumbs::ThumbError),
    #[error(transparent)]
    Update(percloud_update::UpdateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("fsck found {0} problem(s)")]
    FsckProblems(usize),
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    /// 1: failed; 2: bad usage; 3: fsck found damage; 4: an update bundle was refused.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::FsckProblems(_) => 3,
            CliError::Update(error) if error.refusal().is_some() => 4,
            _ => 1,
        }
    }
}
