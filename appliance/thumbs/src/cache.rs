//! The thumbnail cache on disk: `<root>/<hh>/<hash>-<size>.jpg` and `<root>/<hh>/<hash>.failed`.
//!
//! Files are written under `<root>/tmp/`, fsynced, renamed into place and the folder fsynced,
//! so a crash leaves either a whole thumbnail or none. `tmp/` is emptied when the cache opens.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::ThumbError;

/// A thumbnail's identity: the content it shows and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub hash: [u8; 32],
    pub size: u32,
}

/// What the cache holds for a key.
#[derive(Debug)]
pub(crate) enum Cached {
    Thumbnail(Bytes),
    Failed,
    Missing,
}

/// First line of a failure marker; the rest is the reason, for whoever looks.
const FAILED_MARKER_V1: &str = "percloud-thumbs failed v1";

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: Arc<Path>,
    next_temp: Arc<AtomicU64>,
}

impl Cache {
    /// Creates `root` if needed and empties its `tmp/` of files left by a crash.
    pub fn open(root: PathBuf) -> Result<Cache, ThumbError> {
        let temp = root.join("tmp");
        match fs::remove_dir_all(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ThumbError::cache(&temp)(e)),
        }
        fs::create_dir_all(&temp).map_err(ThumbError::cache(&temp))?;
        Ok(Cache {
            root: root.into(),
            next_temp: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn thumbnail_path(&self, key: Key) -> PathBuf {
        let hex = hex(&key.hash);
        self.root
            .join(&hex[..2])
            .join(format!("{hex}-{}.jpg", key.size))
    }

    fn failure_path(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex(hash);
        self.root.join(&hex[..2]).join(format!("{hex}.failed"))
    }

    /// Looks the key up (a thumbnail first, then a failure marker for its content).
    pub async fn lookup(&self, key: Key) -> Result<Cached, ThumbError> {
        let path = self.thumbnail_path(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => return Ok(Cached::Thumbnail(bytes.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ThumbError::cache(path)(e)),
        }
        let failed = self.failure_path(&key.hash);
        match tokio::fs::try_exists(&failed).await {
            Ok(true) => Ok(Cached::Failed),
            Ok(false) => Ok(Cached::Missing),
            Err(e) => Err(ThumbError::cache(failed)(e)),
        }
    }

    /// Stores a thumbnail durably. Blocking.
    pub fn store(&self, key: Key, jpeg: &[u8]) -> Result<(), ThumbError> {
        self.write_atomically(&self.thumbnail_path(key), jpeg)
    }

    /// Remembers that this content cannot be thumbnailed, at any size. Blocking.
    pub fn mark_failed(&self, hash: &[u8; 32], reason: &str) -> Result<(), ThumbError> {
        let text = format!("{FAILED_MARKER_V1}\n{reason}\n");
        self.write_atomically(&self.failure_path(hash), text.as_bytes())
    }

    fn write_atomically(&self, path: &Path, content: &[u8]) -> Result<(), ThumbError> {
        let folder = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(folder).map_err(ThumbError::cache(folder))?;
        let number = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = self.root.join("tmp").join(format!("{number}.part"));
        let written = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(content)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(ThumbError::cache(temp)(e));
        }
        if let Err(e) = fs::rename(&temp, path) {
            let _ = fs::remove_file(&temp);
            return Err(ThumbError::cache(path)(e));
        }
        fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(ThumbError::cache(folder))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_marks_and_clears_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("thumbs");
        let cache = Cache::open(root.clone()).expect("open");
        let key = Key {
            hash: [0xab; 32],
            size: 256,
        };
        assert!(matches!(cache.lookup(key).await, Ok(Cached::Missing)));
        cache.store(key, b"\xff\xd8jpeg").expect("store");
        let expected = root.join("ab").join(format!("{}-256.jpg", "ab".repeat(32)));
        assert!(expected.is_file());
        match cache.lookup(key).await {
            Ok(Cached::Thumbnail(bytes)) => assert_eq!(&bytes[..], b"\xff\xd8jpeg"),
            other => panic!("{other:?}"),
        }

        let other = Key {
            hash: [0x01; 32],
            size: 1024,
        };
        cache.mark_failed(&other.hash, "bad").expect("mark");
        assert!(matches!(cache.lookup(other).await, Ok(Cached::Failed)));
        let smaller = Key { size: 256, ..other };
        assert!(matches!(cache.lookup(smaller).await, Ok(Cached::Failed)));

        fs::write(root.join("tmp").join("7.part"), b"left by a crash").expect("write");
        let reopened = Cache::open(root.clone()).expect("reopen");
        assert_eq!(fs::read_dir(root.join("tmp")).expect("tmp").count(), 0);
        assert!(matches!(
            reopened.lookup(key).await,
            Ok(Cached::Thumbnail(_))
        ));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
