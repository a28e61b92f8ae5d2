//! Maintenance: expiry of old versions and trash, garbage collection of unreferenced chunks,
//! pack compaction, and store-wide statistics.
//!
//! GC is safe while serving:
//! - chunk deletion holds the pin lock from its refcount-0 scan through its commit, and an
//!   upload pins a chunk under that lock before trusting the index entry it dedups against;
//! - compaction never touches the active pack nor a pack an in-flight upload appended to
//!   (those are pinned at append time, under the writer lock), copies live entries to the
//!   active pack, fsyncs, commits the new locations, and only then deletes the old pack.
//!   Readers re-resolve a chunk's location when its pack vanishes.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use redb::ReadableTable;

use crate::backend::PackId;
use crate::inner::{Inner, lock};
use crate::pack::{ENTRY_HEADER_LEN, PACK_HEADER_LEN};
use crate::records::{ChunkHash, ChunkRec, PackRec, Record, VersionRec};
use crate::tables::{self, DbResult, nanos};
use crate::{ExpireReport, GcReport, Result, StoreStats, trash, versions};

/// A pack is compacted when more than this fraction (in percent) of it is dead…
const COMPACT_DEAD_PERCENT: u64 = 50;
/// …and the dead part is at least this many bytes.
const COMPACT_MIN_DEAD: u64 = 64 * 1024;

pub(crate) fn expire(inner: &Inner, now: SystemTime) -> Result<ExpireReport> {
    let _maintenance = lock(&inner.maintenance);
    let now = nanos(now);
    inner.write("expiring versions and trash", |t| {
        let retention = crate::settings::retention_in(&t.meta, inner)?;
        let trash_cutoff =
            now.saturating_sub(u64::from(retention.trash_days) * 86_400 * 1_000_000_000);
        let trash_items_purged = trash::expire(t, trash_cutoff)?;
        let versions_removed = versions::expire(t, now, &retention)?;
        Ok(ExpireReport {
            versions_removed,
            trash_items_purged,
        })
    })
}

pub(crate) fn gc(inner: &Inner) -> Result<GcReport> {
    let _maintenance = lock(&inner.maintenance);
    let mut report = GcReport::default();
    delete_unreferenced(inner, &mut report)?;
    compact(inner, &mut report)?;
    Ok(report)
}

/// Removes index entries with no references, except chunks pinned by in-flight uploads.
fn delete_unreferenced(inner: &Inner, report: &mut GcReport) -> Result<()> {
    let pins = lock(&inner.pins);
    inner.write("deleting unreferenced chunks", |t| {
        let mut doomed = Vec::new();
        for item in t.chunks.iter().db("scanning the chunk index")? {
            let (hash, value) = item.db("scanning the chunk index")?;
            let rec = ChunkRec::decode(value.value())?;
            if rec.refcount == 0 && !pins.chunks.contains_key(hash.value()) {
                doomed.push((*hash.value(), rec));
            }
        }
        for (hash, rec) in doomed {
            t.chunks.remove(&hash).db("removing a chunk")?;
            t.quarantine.remove(&hash).db("removing a chunk")?;
            if !rec.damaged {
                let len = ENTRY_HEADER_LEN as i64 + i64::from(rec.stored_len);
                t.pack_live(rec.pack, -len, -1)?;
            }
            report.chunks_removed += 1;
        }
        Ok(())
    })?;
    drop(pins);
    Ok(())
}

/// Deletes packs with nothing live and rewrites packs that are mostly dead.
fn compact(inner: &Inner, report: &mut GcReport) -> Result<()> {
    seal_active_if_wasteful(inner)?;
    // Read the active pack before the pins: a pack sealed before this point had its writers
    // pin it before sealing, so every in-flight writer of an older pack is visible below.
    let active = inner.active_pack();
    let pinned: BTreeSet<PackId> = lock(&inner.pins).packs.keys().copied().collect();
    let on_disk = inner.backend.list()?;
    let recs = pack_records(inner)?;
    let mut candidates = BTreeSet::new();
    for &(id, size) in &on_disk {
        if active.is_some_and(|a| id >= a) || pinned.contains(&id) {
            continue;
        }
        let live = recs.get(&id).map_or(0, |r| r.live_bytes);
        if worth_compacting(size, live) {
            candidates.insert(id);
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    // Every indexed (sound) entry in a candidate pack, by pack, in offset order.
    let mut entries: HashMap<PackId, Vec<(u64, ChunkHash, ChunkRec)>> = HashMap::new();
    inner.read_chunks(|hash, rec| {
        if candidates.contains(&rec.pack) && !rec.damaged {
            entries
                .entry(rec.pack)
                .or_default()
                .push((rec.offset, *hash, rec.clone()));
        }
        Ok(())
    })?;
    for (id, size) in on_disk {
        if !candidates.contains(&id) {
            continue;
        }
        let mut live = entries.remove(&id).unwrap_or_default();
        live.sort_by_key(|e| e.0);
        let moved = if live.is_empty() {
            Some(0)
        } else {
            match rewrite_pack(inner, id, &live) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!("not compacting pack {id}: {e}");
                    None
                }
            }
        };
        let Some(moved) = moved else { continue };
        inner.write("dropping a pack", |t| {
            t.packs.remove(id).db("dropping a pack")?;
            Ok(())
        })?;
        inner.backend.delete(id)?;
        if live.is_empty() {
            report.packs_deleted += 1;
        } else {
            report.packs_compacted += 1;
        }
        report.bytes_reclaimed += size.saturating_sub(moved);
    }
    Ok(())
}

/// Whether a pack of `size` bytes holding `live` bytes of indexed entries should be rewritten.
fn worth_compacting(size: u64, live: u64) -> bool {
    let dead = size.saturating_sub(PACK_HEADER_LEN + live);
    live == 0 || (dead * 100 > size * COMPACT_DEAD_PERCENT && dead >= COMPACT_MIN_DEAD)
}

/// The active pack is never compacted; when it is mostly dead (say a large upload was
/// written and then deleted) and no upload is writing to it, seal it so that it can be.
fn seal_active_if_wasteful(inner: &Inner) -> Result<()> {
    inner.flush_active()?;
    let Some(active) = inner.active_pack() else {
        return Ok(());
    };
    let size = inner
        .backend
        .list()?
        .into_iter()
        .find_map(|(id, size)| (id == active).then_some(size))
        .unwrap_or(0);
    let live = pack_records(inner)?
        .get(&active)
        .map_or(0, |r| r.live_bytes);
    if size > PACK_HEADER_LEN && worth_compacting(size, live) && inner.seal_active_if_unpinned()? {
        tracing::debug!(pack = active, "sealed the active pack for compaction");
    }
    Ok(())
}

/// Copies a pack's live entries to the active pack, makes them durable, and points the index
/// at the copies. Returns the bytes copied.
fn rewrite_pack(inner: &Inner, id: PackId, live: &[(u64, ChunkHash, ChunkRec)]) -> Result<u64> {
    let mut targets = BTreeSet::new();
    let mut moved = Vec::with_capacity(live.len());
    let mut bytes = 0;
    let result = (|| {
        for (offset, hash, rec) in live {
            let (header, raw) = inner.read_entry(rec, hash)?;
            let (pack, new_offset) =
                inner.append_entry(&header, &raw[ENTRY_HEADER_LEN..], &mut targets)?;
            bytes += header.entry_len();
            moved.push((*hash, *offset, pack, new_offset, header.entry_len()));
        }
        inner.sync_packs(&targets)?;
        inner.write("moving chunks", |t| {
            for &(hash, old_offset, pack, new_offset, len) in &moved {
                let Some(mut rec) = t.get_chunk(&hash)? else {
                    continue;
                };
                if rec.pack != id || rec.offset != old_offset || rec.damaged {
                    continue;
                }
                rec.pack = pack;
                rec.offset = new_offset;
                t.put_chunk(&hash, &rec)?;
                t.pack_live(pack, len as i64, 1)?;
            }
            Ok(())
        })
    })();
    let mut pins = lock(&inner.pins);
    for &pack in &targets {
        pins.unpin_pack(pack);
    }
    result.map(|()| bytes)
}

fn pack_records(inner: &Inner) -> Result<HashMap<PackId, PackRec>> {
    let txn = inner.db.begin_read().db("reading pack records")?;
    let table = txn.open_table(tables::PACKS).db("reading pack records")?;
    let mut out = HashMap::new();
    for item in table.iter().db("reading pack records")? {
        let (id, value) = item.db("reading pack records")?;
        out.insert(id.value(), PackRec::decode(value.value())?);
    }
    Ok(out)
}

impl Inner {
    /// Calls `f` for every entry of the chunk index, in one snapshot.
    pub fn read_chunks(
        &self,
        mut f: impl FnMut(&ChunkHash, &ChunkRec) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read().db("scanning the chunk index")?;
        let table = txn
            .open_table(tables::CHUNKS)
            .db("scanning the chunk index")?;
        for item in table.iter().db("scanning the chunk index")? {
            let (hash, value) = item.db("scanning the chunk index")?;
            f(hash.value(), &ChunkRec::decode(value.value())?)?;
        }
        Ok(())
    }
}

pub(crate) fn stats(inner: &Inner) -> Result<StoreStats> {
    inner.flush_active()?;
    let mut stats = StoreStats::default();
    inner.read_chunks(|_, rec| {
        stats.chunks += 1;
        stats.unique_bytes += u64::from(rec.plain_len);
        stats.stored_bytes += u64::from(rec.stored_len);
        Ok(())
    })?;
    inner.read("computing statistics", |t| {
        for item in t.versions.iter().db("scanning versions")? {
            let (_, value) = item.db("scanning versions")?;
            stats.logical_bytes += VersionRec::decode(value.value())?.size;
        }
        Ok(())
    })?;
    for (_, len) in inner.backend.list()? {
        stats.packs += 1;
        stats.pack_bytes += len;
    }
    Ok(stats)
}
