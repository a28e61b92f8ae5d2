//! percloud-store: files stored deduplicated, compressed and versioned.
//!
//! Content is cut into chunks by content-defined chunking, each chunk addressed by its BLAKE3
//! hash, compressed with zstd when that shrinks it, and appended to pack files. Metadata (the
//! namespace tree, versions, the chunk index, users, dead properties) lives in one redb
//! database. Data is fsynced before the metadata transaction that points at it commits, so an
//! acknowledged write survives a crash and an interrupted one leaves the previous version intact.
//!
//! This crate knows nothing of HTTP, TLS or password hashing. Its methods are synchronous and
//! may block on disk: async callers run them on a blocking thread.
//! The on-disk format is described in `docs/storage-format.md`.

mod error;
mod model;
mod path;

pub use error::{Result, StoreError};
pub use model::*;
pub use path::{MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, PathError, StorePath};

use std::io::{Read, Seek};
use std::path::Path;
use std::time::SystemTime;

/// Tunables; [`StoreOptions::default`] is what the appliance uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub retention: Retention,
    /// A pack is sealed and a new one started once it reaches this size.
    pub pack_target_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention: Retention::default(),
            pack_target_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A handle on an open data folder; cheap to clone and shareable between threads.
#[derive(Debug, Clone)]
pub struct Store {}

/// An upload in progress: bytes go to packs as they arrive; nothing is visible until
/// [`Upload::commit`]. Dropping it without committing abandons it.
#[derive(Debug)]
pub struct Upload {}

/// Reads one version of a file. Seeking jumps straight to the chunk that holds the offset.
#[derive(Debug)]
pub struct FileReader {}

impl Store {
    /// Opens (creating if needed) the store in `dir`. Fails with [`StoreError::InUse`] when
    /// another process holds it.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        let _ = (dir, options);
        todo!()
    }

    // --- users ---

    pub fn create_user(&self, name: &str, password_hash: &str, quota: Option<u64>) -> Result<User> {
        let _ = (name, password_hash, quota);
        todo!()
    }
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        let _ = name;
        todo!()
    }
    pub fn users(&self) -> Result<Vec<User>> {
        todo!()
    }
    pub fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<()> {
        let _ = (name, password_hash);
        todo!()
    }
    pub fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<()> {
        let _ = (name, quota);
        todo!()
    }
    /// Removes the account and its whole tree; its chunks become garbage for [`Store::gc`].
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!()
    }

    // --- namespace ---

    pub fn stat(&self, user: UserId, path: &StorePath) -> Result<Entry> {
        let _ = (user, path);
        todo!()
    }
    /// The entries of a folder, sorted by name.
    pub fn list(&self, user: UserId, path: &StorePath) -> Result<Vec<Entry>> {
        let _ = (user, path);
        todo!()
    }
    pub fn mkdir(&self, user: UserId, path: &StorePath) -> Result<Entry> {
        let _ = (user, path);
        todo!()
    }
    /// Moves a file or folder (with everything beneath it) to the trash.
    pub fn delete(&self, user: UserId, path: &StorePath, precondition: &Precondition) -> Result<()> {
        let _ = (user, path, precondition);
        todo!()
    }
    /// Renames or moves; the node keeps its id. An existing destination is refused unless
    /// `overwrite`, in which case it goes to the trash.
    pub fn rename(
        &self,
        user: UserId,
        from: &StorePath,
        to: &StorePath,
        overwrite: bool,
    ) -> Result<TransferOutcome> {
        let _ = (user, from, to, overwrite);
        todo!()
    }
    /// Copies a file (sharing its chunks) or a folder (with its contents when `recursive`);
    /// copies get new ids.
    pub fn copy(
        &self,
        user: UserId,
        from: &StorePath,
        to: &StorePath,
        overwrite: bool,
        recursive: bool,
    ) -> Result<TransferOutcome> {
        let _ = (user, from, to, overwrite, recursive);
        todo!()
    }

    // --- content ---

    /// Starts an upload for `user`. `expected_len`, when known, lets quota be checked up front.
    pub fn begin_upload(&self, user: UserId, expected_len: Option<u64>) -> Result<Upload> {
        let _ = (user, expected_len);
        todo!()
    }
    /// Opens the current version of a file.
    pub fn open_file(&self, user: UserId, path: &StorePath) -> Result<FileReader> {
        let _ = (user, path);
        todo!()
    }

    // --- versions and trash ---

    /// Every stored version, newest first (the current one first).
    pub fn versions(&self, user: UserId, path: &StorePath) -> Result<Vec<VersionInfo>> {
        let _ = (user, path);
        todo!()
    }
    pub fn open_version(
        &self,
        user: UserId,
        path: &StorePath,
        version: VersionId,
    ) -> Result<FileReader> {
        let _ = (user, path, version);
        todo!()
    }
    /// Makes an old version current again (as a new version; nothing is lost).
    pub fn restore_version(
        &self,
        user: UserId,
        path: &StorePath,
        version: VersionId,
    ) -> Result<Entry> {
        let _ = (user, path, version);
        todo!()
    }
    pub fn trash(&self, user: UserId) -> Result<Vec<TrashEntry>> {
        let _ = user;
        todo!()
    }
    /// Puts a trashed item back where it was (under a new name if that place is taken).
    pub fn restore_from_trash(&self, user: UserId, id: TrashId) -> Result<Entry> {
        let _ = (user, id);
        todo!()
    }
    pub fn purge_from_trash(&self, user: UserId, id: TrashId) -> Result<()> {
        let _ = (user, id);
        todo!()
    }
    pub fn empty_trash(&self, user: UserId) -> Result<()> {
        let _ = user;
        todo!()
    }

    // --- dead properties (WebDAV PROPPATCH) ---

    pub fn props(&self, user: UserId, path: &StorePath) -> Result<Vec<(PropName, Vec<u8>)>> {
        let _ = (user, path);
        todo!()
    }
    /// Sets and removes properties in one transaction: all or nothing.
    pub fn patch_props(
        &self,
        user: UserId,
        path: &StorePath,
        set: &[(PropName, Vec<u8>)],
        remove: &[PropName],
    ) -> Result<()> {
        let _ = (user, path, set, remove);
        todo!()
    }

    // --- maintenance ---

    /// Drops versions and trash items past retention at `now`.
    pub fn expire(&self, now: SystemTime) -> Result<ExpireReport> {
        let _ = now;
        todo!()
    }
    /// Deletes chunks nothing references and compacts packs; safe while serving.
    pub fn gc(&self) -> Result<GcReport> {
        todo!()
    }
    /// Reads every chunk, checks every hash and reference; with `repair`, quarantines what is
    /// damaged without touching what is sound.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let _ = repair;
        todo!()
    }
    pub fn stats(&self) -> Result<StoreStats> {
        todo!()
    }
}

impl Upload {
    /// Appends bytes; chunks are written to packs as soon as they are cut.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let _ = data;
        todo!()
    }
    pub fn len(&self) -> u64 {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes the bytes written so far the new content of `path`: fsyncs the data, then commits
    /// the metadata in one transaction. Only after this returns is the upload durable.
    pub fn commit(self, path: &StorePath, options: &CommitOptions) -> Result<CommitOutcome> {
        let _ = (path, options);
        todo!()
    }
}

impl FileReader {
    pub fn entry(&self) -> &Entry {
        todo!()
    }
    pub fn len(&self) -> u64 {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let _ = buf;
        todo!()
    }
}

impl Seek for FileReader {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let _ = pos;
        todo!()
    }
}
