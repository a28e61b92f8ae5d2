//! The redb tables of `meta.redb`, typed accessors, and the error mapping from redb.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::records::{ChunkHash, ChunkRec, IdRec, NodeKind, NodeRec, PackRec, Record, UserRec};
use crate::{NodeId, Result, StoreError, UserId};

pub(crate) type Bytes = &'static [u8];

/// Counters, the store format version and the instance id.
pub(crate) const META: TableDefinition<&str, Bytes> = TableDefinition::new("meta");
/// Node id → [`NodeRec`].
pub(crate) const NODES: TableDefinition<u64, Bytes> = TableDefinition::new("nodes");
/// (parent node, name) → [`IdRec`] child.
pub(crate) const CHILDREN: TableDefinition<(u64, &str), Bytes> = TableDefinition::new("children");
/// (file node, version) → [`crate::records::VersionRec`].
pub(crate) const VERSIONS: TableDefinition<(u64, u64), Bytes> = TableDefinition::new("versions");
/// (file node, version) → [`crate::records::ChunkListRec`].
pub(crate) const VERSION_CHUNKS: TableDefinition<(u64, u64), Bytes> =
    TableDefinition::new("version_chunks");
/// Chunk hash → [`ChunkRec`].
pub(crate) const CHUNKS: TableDefinition<&[u8; 32], Bytes> = TableDefinition::new("chunks");
/// Pack id → [`PackRec`].
pub(crate) const PACKS: TableDefinition<u64, Bytes> = TableDefinition::new("packs");
/// User id → [`UserRec`].
pub(crate) const USERS: TableDefinition<u64, Bytes> = TableDefinition::new("users");
/// User name → [`IdRec`] user id.
pub(crate) const USER_NAMES: TableDefinition<&str, Bytes> = TableDefinition::new("user_names");
/// (user, trash id) → [`crate::records::TrashRec`].
pub(crate) const TRASH: TableDefinition<(u64, u64), Bytes> = TableDefinition::new("trash");
/// (node, namespace, name) → [`crate::records::PropRec`].
pub(crate) const PROPS: TableDefinition<(u64, &str, &str), Bytes> = TableDefinition::new("props");
/// Chunk hash → [`crate::records::QuarantineRec`].
pub(crate) const QUARANTINE: TableDefinition<&[u8; 32], Bytes> = TableDefinition::new("quarantine");
/// Share id → [`crate::records::ShareRec`].
pub(crate) const SHARES: TableDefinition<u64, Bytes> = TableDefinition::new("shares");
/// Token hash → [`IdRec`] share id.
pub(crate) const SHARE_TOKENS: TableDefinition<&[u8; 32], Bytes> =
    TableDefinition::new("share_tokens");
/// Staged (resumable) upload id → [`crate::records::StagedRec`].
pub(crate) const STAGED: TableDefinition<u64, Bytes> = TableDefinition::new("staged");

/// Meta keys.
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_INSTANCE: &str = "instance_id";
pub(crate) const NEXT_NODE: &str = "next_node";
pub(crate) const NEXT_USER: &str = "next_user";
pub(crate) const NEXT_VERSION: &str = "next_version";
pub(crate) const NEXT_TRASH: &str = "next_trash";
pub(crate) const NEXT_PACK: &str = "next_pack";
pub(crate) const CHANGE_SEQ: &str = "change_seq";
pub(crate) const NEXT_SHARE: &str = "next_share";
pub(crate) const NEXT_STAGED: &str = "next_staged";
/// Retention settings ([`crate::records::RetentionRec`]), once set by the admin.
pub(crate) const META_RETENTION: &str = "retention";

/// The layout version of the whole database (tables and their key types).
pub(crate) const STORE_FORMAT: u64 = 1;

/// Maps any redb error to [`StoreError`], naming the step.
pub(crate) trait DbResult<T> {
    fn db(self, op: &'static str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for std::result::Result<T, E> {
    fn db(self, op: &'static str) -> Result<T> {
        self.map_err(|e| match e.into() {
            redb::Error::Io(source) => StoreError::io(op, "meta.redb", source),
            redb::Error::DatabaseAlreadyOpen => StoreError::Database {
                op,
                detail: "database already open".to_owned(),
            },
            other => StoreError::Database {
                op,
                detail: other.to_string(),
            },
        })
    }
}

/// Nanoseconds since the Unix epoch (0 for earlier times).
pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

pub(crate) fn now() -> u64 {
    nanos(SystemTime::now())
}

pub(crate) fn get_rec<R: Record, K: redb::Key + 'static>(
    table: &impl ReadableTable<K, Bytes>,
    key: K::SelfType<'_>,
    op: &'static str,
) -> Result<Option<R>> {
    match table.get(key).db(op)? {
        Some(guard) => Ok(Some(R::decode(guard.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn get_node(
    nodes: &impl ReadableTable<u64, Bytes>,
    id: NodeId,
) -> Result<Option<NodeRec>> {
    get_rec::<NodeRec, u64>(nodes, id, "reading a node")
}

pub(crate) fn need_node(nodes: &impl ReadableTable<u64, Bytes>, id: NodeId) -> Result<NodeRec> {
    get_node(nodes, id)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("node {id}"),
        detail: "referenced but missing".to_owned(),
    })
}

/// The records of the nodes `ids`, in that order. When the ids are dense (the files of a
/// folder are mostly created together, and ids are allocated in order), one range scan over
/// `nodes` replaces a B-tree descent per id: the better part of a PROPFIND's store time.
pub(crate) fn nodes_of(
    nodes: &impl ReadableTable<u64, Bytes>,
    ids: &[NodeId],
) -> Result<Vec<NodeRec>> {
    const OP: &str = "reading nodes";
    let (Some(&min), Some(&max)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(Vec::new());
    };
    let span = max - min + 1;
    if span > 2 * ids.len() as u64 + 64 {
        return ids.iter().map(|&id| need_node(nodes, id)).collect();
    }
    let mut wanted: Vec<(NodeId, usize)> = ids.iter().copied().zip(0..).collect();
    wanted.sort_unstable();
    let mut found: Vec<Option<NodeRec>> = ids.iter().map(|_| None).collect();
    let mut next = wanted.iter().peekable();
    for item in nodes.range(min..=max).db(OP)? {
        let Some(&&(id, at)) = next.peek() else {
            break;
        };
        let (key, value) = item.db(OP)?;
        if key.value() == id {
            found[at] = Some(NodeRec::decode(value.value())?);
            next.next();
        } else if key.value() > id {
            break; // `id` is missing; reported below
        }
    }
    ids.iter()
        .zip(found)
        .map(|(&id, node)| {
            node.ok_or_else(|| StoreError::Corrupt {
                what: format!("node {id}"),
                detail: "referenced but missing".to_owned(),
            })
        })
        .collect()
}

pub(crate) fn get_child(
    children: &impl ReadableTable<(u64, &'static str), Bytes>,
    parent: NodeId,
    name: &str,
) -> Result<Option<NodeId>> {
    Ok(
        get_rec::<IdRec, (u64, &str)>(children, (parent, name), "reading a folder entry")?
            .map(|r| r.0),
    )
}

pub(crate) fn get_user(
    users: &impl ReadableTable<u64, Bytes>,
    id: UserId,
) -> Result<Option<UserRec>> {
    get_rec::<UserRec, u64>(users, id, "reading a user")
}

pub(crate) fn need_user(users: &impl ReadableTable<u64, Bytes>, id: UserId) -> Result<UserRec> {
    get_user(users, id)?.ok_or_else(|| StoreError::UnknownUser {
        name: format!("#{id}"),
    })
}

/// Every table, opened for writing in one transaction.
pub(crate) struct WriteTables<'t> {
    pub meta: Table<'t, &'static str, Bytes>,
    pub nodes: Table<'t, u64, Bytes>,
    pub children: Table<'t, (u64, &'static str), Bytes>,
    pub versions: Table<'t, (u64, u64), Bytes>,
    pub version_chunks: Table<'t, (u64, u64), Bytes>,
    pub chunks: Table<'t, &'static [u8; 32], Bytes>,
    pub packs: Table<'t, u64, Bytes>,
    pub users: Table<'t, u64, Bytes>,
    pub user_names: Table<'t, &'static str, Bytes>,
    pub trash: Table<'t, (u64, u64), Bytes>,
    pub props: Table<'t, (u64, &'static str, &'static str), Bytes>,
    pub quarantine: Table<'t, &'static [u8; 32], Bytes>,
    pub shares: Table<'t, u64, Bytes>,
    pub share_tokens: Table<'t, &'static [u8; 32], Bytes>,
    pub staged: Table<'t, u64, Bytes>,
    /// The change sequence allocated for this transaction, once needed.
    seq: Option<u64>,
}

impl<'t> WriteTables<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self> {
        const OP: &str = "opening tables";
        Ok(WriteTables {
            meta: txn.open_table(META).db(OP)?,
            nodes: txn.open_table(NODES).db(OP)?,
            children: txn.open_table(CHILDREN).db(OP)?,
            versions: txn.open_table(VERSIONS).db(OP)?,
            version_chunks: txn.open_table(VERSION_CHUNKS).db(OP)?,
            chunks: txn.open_table(CHUNKS).db(OP)?,
            packs: txn.open_table(PACKS).db(OP)?,
            users: txn.open_table(USERS).db(OP)?,
            user_names: txn.open_table(USER_NAMES).db(OP)?,
            trash: txn.open_table(TRASH).db(OP)?,
            props: txn.open_table(PROPS).db(OP)?,
            quarantine: txn.open_table(QUARANTINE).db(OP)?,
            shares: txn.open_table(SHARES).db(OP)?,
            share_tokens: txn.open_table(SHARE_TOKENS).db(OP)?,
            staged: txn.open_table(STAGED).db(OP)?,
            seq: None,
        })
    }

    /// Allocates the next value of a meta counter (counters start at 1).
    pub fn next_id(&mut self, key: &str) -> Result<u64> {
        let current = get_rec::<IdRec, &str>(&self.meta, key, "reading a counter")?
            .map(|r| r.0)
            .unwrap_or(1);
        self.meta
            .insert(key, IdRec(current + 1).encode()?.as_slice())
            .db("writing a counter")?;
        Ok(current)
    }

    /// The change sequence of this transaction (one per transaction).
    pub fn seq(&mut self) -> Result<u64> {
        if let Some(seq) = self.seq {
            return Ok(seq);
        }
        let seq = self.next_id(CHANGE_SEQ)?;
        self.seq = Some(seq);
        Ok(seq)
    }

    pub fn put_node(&mut self, id: NodeId, node: &NodeRec) -> Result<()> {
        self.nodes
            .insert(id, node.encode()?.as_slice())
            .db("writing a node")?;
        Ok(())
    }

    pub fn put_child(&mut self, parent: NodeId, name: &str, child: NodeId) -> Result<()> {
        self.children
            .insert((parent, name), IdRec(child).encode()?.as_slice())
            .db("writing a folder entry")?;
        Ok(())
    }

    pub fn put_user(&mut self, id: UserId, user: &UserRec) -> Result<()> {
        self.users
            .insert(id, user.encode()?.as_slice())
            .db("writing a user")?;
        Ok(())
    }

    pub fn get_chunk(&self, hash: &ChunkHash) -> Result<Option<ChunkRec>> {
        get_rec::<ChunkRec, &[u8; 32]>(&self.chunks, hash, "reading the chunk index")
    }

    pub fn put_chunk(&mut self, hash: &ChunkHash, rec: &ChunkRec) -> Result<()> {
        self.chunks
            .insert(hash, rec.encode()?.as_slice())
            .db("writing the chunk index")?;
        Ok(())
    }

    /// Adds (or subtracts) live bytes and entries to a pack's record.
    pub fn pack_live(&mut self, pack: u64, bytes: i64, entries: i64) -> Result<()> {
        let mut rec = get_rec::<PackRec, u64>(&self.packs, pack, "reading a pack record")?
            .unwrap_or_default();
        rec.live_bytes = rec.live_bytes.saturating_add_signed(bytes);
        rec.live_entries = rec.live_entries.saturating_add_signed(entries);
        self.packs
            .insert(pack, rec.encode()?.as_slice())
            .db("writing a pack record")?;
        Ok(())
    }

    /// Sets a node's change sequence, and every ancestor's up to the root, to this
    /// transaction's sequence; folders also take `now` as their mtime. Stops at a node this
    /// transaction already touched (its ancestors were touched with it): a group commit of
    /// many files in one folder rewrites the folder chain once, and those folders keep the
    /// time of the transaction's first change.
    pub fn touch(&mut self, mut id: NodeId, now: u64) -> Result<()> {
        let seq = self.seq()?;
        while id != 0 {
            let Some(mut node) = get_node(&self.nodes, id)? else {
                break;
            };
            if node.seq == seq {
                break;
            }
            node.seq = seq;
            if node.kind == NodeKind::Dir {
                node.mtime = now;
            }
            self.put_node(id, &node)?;
            id = node.parent;
        }
        Ok(())
    }
}

/// The tables a path lookup reads: the hot path of every WebDAV request (PUT's checks, GET,
/// PROPFIND). Opening a redb table is a lookup in its table of tables: opening 3 instead of
/// [`ReadTables`]' 10 saves ~40k instructions per request.
pub(crate) struct TreeTables {
    pub nodes: redb::ReadOnlyTable<u64, Bytes>,
    pub children: redb::ReadOnlyTable<(u64, &'static str), Bytes>,
    pub users: redb::ReadOnlyTable<u64, Bytes>,
}

impl TreeTables {
    pub fn open(txn: &redb::ReadTransaction) -> Result<Self> {
        const OP: &str = "opening tables";
        Ok(TreeTables {
            nodes: txn.open_table(NODES).db(OP)?,
            children: txn.open_table(CHILDREN).db(OP)?,
            users: txn.open_table(USERS).db(OP)?,
        })
    }
}

/// The tables read by most operations, opened in one read transaction.
pub(crate) struct ReadTables {
    pub meta: redb::ReadOnlyTable<&'static str, Bytes>,
    pub nodes: redb::ReadOnlyTable<u64, Bytes>,
    pub children: redb::ReadOnlyTable<(u64, &'static str), Bytes>,
    pub versions: redb::ReadOnlyTable<(u64, u64), Bytes>,
    pub users: redb::ReadOnlyTable<u64, Bytes>,
    pub trash: redb::ReadOnlyTable<(u64, u64), Bytes>,
    pub props: redb::ReadOnlyTable<(u64, &'static str, &'static str), Bytes>,
    pub shares: redb::ReadOnlyTable<u64, Bytes>,
    pub share_tokens: redb::ReadOnlyTable<&'static [u8; 32], Bytes>,
    pub staged: redb::ReadOnlyTable<u64, Bytes>,
}

impl ReadTables {
    pub fn open(txn: &redb::ReadTransaction) -> Result<Self> {
        const OP: &str = "opening tables";
        Ok(ReadTables {
            meta: txn.open_table(META).db(OP)?,
            nodes: txn.open_table(NODES).db(OP)?,
            children: txn.open_table(CHILDREN).db(OP)?,
            versions: txn.open_table(VERSIONS).db(OP)?,
            users: txn.open_table(USERS).db(OP)?,
            trash: txn.open_table(TRASH).db(OP)?,
            props: txn.open_table(PROPS).db(OP)?,
            shares: txn.open_table(SHARES).db(OP)?,
            share_tokens: txn.open_table(SHARE_TOKENS).db(OP)?,
            staged: txn.open_table(STAGED).db(OP)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::namespace::new_dir;

    /// `nodes` holding the given ids (named after them), in a fresh database.
    fn nodes_table(dir: &std::path::Path, ids: &[u64]) -> redb::ReadOnlyTable<u64, Bytes> {
        let db = redb::Database::create(dir.join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut nodes = txn.open_table(NODES).unwrap();
            for &id in ids {
                let rec = new_dir(1, 0, &id.to_string(), 0).encode().unwrap();
                nodes.insert(id, rec.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        db.begin_read().unwrap().open_table(NODES).unwrap()
    }

    fn names(nodes: &[NodeRec]) -> Vec<String> {
        nodes.iter().map(|n| n.name.clone()).collect()
    }

    #[test]
    fn nodes_of_keeps_the_order_asked_for_dense_or_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<u64> = (1..=300)
            .filter(|&id| id != 150)
            .chain([5_000, 90_000])
            .collect();
        let nodes = nodes_table(dir.path(), &all);
        // Dense: one range scan, skipping ids not asked for.
        let dense = [120, 7, 8, 299, 10, 9];
        assert_eq!(
            names(&nodes_of(&nodes, &dense).unwrap()),
            ["120", "7", "8", "299", "10", "9"]
        );
        // Sparse: one lookup each.
        let sparse = [90_000, 3, 5_000];
        assert_eq!(
            names(&nodes_of(&nodes, &sparse).unwrap()),
            ["90000", "3", "5000"]
        );
        assert!(nodes_of(&nodes, &[]).unwrap().is_empty());
        // A missing node is reported, on both paths.
        for ids in [&[149, 150, 151][..], &[4, 70_000]] {
            assert!(matches!(
                nodes_of(&nodes, ids),
                Err(StoreError::Corrupt { what, .. }) if what == format!("node {}", ids[1])
            ));
        }
    }
}
