//! The TLS files on disk, and atomic writes with fixed permissions.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use crate::TlsError;

/// Permissions of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Permissions of certificate files (public).
pub(crate) const CERT_MODE: u32 = 0o644;
/// Permissions of a newly created TLS directory.
const DIR_MODE: u32 = 0o700;

/// The files under `<data>/tls/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    dir: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TlsPaths {
    /// The paths under `<data_dir>/tls`; touches nothing on disk.
    pub fn new(data_dir: &Path) -> TlsPaths {
        let dir = data_dir.join("tls");
        TlsPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            dir,
        }
    }

    /// `<data>/tls`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM (`ca.pem`).
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// The CA private key, PKCS#8 PEM, mode 0600 (`ca.key`).
    pub fn ca_key(&self) -> &Path {
        &self.ca_key
    }

    /// The server certificate, PEM (`server.pem`).
    pub fn server_cert(&self) -> &Path {
        &self.server_cert
    }

    /// The server private key, PKCS#8 PEM, mode 0600 (`server.key`).
    pub fn server_key(&self) -> &Path {
        &self.server_key
    }
}

/// Creates `dir` (mode 0700) and its parents if missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), TlsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| TlsError::CreateDir {
            path: dir.to_owned(),
            source,
        })
}

/// Reads a text file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The first certificate of a PEM file.
pub(crate) fn parse_cert_pem(path: &Path, pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    let parse_err = |reason: String| TlsError::ParseCert {
        path: path.to_owned(),
        reason,
    };
    match rustls_pemfile::certs(&mut pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(err)) => Err(parse_err(err.to_string())),
        None => Err(parse_err("no CERTIFICATE block".to_owned())),
    }
}

/// Narrows a key file's permissions to 0600 if something widened them.
pub(crate) fn tighten_key_permissions(path: &Path) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(write_err)?.permissions().mode() & 0o777;
    if mode & !KEY_MODE != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "key file too open; setting 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(KEY_MODE)).map_err(write_err)?;
    }
    Ok(())
}

/// Replaces `path` with `contents` atomically: a temporary file with `mode` is written and
/// fsynced, renamed over `path`, and the directory is fsynced so the rename survives power loss.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| write_err(io::Error::other("path has no parent directory")))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| write_err(io::Error::other("path has no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let result = write_tmp_and_rename(&tmp, path, dir, contents, mode);
    if result.is_err() {
        // Best effort: a stale temporary file is removed on the next write anyway.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

fn write_tmp_and_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    contents: &[u8],
    mode: u32,
) -> io::Result<()> {
    // A leftover from a crash could carry other permissions; start from a fresh file.
    match fs::remove_file(tmp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask can only narrow `mode`; set it exactly so certificates stay readable.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.key");
        write_atomic(&path, b"one", KEY_MODE).expect("first write");
        write_atomic(&path, b"two", KEY_MODE).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn tighten_narrows_open_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        write_atomic(&path, b"k", 0o644).expect("write");
        tighten_key_permissions(&path).expect("tighten");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn read_optional_missing_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            read_optional(&dir.path().join("nope"))
                .expect("read")
                .is_none()
        );
    }
}
