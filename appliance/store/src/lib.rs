//! percloud-store: files stored deduplicated, compressed and versioned.
//!
//! Content is cut into chunks by content-defined chunking, each chunk addressed by its BLAKE3
//! hash, compressed with zstd when that shrinks it, and appended to pack files. Metadata (the
//! namespace tree, versions, the chunk index, users, dead properties) lives in one redb
//! database. Data is fsynced before the metadata transaction that points at it commits, so an
//! acknowledged write survives a crash and an interrupted one leaves the previous version intact.
//!
//! **Owns**: the data folder (`meta.redb`, `packs/`, `staging/`), its on-disk format, users' trees,
//! versions, trash, dead properties, quota accounting, garbage collection and fsck.
//!
//! **Must never**: know about HTTP, TLS or password hashing (it stores the hash it is given);
//! let metadata point at bytes that are not yet durable; delete or compact data an in-flight
//! upload or a stored version still needs; read a record of an unknown format version as if
//! it were known.
//!
//! Its methods are synchronous and may block on disk: async callers run them on a blocking
//! thread. A [`Store`] is cheap to clone and safe to share between threads.
//!
//! Module map: `chunker` (streaming FastCDC), `pack` (entry byte layout,
//! compression), `backend` ([`PackBackend`], [`LocalDisk`]), `inner` (the active pack,
//! pins), `records`/`tables` (versioned records, redb tables), `namespace`, `upload`,
//! `group` (group commit), `batch` (many files, one commit), `reader`, `versions`, `trash`,
//! `props`, `users`, `usage` (folder sizes, instance id), `gc`, `fsck`, `settings`
//! (retention, disk space), `shares` (share links), `staged` (resumable uploads).
//! The on-disk format and the safety arguments are in `docs/storage-format.md`.

mod backend;
mod batch;
mod chunker;
mod compressibility;
mod compressors;
mod error;
mod fsck;
mod gc;
mod group;
mod inner;
mod model;
mod namespace;
mod pack;
mod path;
mod piece;
mod props;
mod reader;
mod records;
mod settings;
mod shares;
mod staged;
mod tables;
#[cfg(test)]
mod test_support;
mod trash;
mod upload;
mod usage;
mod users;
mod verified;
mod versions;

pub use backend::{LocalDisk, PackBackend, PackId};
pub use batch::UploadBatch;
pub use error::{Result, StoreError};
pub use model::*;
pub use path::{MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, PathError, StorePath};
pub use piece::{PIECE_LEN, Piece, Verifier};
pub use users::{MAX_USER_NAME, validate_user_name};

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use inner::Inner;

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
pub struct Store {
    inner: Arc<Inner>,
}

/// An upload in progress: bytes go to packs as they arrive; nothing is visible until
/// [`Upload::commit`]. Dropping it without committing abandons it.
#[derive(Debug)]
pub struct Upload {
    state: upload::UploadState,
    inner: Arc<Inner>,
    /// Set for small uploads, which a group commit waits for (see `group`).
    imminent: Option<group::Imminent>,
}

/// Reads one version of a file. Seeking jumps straight to the chunk that holds the offset.
#[derive(Debug)]
pub struct FileReader {
    state: reader::ReaderState,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. Fails with [`StoreError::InUse`] when
    /// another process holds it.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        let inner = Arc::new(Inner::open(dir, options)?);
        staged::open(&inner)?;
        Ok(Store { inner })
    }

    // --- users ---

    pub fn create_user(&self, name: &str, password_hash: &str, quota: Option<u64>) -> Result<User> {
        users::create(&self.inner, name, password_hash, quota)
    }
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        users::by_name(&self.inner, name)
    }
    pub fn users(&self) -> Result<Vec<User>> {
        users::all(&self.inner)
    }
    pub fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<()> {
        users::update(&self.inner, name, |u| {
            u.password_hash = password_hash.to_owned()
        })
    }
    pub fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<()> {
        users::update(&self.inner, name, |u| u.quota = quota)
    }
    /// Removes the account, its whole tree, its share links and resumable uploads; its chunks
    /// become garbage for [`Store::gc`]. The owner ([`Store::owner`]) cannot be removed
    /// ([`StoreError::OwnerRequired`]).
    pub fn remove_user(&self, name: &str) -> Result<()> {
        users::remove(&self.inner, name)
    }

    // --- namespace ---

    pub fn stat(&self, user: UserId, path: &StorePath) -> Result<Entry> {
        namespace::stat(&self.inner, user, path)
    }
    /// The entries of a folder, sorted by name.
    pub fn list(&self, user: UserId, path: &StorePath) -> Result<Vec<Entry>> {
        namespace::list(&self.inner, user, path)
    }
    pub fn mkdir(&self, user: UserId, path: &StorePath) -> Result<Entry> {
        namespace::mkdir(&self.inner, user, path)
    }
    /// Moves a file or folder (with everything beneath it) to the trash.
    pub fn delete(
        &self,
        user: UserId,
        path: &StorePath,
        precondition: &Precondition,
    ) -> Result<()> {
        namespace::delete(&self.inner, user, path, precondition)
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
        namespace::rename(&self.inner, user, from, to, overwrite)
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
        namespace::copy(&self.inner, user, from, to, overwrite, recursive)
    }

    // --- content ---

    /// Starts an upload for `user`. `expected_len`, when known, lets quota be checked up front.
    pub fn begin_upload(&self, user: UserId, expected_len: Option<u64>) -> Result<Upload> {
        let state = upload::UploadState::begin(self.inner.clone(), user, expected_len)?;
        Ok(Upload {
            state,
            inner: self.inner.clone(),
            imminent: group::Imminent::register(&self.inner, expected_len),
        })
    }
    /// Starts a batch of small files to be committed together ([`UploadBatch`]).
    pub fn begin_batch(&self) -> UploadBatch {
        UploadBatch::new(self.inner.clone())
    }
    /// Opens the current version of a file.
    pub fn open_file(&self, user: UserId, path: &StorePath) -> Result<FileReader> {
        versions::open(&self.inner, user, path, None)
    }

    // --- versions and trash ---

    /// Every stored version, newest first (the current one first).
    pub fn versions(&self, user: UserId, path: &StorePath) -> Result<Vec<VersionInfo>> {
        versions::list(&self.inner, user, path)
    }
    pub fn open_version(
        &self,
        user: UserId,
        path: &StorePath,
        version: VersionId,
    ) -> Result<FileReader> {
        versions::open(&self.inner, user, path, Some(version))
    }
    /// Makes an old version current again (as a new version; nothing is lost).
    pub fn restore_version(
        &self,
        user: UserId,
        path: &StorePath,
        version: VersionId,
    ) -> Result<Entry> {
        versions::restore(&self.inner, user, path, version)
    }
    pub fn trash(&self, user: UserId) -> Result<Vec<TrashEntry>> {
        trash::list(&self.inner, user)
    }
    /// Puts a trashed item back where it was (under a new name if that place is taken).
    pub fn restore_from_trash(&self, user: UserId, id: TrashId) -> Result<Entry> {
        trash::restore(&self.inner, user, id)
    }
    pub fn purge_from_trash(&self, user: UserId, id: TrashId) -> Result<()> {
        trash::purge(&self.inner, user, id)
    }
    pub fn empty_trash(&self, user: UserId) -> Result<()> {
        trash::empty(&self.inner, user)
    }

    // --- dead properties (WebDAV PROPPATCH) ---

    pub fn props(&self, user: UserId, path: &StorePath) -> Result<Vec<(PropName, Vec<u8>)>> {
        props::get(&self.inner, user, path)
    }
    /// Sets and removes properties in one transaction: all or nothing.
    pub fn patch_props(
        &self,
        user: UserId,
        path: &StorePath,
        set: &[(PropName, Vec<u8>)],
        remove: &[PropName],
    ) -> Result<()> {
        props::patch(&self.inner, user, path, set, remove)
    }

    // --- maintenance ---

    /// Drops versions and trash items past retention at `now`.
    pub fn expire(&self, now: SystemTime) -> Result<ExpireReport> {
        gc::expire(&self.inner, now)
    }
    /// Deletes chunks nothing references and compacts packs; safe while serving.
    pub fn gc(&self) -> Result<GcReport> {
        gc::gc(&self.inner)
    }
    /// Reads every chunk, checks every hash and reference; with `repair`, quarantines what is
    /// damaged without touching what is sound.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        fsck::fsck(&self.inner, repair)
    }
    pub fn stats(&self) -> Result<StoreStats> {
        gc::stats(&self.inner)
    }
}

impl Upload {
    /// Appends bytes; chunks are written to packs as soon as they are cut.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.state.write(data)
    }
    pub fn len(&self) -> u64 {
        self.state.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes the bytes written so far the new content of `path`: fsyncs the data, then commits
    /// the metadata in one transaction. Only after this returns is the upload durable.
    pub fn commit(self, path: &StorePath, options: &CommitOptions) -> Result<CommitOutcome> {
        let Upload {
            mut state,
            inner,
            imminent,
        } = self;
        let job = state.take_job(path, options)?;
        // Data first (inside): the packs are fdatasync'ed before the transaction, shared
        // with the uploads finishing at the same time. `state` keeps its pins until then.
        inner.commits.commit(&inner, job, imminent)
    }
}

impl Store {
    /// The data folder this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file of pack `id` (for tests and the admin tools).
    pub fn pack_path(&self, id: PackId) -> PathBuf {
        self.inner.dir.join("packs").join(format!("{id:016x}.pack"))
    }
}

impl FileReader {
    pub(crate) fn new(
        inner: Arc<Inner>,
        entry: Entry,
        chunks: Vec<records::ChunkRef>,
    ) -> FileReader {
        FileReader {
            state: reader::ReaderState::new(inner, entry, chunks),
        }
    }

    pub fn entry(&self) -> &Entry {
        self.state.entry()
    }
    pub fn len(&self) -> u64 {
        self.state.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The next [`Piece`] (`None` at the end): at most [`PIECE_LEN`] bytes, read straight
    /// into its own buffer, never crossing a chunk's end. Its bytes come out only through
    /// [`FileReader::verifier`]'s [`Verifier::release`], in order.
    pub fn read_piece(&mut self) -> std::io::Result<Option<Piece>> {
        self.state.read_piece()
    }
    /// Moves past the piece [`FileReader::read_piece`] would read next, without reading it
    /// (a [`FileReader::fork`] reads it); its length, 0 at the end.
    pub fn skip_piece(&mut self) -> usize {
        self.state.skip_piece()
    }
    /// A second reader of the same version at the same position and limit, to read
    /// alternate pieces on another thread; release all pieces of both, in file order,
    /// through one verifier.
    pub fn fork(&self) -> FileReader {
        FileReader {
            state: self.state.fork(),
        }
    }
    /// Reading stops at `end` (a range's end). A raw chunk the range ends in is verified
    /// whole before any of it is served: it will not be read to its end.
    pub fn limit(&mut self, end: u64) {
        self.state.limit(end)
    }
    /// A verifier for this reader's pieces: release all of them through the same one, in
    /// the order they were read (it refuses a piece that does not follow the last).
    pub fn verifier(&self) -> Verifier {
        self.state.verifier()
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.state.read(buf)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.state.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_can_cross_threads() {
        send_sync::<Store>();
        send::<Upload>();
        send::<FileReader>();
    }
}

/// Writes more bytes into a resumable upload; [`StagedWriter::finish`] makes what was written
/// durable and records the new offset (call it also when the client's connection broke:
/// whatever arrived is kept). Dropping it without `finish` keeps only what an earlier
/// `finish` recorded.
#[derive(Debug)]
pub struct StagedWriter {
    state: staged::WriterState,
}

impl StagedWriter {
    /// Appends bytes; fails with [`StoreError::BeyondLength`] past the announced length and
    /// [`StoreError::QuotaExceeded`] past the user's free quota.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.state.write(data)
    }
    /// Offset the upload will have after `finish`.
    pub fn offset(&self) -> u64 {
        self.state.offset()
    }
    /// Replaces the upload's label when `finish` records the new offset (same transaction),
    /// e.g. the list of the client's chunks the bytes came in.
    pub fn set_label(&mut self, label: String) {
        self.state.set_label(label)
    }
    pub fn finish(self) -> Result<StagedInfo> {
        self.state.finish()
    }
}

// Issue 3 (web pages) additions: shares, search, lookup by id, owner, persisted retention,
// resumable uploads.
impl Store {
    /// The current path of a node of `user`'s tree (NotFound when it is gone or in the trash).
    pub fn path_of(&self, user: UserId, node: NodeId) -> Result<StorePath> {
        namespace::path_of(&self.inner, user, node)
    }
    /// Files and folders whose name contains `query` (case-insensitive), at most `limit`,
    /// breadth first from the root.
    pub fn search(
        &self,
        user: UserId,
        query: &str,
        limit: usize,
    ) -> Result<Vec<(StorePath, Entry)>> {
        namespace::search(&self.inner, user, query, limit)
    }
    /// The box's owner: the first account ever created (lowest id) that still exists.
    pub fn owner(&self) -> Result<Option<User>> {
        users::owner(&self.inner)
    }
    /// Retention in force: the one set by [`Store::set_retention`], else the options'.
    pub fn retention(&self) -> Result<Retention> {
        settings::retention(&self.inner)
    }
    /// Persists new retention settings (they win over the options from then on).
    pub fn set_retention(&self, retention: Retention) -> Result<()> {
        settings::set_retention(&self.inner, retention)
    }
    /// Bytes of the data disk: (total, available to the daemon).
    pub fn disk_space(&self) -> Result<(u64, u64)> {
        settings::disk_space(&self.inner)
    }

    /// Bytes of the current versions of every file at or beneath `path`.
    pub fn tree_size(&self, user: UserId, path: &StorePath) -> Result<u64> {
        usage::tree_size(&self.inner, user, path)
    }
    /// A random id made when the data folder was created; it travels with the data (backups,
    /// a move to another box), so ids derived from it stay stable.
    pub fn instance_id(&self) -> Result<u64> {
        usage::instance_id(&self.inner)
    }

    // --- share links ---

    /// Creates a link to the file or folder at `path`; [`ShareMode::Upload`] only for folders
    /// ([`StoreError::NotADirectory`] otherwise).
    pub fn create_share(&self, user: UserId, path: &StorePath, share: NewShare) -> Result<Share> {
        shares::create(&self.inner, user, path, share)
    }
    /// `user`'s links, newest first.
    pub fn shares(&self, user: UserId) -> Result<Vec<Share>> {
        shares::list(&self.inner, user)
    }
    /// The link whose token hashes to `token_hash`, whatever its state (the caller checks
    /// expiry and whether its node still exists).
    pub fn share_by_token_hash(&self, token_hash: &[u8; 32]) -> Result<Option<Share>> {
        shares::by_token_hash(&self.inner, token_hash)
    }
    pub fn revoke_share(&self, user: UserId, id: ShareId) -> Result<()> {
        shares::revoke(&self.inner, user, id)
    }

    // --- resumable uploads ---

    /// Starts a resumable upload; quota is checked against `length` when given.
    pub fn create_staged(
        &self,
        user: UserId,
        length: Option<u64>,
        label: &str,
    ) -> Result<StagedInfo> {
        staged::create(&self.inner, user, length, label)
    }
    pub fn staged(&self, user: UserId, id: StagedId) -> Result<StagedInfo> {
        staged::status(&self.inner, user, id)
    }
    /// `user`'s resumable uploads, by id.
    pub fn staged_uploads(&self, user: UserId) -> Result<Vec<StagedInfo>> {
        staged::list(&self.inner, user)
    }
    /// Continues an upload at `offset`, which must equal its current offset
    /// ([`StoreError::OffsetMismatch`] otherwise). One writer per upload at a time
    /// ([`StoreError::StagedBusy`] otherwise).
    pub fn append_staged(&self, user: UserId, id: StagedId, offset: u64) -> Result<StagedWriter> {
        Ok(StagedWriter {
            state: staged::append(&self.inner, user, id, offset)?,
        })
    }
    /// Makes the staged bytes the new content of `path`, as [`Upload::commit`] does, and
    /// forgets the staged upload. When a length was announced, the upload must be complete
    /// ([`StoreError::OffsetMismatch`] otherwise).
    pub fn commit_staged(
        &self,
        user: UserId,
        id: StagedId,
        path: &StorePath,
        options: &CommitOptions,
    ) -> Result<CommitOutcome> {
        staged::commit(&self.inner, user, id, path, options)
    }
    /// Hands the bytes of a resumable upload received so far to `visit`, in order.
    pub fn read_staged(
        &self,
        user: UserId,
        id: StagedId,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        staged::read(&self.inner, user, id, visit)
    }
    /// Drops a resumable upload and releases its chunks.
    pub fn abort_staged(&self, user: UserId, id: StagedId) -> Result<()> {
        staged::abort(&self.inner, user, id)
    }
    /// Aborts staged uploads idle since before `cutoff`; returns how many. ([`Store::expire`]
    /// leaves them alone: the web layer decides how long a partial upload is kept.)
    pub fn expire_staged(&self, cutoff: SystemTime) -> Result<u64> {
        staged::expire(&self.inner, cutoff)
    }
}
