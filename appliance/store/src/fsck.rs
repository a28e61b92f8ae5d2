//! Consistency check and repair.
//!
//! Phase 1 reads every indexed chunk from its pack, decompresses it and checks its hash
//! (outside any write transaction, so serving continues). Phase 2 runs inside one write
//! transaction so that what it recomputes cannot race a commit: it checks every version's
//! chunks, recomputes reference counts, pack live bytes and users' usage, checks the tree, and
//! — with `repair` — applies the fixes. Without `repair` the transaction is dropped unchanged.
//!
//! Repair never touches sound data: a damaged chunk stays in the index flagged `damaged`
//! (so reference counts stay exact and a later upload of the same content heals it) and gets a
//! `quarantine` record naming its location, the failure and the versions that use it. Those
//! versions stay where they are (a sync client keeps its good copy instead of deleting it);
//! reading the damaged part fails with [`crate::StoreError::Corrupt`].

use std::collections::{BTreeMap, HashMap, HashSet};

use redb::ReadableTable;

use crate::inner::{Inner, lock};
use crate::pack::{self, ENTRY_HEADER_LEN, PACK_HEADER_LEN, hex};
use crate::records::{
    ChunkHash, ChunkListRec, ChunkRec, IdRec, NodeKind, NodeRec, PackRec, QuarantineRec, Record,
    StagedRec, TrashRec, UserRec, VersionRec,
};
use crate::tables::{DbResult, WriteTables, get_node, now};
use crate::{FsckProblem, FsckReport, NodeId, Result, StoreError, VersionId};

pub(crate) fn fsck(inner: &Inner, repair: bool) -> Result<FsckReport> {
    let _maintenance = lock(&inner.maintenance);
    inner.flush_active()?;
    let mut report = FsckReport::default();
    let damaged = verify_chunks(inner, &mut report)?;
    let live = inner.write_or_abort("checking metadata", repair, |t| {
        check_metadata(t, &damaged, repair, &mut report)
    })?;
    let on_disk: u64 = inner
        .backend
        .list()?
        .iter()
        .map(|(_, size)| size.saturating_sub(PACK_HEADER_LEN))
        .sum();
    report.reclaimable_bytes = on_disk.saturating_sub(live);
    Ok(report)
}

/// A chunk whose stored bytes failed verification, at the location that failed.
struct Damage {
    rec: ChunkRec,
    detail: String,
}

/// Phase 1: every sound-looking chunk, read and verified in pack order.
fn verify_chunks(inner: &Inner, report: &mut FsckReport) -> Result<BTreeMap<ChunkHash, Damage>> {
    let mut index = Vec::new();
    inner.read_chunks(|hash, rec| {
        if !rec.damaged {
            index.push((*hash, rec.clone()));
        }
        Ok(())
    })?;
    index.sort_by_key(|(_, r)| (r.pack, r.offset));
    let mut decompressor = zstd::bulk::Decompressor::new()
        .map_err(|e| StoreError::io("creating a decompressor", inner.dir.clone(), e))?;
    let mut damaged = BTreeMap::new();
    for (hash, rec) in index {
        report.chunks_checked += 1;
        report.bytes_checked += u64::from(rec.plain_len);
        let verified = inner.read_entry(&rec, &hash).and_then(|(header, raw)| {
            pack::decode_chunk(
                &mut decompressor,
                &header,
                &raw[ENTRY_HEADER_LEN..],
                String::new,
            )
        });
        if let Err(e) = verified {
            // Readers of this process must not go on trusting it.
            inner.verified.forget(&(rec.pack, rec.offset, hash));
            let detail = match e {
                StoreError::Corrupt { detail, .. } => detail,
                other => other.to_string(),
            };
            damaged.insert(hash, Damage { rec, detail });
        }
    }
    Ok(damaged)
}

fn problem(report: &mut FsckReport, object: String, detail: String, repaired: bool) {
    report.problems.push(FsckProblem {
        object,
        detail,
        repaired,
    });
}

/// Phase 2, inside one write transaction.
fn check_metadata(
    t: &mut WriteTables<'_>,
    damaged: &BTreeMap<ChunkHash, Damage>,
    repair: bool,
    report: &mut FsckReport,
) -> Result<u64> {
    // Chunk index as it is now.
    let mut index: HashMap<ChunkHash, ChunkRec> = HashMap::new();
    for item in t.chunks.iter().db("scanning the chunk index")? {
        let (hash, value) = item.db("scanning the chunk index")?;
        index.insert(*hash.value(), ChunkRec::decode(value.value())?);
    }
    // A failure only counts if the index still points where it failed (an upload may have
    // healed or GC moved the chunk meanwhile).
    let damaged: BTreeMap<ChunkHash, &Damage> = damaged
        .iter()
        .filter(|(h, d)| {
            index
                .get(*h)
                .is_some_and(|r| !r.damaged && r.pack == d.rec.pack && r.offset == d.rec.offset)
        })
        .map(|(h, d)| (*h, d))
        .collect();

    // Versions: chunk presence, sizes, recomputed references.
    let mut refs: HashMap<ChunkHash, u64> = HashMap::new();
    let mut users_of: HashMap<ChunkHash, Vec<(NodeId, VersionId)>> = HashMap::new();
    let mut missing: HashMap<ChunkHash, u32> = HashMap::new();
    let mut version_keys = HashSet::new();
    for item in t.version_chunks.iter().db("scanning chunk lists")? {
        let (key, value) = item.db("scanning chunk lists")?;
        let (node, version) = key.value();
        version_keys.insert((node, version));
        report.versions_checked += 1;
        let list = ChunkListRec::decode(value.value())?.0;
        let mut bad = None;
        for c in &list {
            *refs.entry(c.hash).or_default() += 1;
            let known = index.get(&c.hash);
            if known.is_none() {
                missing.insert(c.hash, c.len);
            }
            if known.is_none() || known.is_some_and(|r| r.damaged) || damaged.contains_key(&c.hash)
            {
                users_of.entry(c.hash).or_default().push((node, version));
                bad.get_or_insert(c.hash);
            }
        }
        let size: u64 = list.iter().map(|c| u64::from(c.len)).sum();
        match t.versions.get((node, version)).db("reading a version")? {
            Some(v) if VersionRec::decode(v.value())?.size != size => problem(
                report,
                format!("version {version} of file {node}"),
                "size differs from the sum of its chunks".into(),
                false,
            ),
            Some(_) => {}
            None => problem(
                report,
                format!("version {version} of file {node}"),
                "chunk list without a version record".into(),
                false,
            ),
        }
        if let Some(hash) = bad {
            problem(
                report,
                format!("version {version} of file {node}"),
                format!(
                    "chunk {} is damaged or missing; the file must be uploaded again",
                    hex(&hash)
                ),
                repair,
            );
        }
    }
    // Resumable uploads hold references to the chunks they have cut so far.
    for item in t.staged.iter().db("scanning resumable uploads")? {
        let (id, value) = item.db("scanning resumable uploads")?;
        let rec = StagedRec::decode(value.value())?;
        let mut bad = None;
        for c in &rec.chunks {
            *refs.entry(c.hash).or_default() += 1;
            let known = index.get(&c.hash);
            if known.is_none() {
                missing.insert(c.hash, c.len);
            }
            if known.is_none() || known.is_some_and(|r| r.damaged) || damaged.contains_key(&c.hash)
            {
                bad.get_or_insert(c.hash);
            }
        }
        if let Some(hash) = bad {
            problem(
                report,
                format!("resumable upload {}", id.value()),
                format!(
                    "chunk {} is damaged or missing; the upload must be restarted",
                    hex(&hash)
                ),
                repair,
            );
        }
    }
    for item in t.versions.iter().db("scanning versions")? {
        let (key, _) = item.db("scanning versions")?;
        if !version_keys.contains(&key.value()) {
            let (node, version) = key.value();
            problem(
                report,
                format!("version {version} of file {node}"),
                "no chunk list".into(),
                false,
            );
        }
    }

    let when = now();
    // Damaged chunks: flag and quarantine.
    for (hash, d) in &damaged {
        problem(
            report,
            format!(
                "chunk {} in pack {} at {}",
                hex(hash),
                d.rec.pack,
                d.rec.offset
            ),
            d.detail.clone(),
            repair,
        );
        if repair {
            let mut rec = d.rec.clone();
            rec.damaged = true;
            t.put_chunk(hash, &rec)?;
            index.insert(*hash, rec);
            quarantine(
                t,
                hash,
                d.rec.pack,
                d.rec.offset,
                &d.detail,
                when,
                users_of.get(hash),
            )?;
        }
    }
    // Referenced chunks the index does not know at all.
    for (hash, len) in &missing {
        problem(
            report,
            format!("chunk {}", hex(hash)),
            "referenced but not in the chunk index".into(),
            repair,
        );
        if repair {
            let rec = ChunkRec {
                pack: 0,
                offset: 0,
                stored_len: 0,
                plain_len: *len,
                compression: 0,
                refcount: 0,
                damaged: true,
            };
            t.put_chunk(hash, &rec)?;
            index.insert(*hash, rec);
            quarantine(
                t,
                hash,
                0,
                0,
                "missing from the chunk index",
                when,
                users_of.get(hash),
            )?;
        }
    }
    // Reference counts.
    for (hash, rec) in index.iter_mut() {
        let expected = refs.get(hash).copied().unwrap_or(0);
        if rec.refcount != expected {
            problem(
                report,
                format!("chunk {}", hex(hash)),
                format!(
                    "reference count {} but {} references",
                    rec.refcount, expected
                ),
                repair,
            );
            if repair {
                rec.refcount = expected;
                t.put_chunk(hash, rec)?;
            }
        }
    }
    let live = check_packs(t, &index, repair, report)?;
    check_tree(t, repair, report)?;
    Ok(live)
}

#[allow(clippy::too_many_arguments)]
fn quarantine(
    t: &mut WriteTables<'_>,
    hash: &ChunkHash,
    pack: u64,
    offset: u64,
    detail: &str,
    when: u64,
    versions: Option<&Vec<(NodeId, VersionId)>>,
) -> Result<()> {
    let rec = QuarantineRec {
        pack,
        offset,
        detail: detail.to_owned(),
        when,
        versions: versions.cloned().unwrap_or_default(),
    };
    t.quarantine
        .insert(hash, rec.encode()?.as_slice())
        .db("writing a quarantine record")?;
    Ok(())
}

/// Pack live bytes recomputed from the index. Returns the live bytes of all packs.
fn check_packs(
    t: &mut WriteTables<'_>,
    index: &HashMap<ChunkHash, ChunkRec>,
    repair: bool,
    report: &mut FsckReport,
) -> Result<u64> {
    let mut live: BTreeMap<u64, PackRec> = BTreeMap::new();
    for rec in index.values().filter(|r| !r.damaged) {
        let p = live.entry(rec.pack).or_default();
        p.live_bytes += ENTRY_HEADER_LEN as u64 + u64::from(rec.stored_len);
        p.live_entries += 1;
    }
    let total = live.values().map(|p| p.live_bytes).sum();
    let mut stored: BTreeMap<u64, PackRec> = BTreeMap::new();
    for item in t.packs.iter().db("scanning packs")? {
        let (id, value) = item.db("scanning packs")?;
        stored.insert(id.value(), PackRec::decode(value.value())?);
    }
    let ids: HashSet<u64> = live.keys().chain(stored.keys()).copied().collect();
    for id in ids {
        let want = live.get(&id).cloned().unwrap_or_default();
        let have = stored.get(&id).cloned().unwrap_or_default();
        if want != have {
            problem(
                report,
                format!("pack {id}"),
                format!(
                    "records {} live bytes, the index says {}",
                    have.live_bytes, want.live_bytes
                ),
                repair,
            );
            if repair {
                if want == PackRec::default() {
                    t.packs.remove(id).db("fixing a pack record")?;
                } else {
                    t.packs
                        .insert(id, want.encode()?.as_slice())
                        .db("fixing a pack record")?;
                }
            }
        }
    }
    Ok(total)
}

/// Nodes ↔ folder entries, parents, users' roots, trash items, users' usage.
fn check_tree(t: &mut WriteTables<'_>, repair: bool, report: &mut FsckReport) -> Result<()> {
    let mut users: HashMap<u64, UserRec> = HashMap::new();
    for item in t.users.iter().db("scanning users")? {
        let (id, value) = item.db("scanning users")?;
        users.insert(id.value(), UserRec::decode(value.value())?);
    }
    let roots: HashSet<NodeId> = users.values().map(|u| u.root).collect();
    let mut trashed: HashMap<NodeId, (u64, u64)> = HashMap::new();
    for item in t.trash.iter().db("scanning the trash")? {
        let (key, value) = item.db("scanning the trash")?;
        trashed.insert(TrashRec::decode(value.value())?.node, key.value());
    }
    let mut used: HashMap<u64, u64> = HashMap::new();
    let mut nodes: Vec<(NodeId, NodeRec)> = Vec::new();
    for item in t.nodes.iter().db("scanning nodes")? {
        let (id, value) = item.db("scanning nodes")?;
        nodes.push((id.value(), NodeRec::decode(value.value())?));
    }
    for (id, node) in &nodes {
        report.nodes_checked += 1;
        let object = || format!("node {id} ({:?})", node.name);
        if let Some(head) = &node.file {
            *used.entry(node.owner).or_default() += head.size;
            if t.versions
                .get((*id, head.version))
                .db("reading a version")?
                .is_none()
            {
                problem(
                    report,
                    object(),
                    format!("current version {} missing", head.version),
                    false,
                );
            }
        }
        if node.parent == 0 {
            let in_trash = node
                .trash
                .is_some_and(|tid| trashed.get(id) == Some(&(node.owner, tid)));
            if !roots.contains(id) && !in_trash {
                problem(
                    report,
                    object(),
                    "detached: neither a root nor in the trash".into(),
                    false,
                );
            }
            continue;
        }
        match get_node(&t.nodes, node.parent)? {
            Some(p) if p.kind == NodeKind::Dir => {}
            Some(_) => problem(report, object(), "parent is a file".into(), false),
            None => problem(report, object(), "parent missing".into(), false),
        }
        let entry = t
            .children
            .get((node.parent, node.name.as_str()))
            .db("reading a folder entry")?;
        let points_here = match entry {
            Some(v) => IdRec::decode(v.value())?.0 == *id,
            None => false,
        };
        if !points_here {
            problem(
                report,
                object(),
                "its folder has no entry for it".into(),
                false,
            );
        }
    }
    let mut dangling = Vec::new();
    for item in t.children.iter().db("scanning folder entries")? {
        let (key, value) = item.db("scanning folder entries")?;
        let (parent, name) = key.value();
        let child = IdRec::decode(value.value())?.0;
        let ok = match get_node(&t.nodes, child)? {
            Some(n) => n.parent == parent && n.name == name,
            None => false,
        };
        if !ok {
            dangling.push((parent, name.to_owned()));
        }
    }
    for (parent, name) in dangling {
        problem(
            report,
            format!("entry {name:?} of folder {parent}"),
            "points at a missing or moved node".into(),
            repair,
        );
        if repair {
            t.children
                .remove((parent, name.as_str()))
                .db("removing a folder entry")?;
        }
    }
    for (uid, mut user) in users {
        match get_node(&t.nodes, user.root)? {
            Some(r) if r.kind == NodeKind::Dir && r.owner == uid => {}
            _ => problem(
                report,
                format!("user {}", user.name),
                "root folder missing".into(),
                false,
            ),
        }
        let want = used.get(&uid).copied().unwrap_or(0);
        if user.used != want {
            problem(
                report,
                format!("user {}", user.name),
                format!("usage recorded as {} bytes, files take {}", user.used, want),
                repair,
            );
            if repair {
                user.used = want;
                t.put_user(uid, &user)?;
            }
        }
    }
    Ok(())
}
