//! `<data>/acme/`: the account credentials and, per domain, the certificate chain and its key.
//! Keys are written 0600, atomically (temporary file, fsync, rename, fsync of the folder).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::AcmeError;

/// The files under `<data>/acme`.
#[derive(Debug, Clone)]
pub struct AcmeFiles {
    dir: PathBuf,
}

impl AcmeFiles {
    pub fn new(data_dir: &Path) -> AcmeFiles {
        AcmeFiles {
            dir: data_dir.join("acme"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The account's credentials (JSON with its private key), mode 0600.
    pub fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The certificate chain for `domain` (PEM).
    pub fn chain(&self, domain: &str) -> PathBuf {
        self.dir.join(format!("{domain}.pem"))
    }

    /// The certificate's private key for `domain`, mode 0600.
    pub fn key(&self, domain: &str) -> PathBuf {
        self.dir.join(format!("{domain}.key"))
    }

    /// Reads a file, `None` when missing.
    pub(crate) fn read(&self, path: &Path) -> Result<Option<String>, AcmeError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AcmeError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes `contents` to `path` atomically with mode 0600.
    pub(crate) fn write_private(&self, path: &Path, contents: &[u8]) -> Result<(), AcmeError> {
        let err = |source| AcmeError::Write {
            path: path.to_owned(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(err)?;
        let temp = path.with_extension("tmp");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)?;
        fs::rename(&temp, path).map_err(err)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_are_0600_and_atomic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = AcmeFiles::new(dir.path());
        let key = files.key("box.example");
        assert_eq!(files.read(&key).expect("read"), None);
        files.write_private(&key, b"secret").expect("write");
        files.write_private(&key, b"secret2").expect("rewrite");
        assert_eq!(files.read(&key).expect("read").as_deref(), Some("secret2"));
        let mode = fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(files.dir())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(!key.with_extension("tmp").exists());
    }
}
