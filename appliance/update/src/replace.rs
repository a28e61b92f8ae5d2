//! Small files replaced whole (the update state, the Raspberry Pi's `autoboot.txt`), so that a
//! power cut leaves either the old content or the new one, never a mix.

use std::io::Write as _;
use std::path::Path;

use crate::error::UpdateError;

/// Writes `bytes` to `temp`, fsyncs it, renames it over `path` and fsyncs the folder: the
/// rename is the one moment the name points at the new content (FAT has no journal either).
pub(crate) fn replace_file(path: &Path, temp: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let mut file = std::fs::File::create(temp).map_err(UpdateError::write(temp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(UpdateError::write(temp))?;
    std::fs::rename(temp, path).map_err(UpdateError::write(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(UpdateError::write(dir))?;
    }
    Ok(())
}
