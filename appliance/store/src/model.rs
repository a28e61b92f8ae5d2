//! The public data types the store hands out. They are plain values: holding one pins
//! nothing on disk.

use std::time::SystemTime;

/// A user's numeric id; never reused.
pub type UserId = u64;
/// A stable file or folder id: survives rename and move, never reused.
pub type NodeId = u64;
/// A version of a file; increases with every write to that file.
pub type VersionId = u64;
/// An item in a user's trash.
pub type TrashId = u64;

/// BLAKE3 hash of a file's whole content.
pub type ContentHash = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// A file or folder as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: NodeId,
    /// Empty for a user's root.
    pub name: String,
    pub kind: EntryKind,
    /// Content length for files; 0 for folders.
    pub size: u64,
    /// Modification time: the client's when it sent one, else the server's.
    pub mtime: SystemTime,
    pub created: SystemTime,
    /// Strong entity tag, without quotes. For folders it changes whenever anything beneath changes.
    pub etag: String,
    /// Files only.
    pub content_hash: Option<ContentHash>,
    /// Files only: the current version.
    pub version: Option<VersionId>,
    /// Files only: the checksum the client sent with the content (e.g. `SHA1:<hex>`), when
    /// it sent one.
    pub checksum: Option<String>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// One stored version of a file (the current one included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: VersionId,
    pub size: u64,
    pub mtime: SystemTime,
    /// When this version was written.
    pub created: SystemTime,
    pub content_hash: ContentHash,
    pub etag: String,
    pub current: bool,
    /// See [`Entry::checksum`].
    pub checksum: Option<String>,
}

/// Something in a user's trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub id: TrashId,
    /// Where it was, relative to the user's root.
    pub original_path: String,
    pub deleted: SystemTime,
    pub entry: Entry,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// PHC string (argon2id); hashing and checking it is `percloud-accounts`' job.
    pub password_hash: String,
    /// Bytes of file content the user may keep in current versions; `None` is unlimited.
    pub quota: Option<u64>,
    /// Bytes of file content in the user's current versions.
    pub used: u64,
    pub created: SystemTime,
}

/// A WebDAV dead property name: namespace URI and local name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PropName {
    pub namespace: String,
    pub name: String,
}

/// Conditions checked inside the same transaction as the change they guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// The target must exist with this ETag (unquoted); `Some("*")` means "must exist".
    pub if_match: Option<String>,
    /// `true`: the target must not exist (`If-None-Match: *`).
    pub if_none_match_any: bool,
}

/// Options for committing an upload.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The client's modification time (`X-OC-Mtime`, rclone's `X-OC-Mtime` too); `None` uses now.
    pub mtime: Option<SystemTime>,
    pub precondition: Precondition,
    /// The client's checksum of the content (e.g. `SHA1:<hex>`), already verified by the
    /// caller: the store keeps it with the version and reports it, it does not check it.
    pub checksum: Option<String>,
}

/// What committing an upload did.
#[derive(Debug, Clone)]
pub struct CommitOutcome {
    pub entry: Entry,
    /// `true` when the path did not exist before (HTTP 201 rather than 204).
    pub created: bool,
}

/// What a move or copy did to the destination.
#[derive(Debug, Clone)]
pub struct TransferOutcome {
    pub entry: Entry,
    /// `true` when an existing destination was replaced (moved to the trash).
    pub replaced: bool,
}

/// How long old versions and trash are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Non-current versions kept per file, newest first.
    pub keep_versions: u32,
    /// Non-current versions older than this are dropped, in days.
    pub keep_days: u32,
    /// Trash items older than this are purged, in days.
    pub trash_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_versions: 10,
            keep_days: 30,
            trash_days: 30,
        }
    }
}

/// Store-wide figures for the admin page and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes of content in every stored version (what a naive copy would take).
    pub logical_bytes: u64,
    /// Distinct chunks and their uncompressed bytes.
    pub chunks: u64,
    pub unique_bytes: u64,
    /// Bytes the chunks take in packs after compression.
    pub stored_bytes: u64,
    /// Bytes of pack files on disk, dead space included.
    pub pack_bytes: u64,
    pub packs: u64,
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub chunks_removed: u64,
    pub packs_compacted: u64,
    pub packs_deleted: u64,
    pub bytes_reclaimed: u64,
}

/// What expiry of old versions and trash did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    pub versions_removed: u64,
    pub trash_items_purged: u64,
}

/// One problem fsck found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckProblem {
    /// What is damaged, for people: "chunk 3fa4…", "version 7 of file 12", "pack 4".
    pub object: String,
    pub detail: String,
    /// Whether `--repair` quarantined or fixed it.
    pub repaired: bool,
}

/// Result of `percloud fsck`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub versions_checked: u64,
    pub nodes_checked: u64,
    pub problems: Vec<FsckProblem>,
    /// Bytes in pack files no index entry points at (dead space, crash leftovers): not
    /// damage, `gc` reclaims them.
    pub reclaimable_bytes: u64,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A share link's id.
pub type ShareId = u64;
/// A resumable upload's id.
pub type StagedId = u64;

/// What a share link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// View and download (a file, or a folder and everything beneath it).
    Read,
    /// Upload into a folder and nothing else ("file drop").
    Upload,
}

/// A share link as stored. The link's token is never stored: only `token_hash` (to find the
/// record) and `nonce` (from which the web layer re-derives the token with its own key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: ShareId,
    pub user: UserId,
    /// The shared file or folder; follows renames and moves.
    pub node: NodeId,
    pub mode: ShareMode,
    /// PHC string when the link has a password.
    pub password_hash: Option<String>,
    pub expires: Option<SystemTime>,
    pub created: SystemTime,
    pub nonce: [u8; 32],
    pub token_hash: [u8; 32],
}

/// What the web layer hands the store to make a share link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShare {
    pub mode: ShareMode,
    pub password_hash: Option<String>,
    pub expires: Option<SystemTime>,
    pub nonce: [u8; 32],
    pub token_hash: [u8; 32],
}

/// A resumable upload in progress: bytes received so far are durable in packs (and a small
/// tail file), so it survives dropped connections and restarts until committed, aborted or
/// expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedInfo {
    pub id: StagedId,
    pub user: UserId,
    /// Total length when announced.
    pub length: Option<u64>,
    /// Bytes durably received.
    pub offset: u64,
    pub created: SystemTime,
    /// Last time bytes arrived; expiry counts from here.
    pub updated: SystemTime,
    /// Opaque to the store (the web layer keeps the target path and mtime here).
    pub label: String,
}
