//! The data folder: created private to the daemon's user.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// The secret share-link tokens derive from: `<data>/link.key`, 32 random bytes (0600),
/// created on first start and written atomically (temporary file, fsync, rename).
pub fn link_key(dir: &Path) -> Result<[u8; 32], CliError> {
    let path = dir.join("link.key");
    let io = |what: &str, source| CliError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            return bytes.try_into().map_err(|_| {
                CliError::Internal(format!("{} is not 32 bytes long", path.display()))
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("reading", error)),
    }
    let key: [u8; 32] = rand::random();
    let temp = dir.join("link.key.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io("creating", e))?;
    file.write_all(&key).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    std::fs::rename(&temp, &path).map_err(|e| io("renaming into", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing the folder of", e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = link_key(dir.path()).expect("created");
        let again = link_key(dir.path()).expect("read");
        assert_eq!(first, again);
        let mode = std::fs::metadata(dir.path().join("link.key"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
