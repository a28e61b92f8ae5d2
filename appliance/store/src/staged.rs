//! Resumable ("staged") uploads: bytes received so far are durable and survive dropped
//! connections and restarts.
//!
//! A staged upload is a `staged` record — the chunks cut so far, each holding one reference
//! in the chunk index exactly like a version's chunk list, so GC keeps them and fsck counts
//! them — plus the chunker's un-cut tail (under `2 * MAX_CHUNK` bytes) in
//! `<data>/staging/<id>-<offset>.tail`, named by the offset it belongs to. A
//! [`crate::StagedWriter`] goes through the ordinary upload path (`UploadState`: same chunker,
//! dedup, pins, packs). Its `finish`:
//! 1. fsyncs the packs it wrote;
//! 2. writes and fsyncs the new tail file `<id>-<new offset>.tail` (and the folder);
//! 3. commits one transaction: new chunk references, chunk list, offset, tail length;
//! 4. removes the old tail file.
//!
//! A crash before 3 leaves the record at the old offset, whose tail file is still there (the
//! new bytes are dead space, the new tail file an orphan); a crash after 3 leaves the record
//! at the new offset with its tail file durable (the old one is an orphan). Orphans are
//! removed at open. The content hash is kept in memory while the process lives; after a
//! restart the commit re-reads the staged chunks to compute it, one chunk at a time.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use redb::ReadableTable;

use crate::chunker::Chunker;
use crate::inner::{Inner, lock};
use crate::records::{Record, StagedRec};
use crate::tables::{self, DbResult, WriteTables, get_rec, need_user, now, time};
use crate::upload::UploadState;
use crate::versions;
use crate::{
    CommitOptions, CommitOutcome, Result, StagedId, StagedInfo, StoreError, StorePath, UserId,
};

fn staging_dir(inner: &Inner) -> PathBuf {
    inner.dir.join("staging")
}

fn tail_path(inner: &Inner, id: StagedId, offset: u64) -> PathBuf {
    staging_dir(inner).join(format!("{id}-{offset}.tail"))
}

fn info(id: StagedId, rec: &StagedRec) -> StagedInfo {
    StagedInfo {
        id,
        user: rec.user,
        length: rec.length,
        offset: rec.offset,
        created: time(rec.created),
        updated: time(rec.updated),
        label: rec.label.clone(),
    }
}

/// Marks a staged upload as in use; dropping the guard releases it.
#[derive(Debug)]
struct Busy {
    inner: Arc<Inner>,
    id: StagedId,
}

impl Busy {
    fn take(inner: &Arc<Inner>, id: StagedId) -> Result<Busy> {
        if !lock(&inner.staged_busy).insert(id) {
            return Err(StoreError::StagedBusy { id });
        }
        Ok(Busy {
            inner: inner.clone(),
            id,
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.inner.staged_busy).remove(&self.id);
    }
}

fn get(
    table: &impl ReadableTable<u64, tables::Bytes>,
    user: UserId,
    id: StagedId,
) -> Result<StagedRec> {
    match get_rec::<StagedRec, u64>(table, id, "reading a staged upload")? {
        Some(rec) if rec.user == user => Ok(rec),
        _ => Err(StoreError::StagedNotFound { id }),
    }
}

fn put(t: &mut WriteTables<'_>, id: StagedId, rec: &StagedRec) -> Result<()> {
    t.staged
        .insert(id, rec.encode()?.as_slice())
        .db("writing a staged upload")?;
    Ok(())
}

pub(crate) fn create(
    inner: &Inner,
    user: UserId,
    length: Option<u64>,
    label: &str,
) -> Result<StagedInfo> {
    inner.write("starting a resumable upload", |t| {
        let account = need_user(&t.users, user)?;
        account.check_room(length)?;
        let id = t.next_id(tables::NEXT_STAGED)?;
        let now = now();
        let rec = StagedRec {
            user,
            length,
            offset: 0,
            created: now,
            updated: now,
            label: label.to_owned(),
            chunks: Vec::new(),
            tail_len: 0,
        };
        put(t, id, &rec)?;
        Ok(info(id, &rec))
    })
}

pub(crate) fn status(inner: &Inner, user: UserId, id: StagedId) -> Result<StagedInfo> {
    inner.read("reading a staged upload", |t| {
        Ok(info(id, &get(&t.staged, user, id)?))
    })
}

pub(crate) fn list(inner: &Inner, user: UserId) -> Result<Vec<StagedInfo>> {
    inner.read("listing resumable uploads", |t| {
        let mut out = Vec::new();
        for item in t.staged.iter().db("listing resumable uploads")? {
            let (id, value) = item.db("listing resumable uploads")?;
            let rec = StagedRec::decode(value.value())?;
            if rec.user == user {
                out.push(info(id.value(), &rec));
            }
        }
        Ok(out)
    })
}

/// The un-cut tail recorded for `rec`.
fn read_tail(inner: &Inner, id: StagedId, rec: &StagedRec) -> Result<Vec<u8>> {
    if rec.tail_len == 0 {
        return Ok(Vec::new());
    }
    let path = tail_path(inner, id, rec.offset);
    let tail = std::fs::read(&path).map_err(|e| StoreError::io("reading", &path, e))?;
    if tail.len() as u64 != rec.tail_len {
        return Err(StoreError::Corrupt {
            what: format!("resumable upload {id}"),
            detail: format!(
                "tail file holds {} bytes, {} expected",
                tail.len(),
                rec.tail_len
            ),
        });
    }
    Ok(tail)
}

fn chunker_with(id: StagedId, tail: Vec<u8>) -> Result<Chunker> {
    Chunker::resume(tail).ok_or_else(|| StoreError::Corrupt {
        what: format!("resumable upload {id}"),
        detail: "tail longer than the chunker holds".to_owned(),
    })
}

/// Writes and fsyncs a tail file and the folder entry naming it.
fn write_tail(inner: &Inner, id: StagedId, offset: u64, tail: &[u8]) -> Result<()> {
    let dir = staging_dir(inner);
    let path = tail_path(inner, id, offset);
    let mut f = std::fs::File::create(&path).map_err(|e| StoreError::io("creating", &path, e))?;
    f.write_all(tail)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io("writing", &path, e))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("syncing", &dir, e))
}

fn remove_file(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// The state behind [`crate::StagedWriter`].
pub(crate) struct WriterState {
    id: StagedId,
    start: u64,
    length: Option<u64>,
    /// (user name, bytes the user may still add), when the user has a quota.
    room: Option<(String, u64)>,
    upload: UploadState,
    /// The hasher as it was at `start`, put back if the writer is dropped unfinished.
    start_hasher: Option<blake3::Hasher>,
    /// A new label recorded by `finish`, in the same transaction as the new offset.
    label: Option<String>,
    busy: Busy,
}

impl std::fmt::Debug for WriterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedWriter")
            .field("id", &self.id)
            .field("start", &self.start)
            .field("offset", &self.upload.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn append(
    inner: &Arc<Inner>,
    user: UserId,
    id: StagedId,
    offset: u64,
) -> Result<WriterState> {
    let busy = Busy::take(inner, id)?;
    let (rec, account) = inner.read("resuming an upload", |t| {
        Ok((get(&t.staged, user, id)?, need_user(&t.users, user)?))
    })?;
    if offset != rec.offset {
        return Err(StoreError::OffsetMismatch {
            id,
            expected: offset,
            actual: rec.offset,
        });
    }
    let chunker = chunker_with(id, read_tail(inner, id, &rec)?)?;
    let hasher = match lock(&inner.staged_hashers).remove(&id) {
        Some((at, h)) if at == rec.offset => Some(h),
        _ => None,
    };
    let room = account
        .quota
        .map(|q| (account.name.clone(), q.saturating_sub(account.used)));
    let upload = UploadState::resume(inner.clone(), user, rec.offset, chunker, hasher.clone())?;
    Ok(WriterState {
        id,
        start: rec.offset,
        length: rec.length,
        room,
        upload,
        start_hasher: hasher,
        label: None,
        busy,
    })
}

impl WriterState {
    pub fn offset(&self) -> u64 {
        self.upload.len()
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let end = self.upload.len() + data.len() as u64;
        if let Some(length) = self.length
            && end > length
        {
            return Err(StoreError::BeyondLength {
                id: self.id,
                length,
            });
        }
        if let Some((user, room)) = &self.room
            && end > *room
        {
            return Err(StoreError::QuotaExceeded {
                user: user.clone(),
                needed: end,
                available: *room,
            });
        }
        self.upload.write(data)
    }

    pub fn set_label(&mut self, label: String) {
        self.label = Some(label);
    }

    pub fn finish(mut self) -> Result<StagedInfo> {
        let inner = self.busy.inner.clone();
        let (id, start, end) = (self.id, self.start, self.upload.len());
        if end == start {
            if let Some(label) = self.label.take() {
                return inner.write("relabelling a resumable upload", |t| {
                    let mut rec = match get_rec::<StagedRec, u64>(&t.staged, id, "reading")? {
                        Some(rec) if rec.offset == start => rec,
                        _ => return Err(StoreError::StagedNotFound { id }),
                    };
                    rec.label = label;
                    rec.updated = now();
                    put(t, id, &rec)?;
                    Ok(info(id, &rec))
                });
            }
            return status_unchecked(&inner, id);
        }
        // 1. The chunks, 2. the tail they leave, 3. the record that points at both.
        self.upload.sync()?;
        let pending_len = self.upload.pending().len() as u64;
        if pending_len > 0 {
            write_tail(&inner, id, end, self.upload.pending())?;
        }
        let upload = &self.upload;
        let label = self.label.take();
        let result = inner.write("recording a resumable upload's progress", |t| {
            let mut rec = match get_rec::<StagedRec, u64>(&t.staged, id, "reading")? {
                Some(rec) if rec.offset == start => rec,
                _ => return Err(StoreError::StagedNotFound { id }),
            };
            upload.index_chunks(t)?;
            rec.chunks.extend_from_slice(upload.chunks());
            rec.offset = end;
            rec.tail_len = pending_len;
            rec.updated = now();
            if let Some(label) = &label {
                rec.label = label.clone();
            }
            put(t, id, &rec)?;
            Ok(info(id, &rec))
        });
        match result {
            Ok(info) => {
                remove_file(&tail_path(&inner, id, start));
                if let Some(h) = self.upload.take_hasher() {
                    lock(&inner.staged_hashers).insert(id, (end, h));
                }
                self.start_hasher = None;
                Ok(info)
            }
            Err(e) => {
                remove_file(&tail_path(&inner, id, end));
                Err(e)
            }
        }
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        if let Some(h) = self.start_hasher.take() {
            lock(&self.busy.inner.staged_hashers).insert(self.id, (self.start, h));
        }
    }
}

fn status_unchecked(inner: &Inner, id: StagedId) -> Result<StagedInfo> {
    inner.read("reading a staged upload", |t| {
        get_rec::<StagedRec, u64>(&t.staged, id, "reading a staged upload")?
            .map(|rec| info(id, &rec))
            .ok_or(StoreError::StagedNotFound { id })
    })
}

/// BLAKE3 of the staged bytes, re-read from the packs one chunk at a time.
fn rehash(inner: &Inner, rec: &StagedRec, tail: &[u8]) -> Result<[u8; 32]> {
    let mut decompressor = zstd::bulk::Decompressor::new()
        .map_err(|e| StoreError::io("creating a decompressor", inner.dir.clone(), e))?;
    let mut hasher = blake3::Hasher::new();
    for c in &rec.chunks {
        hasher.update(&inner.read_chunk(&c.hash, &mut decompressor)?);
    }
    hasher.update(tail);
    Ok(*hasher.finalize().as_bytes())
}

/// Hands the staged bytes to `visit` in order, one chunk at a time (for a checksum the
/// caller could not keep across a restart).
pub(crate) fn read(
    inner: &Arc<Inner>,
    user: UserId,
    id: StagedId,
    visit: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let _busy = Busy::take(inner, id)?;
    let rec = inner.read("reading a resumable upload", |t| get(&t.staged, user, id))?;
    let tail = read_tail(inner, id, &rec)?;
    let mut decompressor = zstd::bulk::Decompressor::new()
        .map_err(|e| StoreError::io("creating a decompressor", inner.dir.clone(), e))?;
    for c in &rec.chunks {
        visit(&inner.read_chunk(&c.hash, &mut decompressor)?);
    }
    visit(&tail);
    Ok(())
}

pub(crate) fn commit(
    inner: &Arc<Inner>,
    user: UserId,
    id: StagedId,
    path: &StorePath,
    options: &CommitOptions,
) -> Result<CommitOutcome> {
    let _busy = Busy::take(inner, id)?;
    let rec = inner.read("committing a resumable upload", |t| {
        get(&t.staged, user, id)
    })?;
    if let Some(length) = rec.length
        && length != rec.offset
    {
        return Err(StoreError::OffsetMismatch {
            id,
            expected: length,
            actual: rec.offset,
        });
    }
    let tail = read_tail(inner, id, &rec)?;
    let fast = match lock(&inner.staged_hashers).get(&id) {
        Some((at, h)) if *at == rec.offset => Some(*h.finalize().as_bytes()),
        _ => None,
    };
    let content_hash = match fast {
        Some(hash) => hash,
        None => rehash(inner, &rec, &tail)?,
    };
    let mut upload = UploadState::resume(
        inner.clone(),
        user,
        rec.offset,
        chunker_with(id, tail)?,
        None,
    )?;
    upload.set_counted_prefix(rec.chunks.clone());
    upload.finish_chunks()?;
    let total: u64 = upload.chunks().iter().map(|c| u64::from(c.len)).sum();
    if total != rec.offset {
        return Err(StoreError::Corrupt {
            what: format!("resumable upload {id}"),
            detail: format!("chunks hold {total} bytes, offset is {}", rec.offset),
        });
    }
    upload.sync()?;
    let outcome = inner.write("committing a resumable upload", |t| {
        match get_rec::<StagedRec, u64>(&t.staged, id, "reading a staged upload")? {
            Some(current) if current == rec => {}
            _ => return Err(StoreError::StagedNotFound { id }),
        }
        // The staged record's references become the version's.
        let outcome = upload.commit_txn(t, path, options, content_hash)?;
        t.staged.remove(id).db("removing a staged upload")?;
        Ok(outcome)
    })?;
    forget_files(inner, &[id]);
    Ok(outcome)
}

/// Removes a staged record inside a transaction and releases its chunk references.
fn drop_rec(t: &mut WriteTables<'_>, id: StagedId) -> Result<()> {
    let rec = match t.staged.remove(id).db("removing a staged upload")? {
        Some(guard) => StagedRec::decode(guard.value())?,
        None => return Ok(()),
    };
    versions::add_refs(t, &rec.chunks, -1)
}

pub(crate) fn abort(inner: &Arc<Inner>, user: UserId, id: StagedId) -> Result<()> {
    let _busy = Busy::take(inner, id)?;
    inner.write("aborting a resumable upload", |t| {
        get(&t.staged, user, id)?;
        drop_rec(t, id)
    })?;
    forget_files(inner, &[id]);
    Ok(())
}

pub(crate) fn expire(inner: &Arc<Inner>, cutoff: SystemTime) -> Result<u64> {
    let cutoff = tables::nanos(cutoff);
    let idle: Vec<StagedId> = inner.read("scanning resumable uploads", |t| {
        let mut out = Vec::new();
        for item in t.staged.iter().db("scanning resumable uploads")? {
            let (id, value) = item.db("scanning resumable uploads")?;
            if StagedRec::decode(value.value())?.updated < cutoff {
                out.push(id.value());
            }
        }
        Ok(out)
    })?;
    let mut expired = 0;
    for id in idle {
        // One being written to right now is not idle.
        let Ok(_busy) = Busy::take(inner, id) else {
            continue;
        };
        let gone = inner.write("expiring a resumable upload", |t| {
            match get_rec::<StagedRec, u64>(&t.staged, id, "reading a staged upload")? {
                Some(rec) if rec.updated < cutoff => drop_rec(t, id).map(|()| true),
                _ => Ok(false),
            }
        })?;
        if gone {
            forget_files(inner, &[id]);
            expired += 1;
        }
    }
    Ok(expired)
}

/// Drops every staged upload of `user` (inside the user's removal); returns their ids so the
/// caller can remove their files after the commit.
pub(crate) fn remove_for_user(t: &mut WriteTables<'_>, user: UserId) -> Result<Vec<StagedId>> {
    let mut ids = Vec::new();
    for item in t.staged.iter().db("scanning resumable uploads")? {
        let (id, value) = item.db("scanning resumable uploads")?;
        if StagedRec::decode(value.value())?.user == user {
            ids.push(id.value());
        }
    }
    for &id in &ids {
        drop_rec(t, id)?;
    }
    Ok(ids)
}

/// Forgets the in-memory hasher and removes the tail files of staged uploads that are gone.
pub(crate) fn forget_files(inner: &Inner, ids: &[StagedId]) {
    {
        let mut hashers = lock(&inner.staged_hashers);
        for id in ids {
            hashers.remove(id);
        }
    }
    let ids: HashSet<StagedId> = ids.iter().copied().collect();
    sweep(inner, |id, _| !ids.contains(&id));
}

/// Removes tail files for which `keep(id, offset)` is false (and files not named like one).
fn sweep(inner: &Inner, keep: impl Fn(StagedId, u64) -> bool) {
    let dir = staging_dir(inner);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let parsed = name
            .to_str()
            .and_then(|n| n.strip_suffix(".tail"))
            .and_then(|n| n.split_once('-'))
            .and_then(|(id, off)| Some((id.parse().ok()?, off.parse().ok()?)));
        if parsed.is_none_or(|(id, off)| !keep(id, off)) {
            remove_file(&entry.path());
        }
    }
}

/// At open: creates `staging/` and removes tail files no staged record points at (leftovers
/// of a crash between writing a tail and recording it, or before removing the old one).
pub(crate) fn open(inner: &Inner) -> Result<()> {
    let dir = staging_dir(inner);
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
    let live: HashSet<(StagedId, u64)> = inner.read("scanning resumable uploads", |t| {
        let mut out = HashSet::new();
        for item in t.staged.iter().db("scanning resumable uploads")? {
            let (id, value) = item.db("scanning resumable uploads")?;
            let rec = StagedRec::decode(value.value())?;
            if rec.tail_len > 0 {
                out.insert((id.value(), rec.offset));
            }
        }
        Ok(out)
    })?;
    sweep(inner, |id, off| live.contains(&(id, off)));
    Ok(())
}
