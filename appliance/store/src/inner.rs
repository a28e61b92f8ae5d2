//! The shared state behind a [`crate::Store`] handle: the database, the pack backend, the
//! active pack being appended to, and the pins that keep GC off in-flight uploads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::Database;

use crate::backend::{LocalDisk, PackBackend, PackId};
use crate::compressors::Compressors;
use crate::group::CommitQueue;
use crate::pack::{self, ENTRY_HEADER_LEN, EntryHeader, PACK_HEADER_LEN};
use crate::records::{ChunkHash, ChunkRec, IdRec, Record};
use crate::tables::{self, DbResult, ReadTables, TreeTables, WriteTables, get_rec};
use crate::verified::VerifiedSet;
use crate::{Result, StoreError, StoreOptions};

/// redb's page cache; its default (1 GiB) is too much for a Raspberry Pi, and the kernel's
/// page cache holds the file as well. 16 MiB instead of 64 changed no bench figure beyond
/// noise, (3), (3c) and (4) included; the peaks under (5) vary more from run to run (89
/// and 104 MiB in two runs with 16, 99.8 with 64) than this moves them.
const DB_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Appends are buffered up to this many bytes before they reach the pack file.
const APPEND_BUFFER: usize = 1024 * 1024;

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub db: Database,
    pub options: StoreOptions,
    pub backend: Arc<dyn PackBackend>,
    pub writer: Mutex<ActivePack>,
    pub pins: Mutex<Pins>,
    /// Serialises gc, expire and fsck with each other.
    pub maintenance: Mutex<()>,
    /// Staged uploads someone is writing, committing or aborting right now.
    pub staged_busy: Mutex<HashSet<u64>>,
    /// Content hashers of staged uploads, with the offset they have consumed up to; lost on
    /// restart (the commit then re-reads the staged bytes).
    pub staged_hashers: Mutex<HashMap<u64, (u64, blake3::Hasher)>>,
    /// Uploads waiting to be committed together (group commit).
    pub commits: CommitQueue,
    /// Raw chunks known good recently: served without hashing again.
    pub verified: VerifiedSet,
    /// zstd contexts for the uploads' chunks.
    pub compressors: Compressors,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The pack new chunks go to. Never compacted while active.
#[derive(Debug, Default)]
pub(crate) struct ActivePack {
    pub id: Option<PackId>,
    /// Length of the pack including what is still buffered.
    len: u64,
    buf: Vec<u8>,
    /// Packs whose buffered bytes were lost to a failed write or sync: uploads that wrote
    /// there must not commit.
    poisoned: HashSet<PackId>,
}

/// What in-flight uploads hold against GC: chunks they dedup'd against (not to be deleted)
/// and packs they wrote unindexed chunks into (not to be compacted).
#[derive(Debug, Default)]
pub(crate) struct Pins {
    pub chunks: HashMap<ChunkHash, u32>,
    pub packs: HashMap<PackId, u32>,
}

impl Pins {
    pub fn pin_chunk(&mut self, hash: ChunkHash) {
        *self.chunks.entry(hash).or_default() += 1;
    }
    pub fn unpin_chunk(&mut self, hash: &ChunkHash) {
        if let Some(n) = self.chunks.get_mut(hash) {
            *n -= 1;
            if *n == 0 {
                self.chunks.remove(hash);
            }
        }
    }
    pub fn pin_pack(&mut self, id: PackId) {
        *self.packs.entry(id).or_default() += 1;
    }
    pub fn unpin_pack(&mut self, id: PackId) {
        if let Some(n) = self.packs.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.packs.remove(&id);
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Inner> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
        let db_path = dir.join("meta.redb");
        let db = match Database::builder()
            .set_cache_size(DB_CACHE_BYTES)
            .create(&db_path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse {
                    dir: dir.to_owned(),
                });
            }
            Err(e) => return Err(e).db("opening meta.redb"),
        };
        init_tables(&db)?;
        let backend: Arc<dyn PackBackend> = Arc::new(LocalDisk::open(&dir.join("packs"))?);
        let mut active = ActivePack::default();
        // Keep appending to the newest pack when it has room; bytes a crash left at its end
        // stay there as dead space.
        if let Some(&(id, len)) = backend.list()?.last()
            && len >= PACK_HEADER_LEN
            && len < options.pack_target_bytes
        {
            active.id = Some(id);
            active.len = len;
        }
        Ok(Inner {
            dir: dir.to_owned(),
            db,
            options,
            backend,
            writer: Mutex::new(active),
            pins: Mutex::new(Pins::default()),
            maintenance: Mutex::new(()),
            staged_busy: Mutex::new(HashSet::new()),
            staged_hashers: Mutex::new(HashMap::new()),
            commits: CommitQueue::default(),
            verified: VerifiedSet::default(),
            compressors: Compressors::for_this_machine(),
        })
    }

    /// Appends one entry to the active pack (starting a new one when full) and pins that pack
    /// for the caller unless `pinned` already holds it. Returns (pack, offset of the entry).
    pub fn append_entry(
        &self,
        header: &EntryHeader,
        stored: &[u8],
        pinned: &mut BTreeSet<PackId>,
    ) -> Result<(PackId, u64)> {
        let mut w = lock(&self.writer);
        let entry_len = header.entry_len();
        let full = w.len > PACK_HEADER_LEN && w.len + entry_len > self.options.pack_target_bytes;
        let id = match w.id {
            Some(id) if !full => id,
            _ => self.rotate(&mut w)?,
        };
        if pinned.insert(id) {
            lock(&self.pins).pin_pack(id);
        }
        let offset = w.len;
        w.buf.extend_from_slice(&header.encode());
        w.buf.extend_from_slice(stored);
        w.len += entry_len;
        if w.buf.len() >= APPEND_BUFFER {
            self.flush(&mut w, id)?;
        }
        Ok((id, offset))
    }

    /// Writes the buffer out; on failure the pack is poisoned and abandoned.
    fn flush(&self, w: &mut ActivePack, id: PackId) -> Result<()> {
        if w.buf.is_empty() {
            return Ok(());
        }
        let result = self.backend.append(id, &w.buf);
        w.buf.clear();
        if result.is_err() {
            w.poisoned.insert(id);
            w.id = None;
            self.backend.seal(id);
        }
        result
    }

    /// Seals the active pack (flush + fdatasync) and starts a new one.
    fn rotate(&self, w: &mut ActivePack) -> Result<PackId> {
        if let Some(old) = w.id.take() {
            self.flush(w, old)?;
            if let Err(e) = self.backend.sync(old) {
                w.poisoned.insert(old);
                self.backend.seal(old);
                return Err(e);
            }
            self.backend.seal(old);
        }
        let id = self.alloc_id(tables::NEXT_PACK)?;
        self.backend.create(id)?;
        w.buf.clear();
        w.buf.extend_from_slice(&pack::pack_header());
        w.len = PACK_HEADER_LEN;
        w.id = Some(id);
        Ok(id)
    }

    /// Fails if a write or sync to one of these packs failed (their bytes may be lost).
    pub fn check_unpoisoned(&self, packs: &BTreeSet<PackId>) -> Result<()> {
        poisoned_check(&lock(&self.writer), packs)
    }

    /// Makes every entry appended so far to these packs durable.
    pub fn sync_packs(&self, packs: &BTreeSet<PackId>) -> Result<()> {
        let mut w = lock(&self.writer);
        poisoned_check(&w, packs)?;
        let Some(active) = w.id.filter(|id| packs.contains(id)) else {
            // Sealed packs were synced when they were sealed.
            return Ok(());
        };
        self.flush(&mut w, active)?;
        drop(w);
        let result = self.backend.sync(active);
        if result.is_err() {
            let mut w = lock(&self.writer);
            w.poisoned.insert(active);
            if w.id == Some(active) {
                w.id = None;
                w.buf.clear();
            }
            self.backend.seal(active);
        }
        result
    }

    /// Flushes buffered appends so that readers of pack files (fsck) see everything.
    pub fn flush_active(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        match w.id {
            Some(id) => self.flush(&mut w, id),
            None => Ok(()),
        }
    }

    /// Seals the active pack if no in-flight upload has written to it, so that compaction may
    /// reclaim its dead space; the next append starts a new pack. Returns whether it sealed.
    /// Checked under the writer lock, where uploads pin the packs they append to.
    pub fn seal_active_if_unpinned(&self) -> Result<bool> {
        let mut w = lock(&self.writer);
        let Some(id) = w.id else {
            return Ok(false);
        };
        if lock(&self.pins).packs.contains_key(&id) {
            return Ok(false);
        }
        self.flush(&mut w, id)?;
        w.id = None;
        if let Err(e) = self.backend.sync(id) {
            w.poisoned.insert(id);
            self.backend.seal(id);
            return Err(e);
        }
        self.backend.seal(id);
        Ok(true)
    }

    /// The active pack's id, if any.
    pub fn active_pack(&self) -> Option<PackId> {
        lock(&self.writer).id
    }

    /// Allocates a counter value in its own transaction.
    pub fn alloc_id(&self, key: &str) -> Result<u64> {
        let txn = self.db.begin_write().db("allocating an id")?;
        let id = {
            let mut t = WriteTables::open(&txn)?;
            t.next_id(key)?
        };
        txn.commit().db("allocating an id")?;
        Ok(id)
    }

    /// Reads a user's record (opening only that table: cheaper than [`Inner::read`]).
    pub fn user_rec(&self, user: crate::UserId) -> Result<crate::records::UserRec> {
        const OP: &str = "reading a user";
        let txn = self.db.begin_read().db(OP)?;
        let users = txn.open_table(tables::USERS).db(OP)?;
        tables::need_user(&users, user)
    }

    /// Looks a chunk up in the index.
    pub fn chunk_rec(&self, hash: &ChunkHash) -> Result<Option<ChunkRec>> {
        let txn = self.db.begin_read().db("reading the chunk index")?;
        let chunks = txn
            .open_table(tables::CHUNKS)
            .db("reading the chunk index")?;
        get_rec::<ChunkRec, &[u8; 32]>(&chunks, hash, "reading the chunk index")
    }

    /// Reads an entry's raw bytes (header and stored bytes) at a known location.
    pub fn read_entry(&self, rec: &ChunkRec, hash: &ChunkHash) -> Result<(EntryHeader, Vec<u8>)> {
        let what = || {
            format!(
                "chunk {} in pack {} at {}",
                pack::hex(hash),
                rec.pack,
                rec.offset
            )
        };
        let mut raw = vec![0u8; ENTRY_HEADER_LEN + rec.stored_len as usize];
        self.backend.read_at(rec.pack, rec.offset, &mut raw)?;
        let header = EntryHeader::decode(&raw, what)?;
        if header.hash != *hash
            || header.stored_len != rec.stored_len
            || header.plain_len != rec.plain_len
        {
            return Err(StoreError::Corrupt {
                what: what(),
                detail: "entry header does not match the chunk index".to_owned(),
            });
        }
        Ok((header, raw))
    }

    /// Reads and verifies a chunk's plaintext. The location is looked up afresh, and looked up
    /// once more if the pack vanished in between (GC compacted it).
    pub fn read_chunk(
        &self,
        hash: &ChunkHash,
        decompressor: &mut zstd::bulk::Decompressor<'static>,
    ) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let what = || format!("chunk {}", pack::hex(hash));
            let rec = self.chunk_rec(hash)?.ok_or_else(|| StoreError::Corrupt {
                what: what(),
                detail: "no longer stored (its version was removed while being read?)".to_owned(),
            })?;
            if rec.damaged {
                return Err(StoreError::Corrupt {
                    what: what(),
                    detail: "quarantined by fsck; upload the file again to heal it".to_owned(),
                });
            }
            match self.read_entry(&rec, hash) {
                Ok((header, raw)) => {
                    return pack::decode_chunk(
                        decompressor,
                        &header,
                        &raw[ENTRY_HEADER_LEN..],
                        what,
                    );
                }
                Err(e) if attempt < 3 && self.chunk_rec(hash)?.is_some_and(|r| r != rec) => {
                    tracing::debug!("chunk moved while reading, retrying: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn poisoned_check(w: &ActivePack, packs: &BTreeSet<PackId>) -> Result<()> {
    match packs.iter().find(|p| w.poisoned.contains(p)) {
        Some(bad) => Err(StoreError::Corrupt {
            what: format!("pack {bad}"),
            detail: "an earlier write to it failed; the upload must be retried".to_owned(),
        }),
        None => Ok(()),
    }
}

fn init_tables(db: &Database) -> Result<()> {
    let txn = db.begin_write().db("initialising the database")?;
    {
        let mut t = WriteTables::open(&txn)?;
        let format = get_rec::<IdRec, &str>(&t.meta, tables::META_FORMAT, "reading the format")?;
        match format {
            Some(IdRec(v)) if v > tables::STORE_FORMAT => {
                return Err(StoreError::UnsupportedFormat {
                    what: "metadata database",
                    found: u8::try_from(v).unwrap_or(u8::MAX),
                    supported: tables::STORE_FORMAT as u8,
                });
            }
            Some(_) => {}
            None => {
                t.meta
                    .insert(
                        tables::META_FORMAT,
                        IdRec(tables::STORE_FORMAT).encode()?.as_slice(),
                    )
                    .db("writing the format")?;
                let instance: u64 = rand::random();
                t.meta
                    .insert(tables::META_INSTANCE, IdRec(instance).encode()?.as_slice())
                    .db("writing the instance id")?;
            }
        }
    }
    txn.commit().db("initialising the database")?;
    Ok(())
}

impl Inner {
    /// Runs `f` in one write transaction and commits it; an error aborts everything `f` did.
    pub fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_write().db(op)?;
        let out = {
            let mut t = WriteTables::open(&txn)?;
            f(&mut t)?
        };
        txn.commit().db(op)?;
        Ok(out)
    }

    /// Like [`Inner::write`], but only commits when `commit`; otherwise the transaction is
    /// aborted and `f` serves as a consistent, writer-excluding check.
    pub fn write_or_abort<T>(
        &self,
        op: &'static str,
        commit: bool,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_write().db(op)?;
        let out = {
            let mut t = WriteTables::open(&txn)?;
            f(&mut t)?
        };
        if commit {
            txn.commit().db(op)?;
        } else {
            txn.abort().db(op)?;
        }
        Ok(out)
    }

    /// Runs `f` on a consistent snapshot of the tree tables only (see [`TreeTables`]).
    pub fn read_tree<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&TreeTables) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_read().db(op)?;
        let t = TreeTables::open(&txn)?;
        f(&t)
    }

    /// Runs `f` on a consistent snapshot.
    pub fn read<T>(&self, op: &'static str, f: impl FnOnce(&ReadTables) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().db(op)?;
        let t = ReadTables::open(&txn)?;
        f(&t)
    }
}
