//! First boot on `/data`: create the folders the box keeps there and leave a marker, so a
//! later boot knows the box was set up before (and by which version).
//!
//! Growing the partition happens in the initramfs, before `/data` is mounted; the device
//! identity and certificates are made by the daemon whenever they are missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SystemError;

/// Folders the box keeps on `/data` besides the store's own.
pub const FOLDERS: &[&str] = &["system", "log"];
/// The marker, relative to the data folder.
pub const MARKER: &str = "system/first-boot";

/// What [`prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// No marker: this is the box's first boot; the marker was written.
    First,
    /// The marker was there: set up before by `version`.
    Again { version: String },
}

/// Creates what is missing on `data` and writes the marker on the first boot (atomically:
/// a temporary file, fsync, rename, fsync of the folder).
pub fn prepare(data: &Path, version: &str, now: SystemTime) -> Result<Boot, SystemError> {
    for folder in FOLDERS {
        let path = data.join(folder);
        std::fs::create_dir_all(&path).map_err(|source| SystemError::FirstBoot {
            what: "create",
            path,
            source,
        })?;
    }
    let marker = data.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(text) => Ok(Boot::Again {
            version: field(&text, "version").unwrap_or("unknown").to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            write_durably(&marker, &format!("version={version}\nat={seconds}\n"))?;
            Ok(Boot::First)
        }
        Err(source) => Err(SystemError::FirstBoot {
            what: "read",
            path: marker,
            source,
        }),
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn write_durably(path: &Path, text: &str) -> Result<(), SystemError> {
    let error = |what: &'static str, path: PathBuf| {
        move |source| SystemError::FirstBoot { what, path, source }
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(error("create", tmp.clone()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(error("write", tmp.clone()))?;
    std::fs::rename(&tmp, path).map_err(error("rename", path.to_owned()))?;
    if let Some(folder) = path.parent() {
        std::fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(error("sync", folder.to_owned()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_boot_once_then_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            prepare(dir.path(), "0.1.0", now).expect("first"),
            Boot::First
        );
        assert!(dir.path().join("system").is_dir());
        assert!(dir.path().join("log").is_dir());
        let marker = std::fs::read_to_string(dir.path().join(MARKER)).expect("marker");
        assert_eq!(marker, "version=0.1.0\nat=1700000000\n");
        assert_eq!(
            prepare(dir.path(), "0.2.0", now).expect("again"),
            Boot::Again {
                version: "0.1.0".into()
            }
        );
    }

    #[test]
    fn missing_folders_are_created_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path(), "0.1.0", SystemTime::now()).expect("first");
        std::fs::remove_dir(dir.path().join("log")).expect("rm");
        prepare(dir.path(), "0.1.0", SystemTime::now()).expect("again");
        assert!(dir.path().join("log").is_dir());
    }
}
