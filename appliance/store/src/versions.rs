//! File versions: records, chunk lists, chunk reference counting, retention.

use std::collections::HashMap;

use redb::ReadableTable;

use crate::inner::Inner;
use crate::namespace::{self, entry, file_etag};
use crate::records::{ChunkHash, ChunkListRec, ChunkRef, FileHead, NodeKind, Record, VersionRec};
use crate::tables::{
    self, Bytes, DbResult, TreeTables, WriteTables, get_rec, need_user, now, time,
};
use crate::{
    Entry, FileReader, NodeId, Result, Retention, StoreError, StorePath, UserId, VersionId,
    VersionInfo,
};

/// The version ids of a file, oldest first.
pub(crate) fn ids(
    versions: &impl ReadableTable<(u64, u64), Bytes>,
    node: NodeId,
) -> Result<Vec<VersionId>> {
    let mut out = Vec::new();
    for item in versions
        .range((node, 0)..=(node, u64::MAX))
        .db("listing versions")?
    {
        let (key, _) = item.db("listing versions")?;
        out.push(key.value().1);
    }
    Ok(out)
}

pub(crate) fn get(
    versions: &impl ReadableTable<(u64, u64), Bytes>,
    node: NodeId,
    version: VersionId,
) -> Result<Option<VersionRec>> {
    get_rec::<VersionRec, (u64, u64)>(versions, (node, version), "reading a version")
}

pub(crate) fn chunk_list(
    lists: &impl ReadableTable<(u64, u64), Bytes>,
    node: NodeId,
    version: VersionId,
) -> Result<Vec<ChunkRef>> {
    Ok(
        get_rec::<ChunkListRec, (u64, u64)>(lists, (node, version), "reading a chunk list")?
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("version {version} of file {node}"),
                detail: "chunk list missing".to_owned(),
            })?
            .0,
    )
}

/// A version's record and chunk list.
pub(crate) fn load(
    t: &WriteTables<'_>,
    node: NodeId,
    version: VersionId,
) -> Result<(VersionRec, Vec<ChunkRef>)> {
    let rec = get(&t.versions, node, version)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("version {version} of file {node}"),
        detail: "missing".to_owned(),
    })?;
    Ok((rec, chunk_list(&t.version_chunks, node, version)?))
}

pub(crate) fn insert(
    t: &mut WriteTables<'_>,
    node: NodeId,
    version: VersionId,
    rec: &VersionRec,
    chunks: &[ChunkRef],
) -> Result<()> {
    let rec = VersionRec {
        chunk_count: chunks.len() as u64,
        ..rec.clone()
    };
    t.versions
        .insert((node, version), rec.encode()?.as_slice())
        .db("writing a version")?;
    t.version_chunks
        .insert(
            (node, version),
            ChunkListRec(chunks.to_vec()).encode()?.as_slice(),
        )
        .db("writing a chunk list")?;
    Ok(())
}

/// Adds `delta` references per occurrence of each chunk. Every chunk must be indexed when
/// adding; a missing chunk when removing is left for fsck to report.
pub(crate) fn add_refs(t: &mut WriteTables<'_>, chunks: &[ChunkRef], delta: i64) -> Result<()> {
    let mut counts: HashMap<ChunkHash, i64> = HashMap::new();
    for c in chunks {
        *counts.entry(c.hash).or_default() += delta;
    }
    for (hash, n) in counts {
        match t.get_chunk(&hash)? {
            Some(mut rec) => {
                rec.refcount = rec.refcount.saturating_add_signed(n);
                t.put_chunk(&hash, &rec)?;
            }
            None if n < 0 => {
                tracing::warn!(
                    "dropping a reference to unindexed chunk {}",
                    crate::pack::hex(&hash)
                );
            }
            None => {
                return Err(StoreError::Corrupt {
                    what: format!("chunk {}", crate::pack::hex(&hash)),
                    detail: "referenced but not in the chunk index".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Removes a version and drops its chunk references.
pub(crate) fn remove(t: &mut WriteTables<'_>, node: NodeId, version: VersionId) -> Result<()> {
    t.versions
        .remove((node, version))
        .db("removing a version")?;
    let list = match t
        .version_chunks
        .remove((node, version))
        .db("removing a chunk list")?
    {
        Some(guard) => ChunkListRec::decode(guard.value())?.0,
        None => return Ok(()),
    };
    add_refs(t, &list, -1)
}

/// Keeps at most `retention.keep_versions` non-current versions of a file, dropping the
/// oldest. Returns how many were dropped.
pub(crate) fn prune_by_count(
    t: &mut WriteTables<'_>,
    node: NodeId,
    current: VersionId,
    retention: &Retention,
) -> Result<u64> {
    let old: Vec<VersionId> = ids(&t.versions, node)?
        .into_iter()
        .filter(|&v| v != current)
        .collect();
    let excess = old.len().saturating_sub(retention.keep_versions as usize);
    for &v in &old[..excess] {
        remove(t, node, v)?;
    }
    Ok(excess as u64)
}

/// Drops non-current versions that were superseded more than `keep_days` ago. Returns how many.
pub(crate) fn expire(t: &mut WriteTables<'_>, now: u64, retention: &Retention) -> Result<u64> {
    let cutoff = now.saturating_sub(u64::from(retention.keep_days) * 86_400 * 1_000_000_000);
    // (node, version, superseded at) of every non-current version.
    let mut doomed = Vec::new();
    let mut prev: Option<(NodeId, VersionId)> = None;
    for item in t.versions.iter().db("scanning versions")? {
        let (key, value) = item.db("scanning versions")?;
        let (node, version) = key.value();
        let rec = VersionRec::decode(value.value())?;
        if let Some((pnode, pversion)) = prev
            && pnode == node
            && rec.created < cutoff
        {
            // The previous version was superseded when this one was created.
            doomed.push((pnode, pversion));
        }
        prev = Some((node, version));
    }
    let mut removed = 0;
    for (node, version) in doomed {
        let current = tables::get_node(&t.nodes, node)?
            .and_then(|n| n.file)
            .map(|f| f.version);
        if current != Some(version) {
            remove(t, node, version)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn info(rec: &VersionRec, version: VersionId, current: bool) -> VersionInfo {
    VersionInfo {
        version,
        size: rec.size,
        mtime: time(rec.mtime),
        created: time(rec.created),
        content_hash: rec.hash,
        etag: file_etag(&rec.hash, rec.mtime, version),
        current,
        checksum: rec.checksum.clone(),
    }
}

pub(crate) fn list(inner: &Inner, user: UserId, path: &StorePath) -> Result<Vec<VersionInfo>> {
    inner.read("listing versions", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, node) = namespace::need(&t.nodes, &t.children, root, path)?;
        let Some(head) = node.file else {
            return Err(StoreError::IsADirectory { path: path.clone() });
        };
        let mut out = Vec::new();
        for v in ids(&t.versions, id)?.into_iter().rev() {
            if let Some(rec) = get(&t.versions, id, v)? {
                out.push(info(&rec, v, v == head.version));
            }
        }
        Ok(out)
    })
}

/// Opens a version of the file at `path` (`None`: the current one) as a reader.
pub(crate) fn open(
    inner: &std::sync::Arc<Inner>,
    user: UserId,
    path: &StorePath,
    version: Option<VersionId>,
) -> Result<FileReader> {
    const OP: &str = "opening a file";
    // The tree tables and the two version tables only: a range request opens its file anew.
    let txn = inner.db.begin_read().db(OP)?;
    let result = (|| {
        let t = TreeTables::open(&txn)?;
        let root = need_user(&t.users, user)?.root;
        let (id, node) = namespace::need(&t.nodes, &t.children, root, path)?;
        let Some(head) = &node.file else {
            return Err(StoreError::IsADirectory { path: path.clone() });
        };
        let version = version.unwrap_or(head.version);
        let versions = txn.open_table(tables::VERSIONS).db(OP)?;
        let rec = get(&versions, id, version)?.ok_or_else(|| StoreError::VersionNotFound {
            path: path.clone(),
            version,
        })?;
        let mut e = entry(id, &node);
        if version != head.version {
            e.size = rec.size;
            e.mtime = time(rec.mtime);
            e.etag = file_etag(&rec.hash, rec.mtime, version);
            e.content_hash = Some(rec.hash);
            e.version = Some(version);
            e.checksum = rec.checksum;
        }
        let version_chunks = txn.open_table(tables::VERSION_CHUNKS).db(OP)?;
        Ok((e, chunk_list(&version_chunks, id, version)?))
    })();
    let (entry, chunks) = result?;
    Ok(FileReader::new(inner.clone(), entry, chunks))
}

/// Makes `version` current again as a new version with the same content.
pub(crate) fn restore(
    inner: &Inner,
    user: UserId,
    path: &StorePath,
    version: VersionId,
) -> Result<Entry> {
    inner.write("restoring a version", |t| {
        let now = now();
        let root = need_user(&t.users, user)?.root;
        let (id, mut node) = namespace::need(&t.nodes, &t.children, root, path)?;
        let Some(head) = node.file.clone() else {
            return Err(StoreError::IsADirectory { path: path.clone() });
        };
        if get(&t.versions, id, version)?.is_none() {
            return Err(StoreError::VersionNotFound {
                path: path.clone(),
                version,
            });
        }
        let (rec, chunks) = load(t, id, version)?;
        let new_version = t.next_id(tables::NEXT_VERSION)?;
        let rec = VersionRec {
            created: now,
            mtime: now,
            ..rec
        };
        insert(t, id, new_version, &rec, &chunks)?;
        add_refs(t, &chunks, 1)?;
        node.mtime = now;
        node.kind = NodeKind::File;
        node.file = Some(FileHead {
            version: new_version,
            size: rec.size,
            hash: rec.hash,
            checksum: rec.checksum.clone(),
        });
        t.put_node(id, &node)?;
        t.touch(id, now)?;
        let mut account = need_user(&t.users, user)?;
        account.used = (account.used + rec.size).saturating_sub(head.size);
        t.put_user(user, &account)?;
        let retention = crate::settings::retention_in(&t.meta, inner)?;
        prune_by_count(t, id, new_version, &retention)?;
        Ok(entry(id, &node))
    })
}
