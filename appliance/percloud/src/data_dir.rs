//! The data folder: created private to the daemon's user.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::CliError;

/// Creates `dir` (mode 0700) if missing and makes sure it is private.
pub fn prepare(dir: &Path) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: format!("preparing the data folder {}", dir.display()),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(())
}
