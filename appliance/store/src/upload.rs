//! The write path: streaming chunking, dedup against the index, compression, pack appends,
//! and the one metadata transaction that makes an upload visible.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::backend::PackId;
use crate::chunker::{Chunker, MIN_CHUNK};
use crate::inner::{Inner, lock};
use crate::namespace::{self, check_precondition, entry};
use crate::pack::{self, EntryHeader};
use crate::records::{
    ChunkHash, ChunkRec, ChunkRef, FileHead, NodeKind, NodeRec, UserRec, VersionRec,
};
use crate::tables::{self, DbResult, WriteTables, get_child, need_user};
use crate::versions;
use crate::{CommitOptions, CommitOutcome, NodeId, Result, StoreError, StorePath, UserId};

/// Where this upload put a chunk it wrote itself.
#[derive(Debug, Clone, Copy)]
struct Written {
    pack: PackId,
    offset: u64,
    header: EntryHeader,
}

/// The state of one upload; [`crate::Upload`] wraps it.
pub(crate) struct UploadState {
    inner: Arc<Inner>,
    user: UserId,
    len: u64,
    chunker: Chunker,
    /// `None` when resuming a staged upload whose hasher was lost to a restart, or when the
    /// file is one chunk whose hash is the file's ([`UploadState::write_whole_small`]).
    file_hash: Option<blake3::Hasher>,
    /// The file was written whole by [`UploadState::write_whole_small`].
    single_chunk: bool,
    chunks: Vec<ChunkRef>,
    /// Leading entries of `chunks` whose references are already held (by a staged upload
    /// being committed); commit transfers them instead of adding new ones.
    counted: usize,
    /// Chunks this upload appended to packs (not yet in the index).
    written: HashMap<ChunkHash, Written>,
    /// Chunks found in the index and pinned against GC until commit or drop.
    deduped: BTreeSet<ChunkHash>,
    /// Packs this upload appended to, pinned against compaction.
    packs: BTreeSet<PackId>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for UploadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("user", &self.user)
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl UploadState {
    pub fn begin(inner: Arc<Inner>, user: UserId, expected_len: Option<u64>) -> Result<Self> {
        let account = inner.user_rec(user)?;
        account.check_room(expected_len)?;
        Self::resume(
            inner,
            user,
            0,
            Chunker::default(),
            Some(blake3::Hasher::new()),
        )
    }

    /// An upload that already holds `len` bytes, of which the chunker holds the un-cut tail
    /// (a staged upload continuing). Checks no quota.
    pub fn resume(
        inner: Arc<Inner>,
        user: UserId,
        len: u64,
        chunker: Chunker,
        file_hash: Option<blake3::Hasher>,
    ) -> Result<Self> {
        Ok(UploadState {
            inner,
            user,
            len,
            chunker,
            file_hash,
            single_chunk: false,
            chunks: Vec::new(),
            counted: 0,
            written: HashMap::new(),
            deduped: BTreeSet::new(),
            packs: BTreeSet::new(),
            scratch: Vec::new(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Chunks whose references the caller already holds, to put before this upload's own.
    pub fn set_counted_prefix(&mut self, chunks: Vec<ChunkRef>) {
        self.counted = chunks.len();
        let own = std::mem::replace(&mut self.chunks, chunks);
        self.chunks.extend(own);
    }

    /// The chunks cut so far, in file order.
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The bytes not yet cut into chunks.
    pub fn pending(&self) -> &[u8] {
        self.chunker.pending()
    }

    pub fn take_hasher(&mut self) -> Option<blake3::Hasher> {
        self.file_hash.take()
    }

    /// Writes a whole file too small to be cut (at most [`MIN_CHUNK`] bytes) into a fresh
    /// upload: it becomes one chunk (none when empty) whose BLAKE3 is the file's content hash
    /// too, so its bytes are hashed once instead of twice. Nothing may be written after it.
    /// Anything else goes through [`UploadState::write`].
    pub fn write_whole_small(&mut self, data: &[u8]) -> Result<()> {
        if self.len != 0 || data.len() > MIN_CHUNK || self.file_hash.is_none() {
            return self.write(data);
        }
        self.file_hash = None;
        self.single_chunk = true;
        self.len = data.len() as u64;
        let mut chunker = std::mem::take(&mut self.chunker);
        let result = chunker.push(data, &mut |c| self.store_chunk(c));
        self.chunker = chunker;
        result
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        debug_assert!(!self.single_chunk, "written after write_whole_small");
        if let Some(h) = &mut self.file_hash {
            h.update(data);
        }
        self.len += data.len() as u64;
        let mut chunker = std::mem::take(&mut self.chunker);
        let result = chunker.push(data, &mut |c| self.store_chunk(c));
        self.chunker = chunker;
        result
    }

    /// Records a complete chunk: deduplicated against the index when possible, otherwise
    /// compressed and appended to the active pack.
    fn store_chunk(&mut self, plain: &[u8]) -> Result<()> {
        let hash = *blake3::hash(plain).as_bytes();
        self.chunks.push(ChunkRef {
            hash,
            len: plain.len() as u32,
        });
        if self.written.contains_key(&hash) || self.deduped.contains(&hash) {
            return Ok(());
        }
        {
            // Pin first, then look: GC holds this lock from its scan through its commit, so
            // a chunk seen here cannot be deleted before this upload commits.
            let mut pins = lock(&self.inner.pins);
            pins.pin_chunk(hash);
            match self.inner.chunk_rec(&hash) {
                Ok(Some(rec)) if !rec.damaged => {
                    self.deduped.insert(hash);
                    return Ok(());
                }
                Ok(_) => pins.unpin_chunk(&hash),
                Err(e) => {
                    pins.unpin_chunk(&hash);
                    return Err(e);
                }
            }
        }
        let scratch = &mut self.scratch;
        let (compression, stored) = pack::encode_chunk(&self.inner.compressors, plain, scratch)
            .map_err(|e| StoreError::io("creating a compressor", self.inner.dir.clone(), e))?;
        let header = EntryHeader {
            compression,
            plain_len: plain.len() as u32,
            stored_len: stored.len() as u32,
            hash,
        };
        let (pack, offset) = self.inner.append_entry(&header, stored, &mut self.packs)?;
        if compression == pack::COMPRESSION_NONE {
            // The bytes just appended are the ones hashed above: a reader soon after would
            // only check the page cache (see `crate::verified`).
            self.inner
                .verified
                .insert_written((pack, offset, hash), header.plain_len);
        }
        self.written.insert(
            hash,
            Written {
                pack,
                offset,
                header,
            },
        );
        Ok(())
    }

    /// Cuts the tail into the last chunk(s).
    pub fn finish_chunks(&mut self) -> Result<()> {
        let mut chunker = std::mem::take(&mut self.chunker);
        chunker.finish(&mut |c| self.store_chunk(c))
    }

    /// Makes every chunk this upload wrote durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync_packs(&self.packs)
    }

    /// Cuts the last chunks and hands what the commit transaction needs to a [`CommitJob`].
    pub fn take_job(&mut self, path: &StorePath, options: &CommitOptions) -> Result<CommitJob> {
        self.finish_chunks()?;
        let content_hash = match (&self.file_hash, self.chunks.as_slice()) {
            (Some(h), _) => *h.finalize().as_bytes(),
            (None, []) if self.single_chunk => *blake3::hash(b"").as_bytes(),
            (None, [one]) if self.single_chunk && u64::from(one.len) == self.len => one.hash,
            (None, _) => {
                return Err(StoreError::Corrupt {
                    what: "an upload".to_owned(),
                    detail: "content hasher missing".to_owned(),
                });
            }
        };
        // The job owns what the transaction needs; the pins stay with `self` (released on
        // drop, after the commit counted the references).
        Ok(CommitJob {
            user: self.user,
            len: self.len,
            chunks: std::mem::take(&mut self.chunks),
            counted: self.counted,
            written: std::mem::take(&mut self.written),
            packs: self.packs.clone(),
            content_hash,
            path: path.clone(),
            options: options.clone(),
        })
    }

    /// Gives up everything but the pins (the chunker, the buffers): what a job taken from
    /// this upload needs kept until its commit is answered.
    pub fn into_pins(mut self) -> HeldPins {
        HeldPins {
            inner: self.inner.clone(),
            deduped: std::mem::take(&mut self.deduped),
            packs: std::mem::take(&mut self.packs),
        }
    }

    fn view(&self) -> CommitView<'_> {
        CommitView {
            user: self.user,
            len: self.len,
            chunks: &self.chunks,
            counted: self.counted,
            written: &self.written,
        }
    }

    /// The metadata of a commit, inside the caller's transaction (see [`CommitView`]).
    pub fn commit_txn(
        &self,
        t: &mut WriteTables<'_>,
        path: &StorePath,
        options: &CommitOptions,
        content_hash: [u8; 32],
    ) -> Result<CommitOutcome> {
        let view = self.view();
        let checked = view.check(t, path, options)?;
        view.apply(t, &self.inner, checked, options, content_hash)
    }

    /// See [`CommitView::index_chunks`].
    pub fn index_chunks(&self, t: &mut WriteTables<'_>) -> Result<()> {
        self.view().index_chunks(t)
    }
}

/// One upload's commit, owned so that the group-commit leader (`crate::group`) can apply it
/// on its own thread while the uploading thread waits (and keeps its pins).
#[derive(Debug)]
pub(crate) struct CommitJob {
    user: UserId,
    len: u64,
    chunks: Vec<ChunkRef>,
    counted: usize,
    written: HashMap<ChunkHash, Written>,
    /// Packs the upload appended to: they must be synced before the transaction.
    pub packs: BTreeSet<PackId>,
    pub content_hash: [u8; 32],
    pub path: StorePath,
    pub options: CommitOptions,
}

impl CommitJob {
    pub fn view(&self) -> CommitView<'_> {
        CommitView {
            user: self.user,
            len: self.len,
            chunks: &self.chunks,
            counted: self.counted,
            written: &self.written,
        }
    }
}

/// What the commit transaction reads of an upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitView<'a> {
    user: UserId,
    len: u64,
    chunks: &'a [ChunkRef],
    counted: usize,
    written: &'a HashMap<ChunkHash, Written>,
}

/// The state a commit's checks found, handed to [`CommitView::apply`].
pub(crate) struct Checked<'p> {
    account: UserRec,
    parent: NodeId,
    name: &'p str,
    existing: Option<(NodeId, NodeRec)>,
    existing_entry: Option<crate::Entry>,
}

impl<'a> CommitView<'a> {
    /// The checks of a commit: the parent folder, the target's kind, If-Match /
    /// If-None-Match and the quota, against the state inside the transaction. **Writes
    /// nothing**, so a failed check leaves a shared (group) transaction as it was.
    pub fn check<'p>(
        &self,
        t: &WriteTables<'_>,
        path: &'p StorePath,
        options: &CommitOptions,
    ) -> Result<Checked<'p>> {
        let account = need_user(&t.users, self.user)?;
        let (parent, name) =
            namespace::parent_dir(&t.nodes, &t.children, account.root, path, "write to")?;
        let existing = match get_child(&t.children, parent, name)? {
            Some(id) => Some((id, tables::need_node(&t.nodes, id)?)),
            None => None,
        };
        if let Some((_, node)) = &existing
            && node.kind == NodeKind::Dir
        {
            return Err(StoreError::IsADirectory { path: path.clone() });
        }
        let existing_entry = existing.as_ref().map(|(id, n)| entry(*id, n));
        check_precondition(path, existing_entry.as_ref(), &options.precondition)?;
        let old_size = existing_entry.as_ref().map_or(0, |e| e.size);
        if let Some(quota) = account.quota {
            let others = account.used.saturating_sub(old_size);
            if others + self.len > quota {
                return Err(StoreError::QuotaExceeded {
                    user: account.name,
                    needed: self.len,
                    available: quota.saturating_sub(others),
                });
            }
        }
        Ok(Checked {
            account,
            parent,
            name,
            existing,
            existing_entry,
        })
    }

    /// The writes of a commit whose checks passed: chunk references, the version, the node,
    /// ancestors, usage, pruning. An error here leaves the transaction half-written: the
    /// caller must abort it.
    pub fn apply(
        &self,
        t: &mut WriteTables<'_>,
        inner: &Inner,
        checked: Checked<'_>,
        options: &CommitOptions,
        content_hash: [u8; 32],
    ) -> Result<CommitOutcome> {
        let Checked {
            mut account,
            parent,
            name,
            existing,
            existing_entry,
        } = checked;
        let now = tables::now();
        let old_size = existing_entry.as_ref().map_or(0, |e| e.size);
        self.index_chunks(t)?;

        let version = t.next_id(tables::NEXT_VERSION)?;
        let mtime = options.mtime.map_or(now, tables::nanos);
        let rec = VersionRec {
            size: self.len,
            mtime,
            created: now,
            hash: content_hash,
            chunk_count: self.chunks.len() as u64,
            checksum: options.checksum.clone(),
        };
        let head = FileHead {
            version,
            size: self.len,
            hash: content_hash,
            checksum: options.checksum.clone(),
        };
        let replaced = existing.is_some();
        let (id, node) = match existing {
            Some((id, mut node)) => {
                node.mtime = mtime;
                node.file = Some(head);
                (id, node)
            }
            None => {
                let id = t.next_id(tables::NEXT_NODE)?;
                let node = NodeRec {
                    owner: self.user,
                    parent,
                    name: name.to_owned(),
                    kind: NodeKind::File,
                    created: now,
                    mtime,
                    seq: 0,
                    trash: None,
                    file: Some(head),
                };
                t.put_child(parent, name, id)?;
                (id, node)
            }
        };
        versions::insert(t, id, version, &rec, self.chunks)?;
        // The node itself takes this transaction's sequence; `touch` then walks the
        // ancestors only (one node write instead of a write and a rewrite).
        let mut node = node;
        node.seq = t.seq()?;
        t.put_node(id, &node)?;
        t.touch(parent, now)?;
        account.used = account.used.saturating_sub(old_size) + self.len;
        t.put_user(self.user, &account)?;
        if replaced {
            // A new file has no older versions to prune.
            let retention = crate::settings::retention_in(&t.meta, inner)?;
            versions::prune_by_count(t, id, version, &retention)?;
        }
        Ok(CommitOutcome {
            entry: entry(id, &node),
            created: existing_entry.is_none(),
        })
    }

    /// Adds this upload's chunk references to the index, inserting the chunks it wrote itself
    /// unless someone else indexed the same content meanwhile (then our copy is dead space).
    /// The counted prefix already holds its references.
    pub fn index_chunks(&self, t: &mut WriteTables<'_>) -> Result<()> {
        let mut counts: HashMap<ChunkHash, u64> = HashMap::new();
        for c in &self.chunks[self.counted..] {
            *counts.entry(c.hash).or_default() += 1;
        }
        for (hash, n) in counts {
            let existing = t.get_chunk(&hash)?;
            let ours = self.written.get(&hash);
            let rec = match (existing, ours) {
                (Some(mut rec), Some(w)) if rec.damaged => {
                    // Healing a quarantined chunk with fresh bytes.
                    rec.pack = w.pack;
                    rec.offset = w.offset;
                    rec.stored_len = w.header.stored_len;
                    rec.compression = w.header.compression;
                    rec.damaged = false;
                    rec.refcount += n;
                    t.pack_live(w.pack, w.header.entry_len() as i64, 1)?;
                    t.quarantine.remove(&hash).db("clearing quarantine")?;
                    rec
                }
                (Some(mut rec), _) => {
                    rec.refcount += n;
                    rec
                }
                (None, Some(w)) => {
                    t.pack_live(w.pack, w.header.entry_len() as i64, 1)?;
                    ChunkRec {
                        pack: w.pack,
                        offset: w.offset,
                        stored_len: w.header.stored_len,
                        plain_len: w.header.plain_len,
                        compression: w.header.compression,
                        refcount: n,
                        damaged: false,
                    }
                }
                (None, None) => {
                    return Err(StoreError::Corrupt {
                        what: format!("chunk {}", pack::hex(&hash)),
                        detail: "vanished from the index while pinned".to_owned(),
                    });
                }
            };
            t.put_chunk(&hash, &rec)?;
        }
        Ok(())
    }
}

impl Drop for UploadState {
    fn drop(&mut self) {
        unpin(&self.inner, &self.deduped, &self.packs);
    }
}

/// The pins of an upload whose job was taken ([`UploadState::into_pins`]); released on drop.
#[derive(Debug)]
pub(crate) struct HeldPins {
    inner: Arc<Inner>,
    deduped: BTreeSet<ChunkHash>,
    packs: BTreeSet<PackId>,
}

impl Drop for HeldPins {
    fn drop(&mut self) {
        unpin(&self.inner, &self.deduped, &self.packs);
    }
}

fn unpin(inner: &Inner, deduped: &BTreeSet<ChunkHash>, packs: &BTreeSet<PackId>) {
    if deduped.is_empty() && packs.is_empty() {
        return;
    }
    let mut pins = lock(&inner.pins);
    for hash in deduped {
        pins.unpin_chunk(hash);
    }
    for &pack in packs {
        pins.unpin_pack(pack);
    }
}
