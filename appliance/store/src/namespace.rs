//! The namespace tree: path lookup (one children-table lookup per level), entries and ETags,
//! and the operations that change the tree (mkdir, delete to trash, rename, copy).

use redb::ReadableTable;

use crate::inner::Inner;
use crate::records::{NodeKind, NodeRec, PropRec, Record, TrashRec, VersionRec};
use crate::tables::{
    self, Bytes, DbResult, WriteTables, get_child, get_node, need_user, now, time,
};
use crate::versions;
use crate::{
    ContentHash, Entry, EntryKind, NodeId, Precondition, Result, StoreError, StorePath,
    TransferOutcome, TrashId, UserId, VersionId,
};

/// Strong ETag of a file version: 128 bits of BLAKE3(content hash ‖ mtime ‖ version).
/// Hashed in one call over a stack buffer: a listing makes one per entry, and an incremental
/// `Hasher` costs several times the single compression this needs.
pub(crate) fn file_etag(hash: &ContentHash, mtime: u64, version: VersionId) -> String {
    let mut input = [0u8; 48];
    input[..32].copy_from_slice(hash);
    input[32..40].copy_from_slice(&mtime.to_le_bytes());
    input[40..].copy_from_slice(&version.to_le_bytes());
    crate::pack::hex(&blake3::hash(&input).as_bytes()[..16])
}

/// ETag of a folder: 128 bits of BLAKE3(id ‖ change sequence).
pub(crate) fn dir_etag(id: NodeId, seq: u64) -> String {
    let mut input = [0u8; 19];
    input[..3].copy_from_slice(b"dir");
    input[3..11].copy_from_slice(&id.to_le_bytes());
    input[11..].copy_from_slice(&seq.to_le_bytes());
    crate::pack::hex(&blake3::hash(&input).as_bytes()[..16])
}

pub(crate) fn entry(id: NodeId, node: &NodeRec) -> Entry {
    into_entry(id, node.clone())
}

/// [`entry`] taking the record apart: a listing builds thousands of entries from records it
/// owns, and each name and checksum copied is an allocation.
pub(crate) fn into_entry(id: NodeId, node: NodeRec) -> Entry {
    match node.file {
        Some(f) if node.kind == NodeKind::File => Entry {
            id,
            name: node.name,
            kind: EntryKind::File,
            size: f.size,
            mtime: time(node.mtime),
            created: time(node.created),
            etag: file_etag(&f.hash, node.mtime, f.version),
            content_hash: Some(f.hash),
            version: Some(f.version),
            checksum: f.checksum,
        },
        _ => Entry {
            id,
            name: node.name,
            kind: EntryKind::Dir,
            size: 0,
            mtime: time(node.mtime),
            created: time(node.created),
            etag: dir_etag(id, node.seq),
            content_hash: None,
            version: None,
            checksum: None,
        },
    }
}

/// Finds the node at `path` beneath `root`.
pub(crate) fn resolve(
    nodes: &impl ReadableTable<u64, Bytes>,
    children: &impl ReadableTable<(u64, &'static str), Bytes>,
    root: NodeId,
    path: &StorePath,
) -> Result<Option<(NodeId, NodeRec)>> {
    let mut id = root;
    for segment in path.segments() {
        match get_child(children, id, segment)? {
            Some(child) => id = child,
            None => return Ok(None),
        }
    }
    Ok(get_node(nodes, id)?.map(|n| (id, n)))
}

/// Like [`resolve`], failing with NotFound.
pub(crate) fn need(
    nodes: &impl ReadableTable<u64, Bytes>,
    children: &impl ReadableTable<(u64, &'static str), Bytes>,
    root: NodeId,
    path: &StorePath,
) -> Result<(NodeId, NodeRec)> {
    resolve(nodes, children, root, path)?.ok_or_else(|| StoreError::NotFound { path: path.clone() })
}

/// The folder that is to hold `path`, and the name within it.
pub(crate) fn parent_dir<'p>(
    nodes: &impl ReadableTable<u64, Bytes>,
    children: &impl ReadableTable<(u64, &'static str), Bytes>,
    root: NodeId,
    path: &'p StorePath,
    op: &'static str,
) -> Result<(NodeId, &'p str)> {
    let (Some(parent), Some(name)) = (path.parent(), path.name()) else {
        return Err(StoreError::RootNotAllowed { op });
    };
    match resolve(nodes, children, root, &parent)? {
        Some((id, node)) if node.kind == NodeKind::Dir => Ok((id, name)),
        Some(_) => Err(StoreError::NotADirectory { path: parent }),
        None => Err(StoreError::ParentMissing { path: path.clone() }),
    }
}

/// Checks If-Match / If-None-Match against the current state of the target.
pub(crate) fn check_precondition(
    path: &StorePath,
    existing: Option<&Entry>,
    pre: &Precondition,
) -> Result<()> {
    let failed = || Err(StoreError::PreconditionFailed { path: path.clone() });
    if pre.if_none_match_any && existing.is_some() {
        return failed();
    }
    match (&pre.if_match, existing) {
        (None, _) => Ok(()),
        (Some(_), None) => failed(),
        (Some(tag), Some(e)) if tag == "*" || tag.trim_matches('"') == e.etag => Ok(()),
        (Some(_), Some(_)) => failed(),
    }
}

pub(crate) fn stat(inner: &Inner, user: UserId, path: &StorePath) -> Result<Entry> {
    inner.read_tree("stat", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, node) = need(&t.nodes, &t.children, root, path)?;
        Ok(entry(id, &node))
    })
}

pub(crate) fn list(inner: &Inner, user: UserId, path: &StorePath) -> Result<Vec<Entry>> {
    inner.read_tree("listing a folder", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, node) = need(&t.nodes, &t.children, root, path)?;
        if node.kind != NodeKind::Dir {
            return Err(StoreError::NotADirectory { path: path.clone() });
        }
        let mut ids = Vec::new();
        for item in t
            .children
            .range((id, "")..(id + 1, ""))
            .db("listing a folder")?
        {
            let (_, child) = item.db("listing a folder")?;
            ids.push(crate::records::IdRec::decode(child.value())?.0);
        }
        let nodes = tables::nodes_of(&t.nodes, &ids)?;
        Ok(ids
            .iter()
            .zip(nodes)
            .map(|(&id, n)| into_entry(id, n))
            .collect())
    })
}

pub(crate) fn new_dir(owner: UserId, parent: NodeId, name: &str, now: u64) -> NodeRec {
    NodeRec {
        owner,
        parent,
        name: name.to_owned(),
        kind: NodeKind::Dir,
        created: now,
        mtime: now,
        seq: 0,
        trash: None,
        file: None,
    }
}

/// Creates a folder `name` in `parent` and touches its ancestors.
pub(crate) fn create_dir(
    t: &mut WriteTables<'_>,
    owner: UserId,
    parent: NodeId,
    name: &str,
    now: u64,
) -> Result<NodeId> {
    let id = t.next_id(tables::NEXT_NODE)?;
    t.put_node(id, &new_dir(owner, parent, name, now))?;
    t.put_child(parent, name, id)?;
    t.touch(id, now)?;
    Ok(id)
}

pub(crate) fn mkdir(inner: &Inner, user: UserId, path: &StorePath) -> Result<Entry> {
    inner.write("creating a folder", |t| {
        let root = need_user(&t.users, user)?.root;
        if path.is_root() {
            return Err(StoreError::AlreadyExists { path: path.clone() });
        }
        let (parent, name) = parent_dir(&t.nodes, &t.children, root, path, "create")?;
        if get_child(&t.children, parent, name)?.is_some() {
            return Err(StoreError::AlreadyExists { path: path.clone() });
        }
        let id = create_dir(t, user, parent, name, now())?;
        Ok(entry(id, &tables::need_node(&t.nodes, id)?))
    })
}

/// Detaches a node (and so its whole subtree) from the tree into the owner's trash.
pub(crate) fn trash_node(
    t: &mut WriteTables<'_>,
    owner: UserId,
    id: NodeId,
    path: &StorePath,
    now: u64,
) -> Result<TrashId> {
    let mut node = tables::need_node(&t.nodes, id)?;
    let trash_id = t.next_id(tables::NEXT_TRASH)?;
    t.children
        .remove((node.parent, node.name.as_str()))
        .db("removing a folder entry")?;
    let old_parent = node.parent;
    node.parent = 0;
    node.trash = Some(trash_id);
    t.put_node(id, &node)?;
    let rec = TrashRec {
        node: id,
        original_path: path.to_string(),
        deleted: now,
    };
    t.trash
        .insert((owner, trash_id), rec.encode()?.as_slice())
        .db("writing a trash item")?;
    t.touch(old_parent, now)?;
    Ok(trash_id)
}

pub(crate) fn delete(
    inner: &Inner,
    user: UserId,
    path: &StorePath,
    pre: &Precondition,
) -> Result<()> {
    inner.write("deleting", |t| {
        let root = need_user(&t.users, user)?.root;
        if path.is_root() {
            return Err(StoreError::RootNotAllowed { op: "delete" });
        }
        let found = resolve(&t.nodes, &t.children, root, path)?;
        check_precondition(
            path,
            found.as_ref().map(|(id, n)| entry(*id, n)).as_ref(),
            pre,
        )?;
        let (id, _) = found.ok_or_else(|| StoreError::NotFound { path: path.clone() })?;
        trash_node(t, user, id, path, now())?;
        Ok(())
    })
}

/// Common checks of rename and copy: source, destination folder, and what to do with an
/// existing destination. Returns (source id, destination parent, replaced).
fn prepare_transfer(
    t: &mut WriteTables<'_>,
    user: UserId,
    from: &StorePath,
    to: &StorePath,
    overwrite: bool,
    now: u64,
) -> Result<(NodeId, NodeId, bool)> {
    let root = need_user(&t.users, user)?.root;
    if from.is_root() || to.is_root() {
        return Err(StoreError::RootNotAllowed { op: "move or copy" });
    }
    let (src, _) = need(&t.nodes, &t.children, root, from)?;
    // Into itself, or onto one of its own ancestors (which would trash the source).
    if from.contains(to) || to.contains(from) {
        return Err(StoreError::IntoItself {
            from: from.clone(),
            to: to.clone(),
        });
    }
    let (parent, name) = parent_dir(&t.nodes, &t.children, root, to, "move or copy")?;
    let mut replaced = false;
    if let Some(existing) = get_child(&t.children, parent, name)? {
        if !overwrite {
            return Err(StoreError::AlreadyExists { path: to.clone() });
        }
        trash_node(t, user, existing, to, now)?;
        replaced = true;
    }
    Ok((src, parent, replaced))
}

pub(crate) fn rename(
    inner: &Inner,
    user: UserId,
    from: &StorePath,
    to: &StorePath,
    overwrite: bool,
) -> Result<TransferOutcome> {
    inner.write("moving", |t| {
        let now = now();
        if from == to {
            let root = need_user(&t.users, user)?.root;
            let (id, node) = need(&t.nodes, &t.children, root, from)?;
            return Ok(TransferOutcome {
                entry: entry(id, &node),
                replaced: false,
            });
        }
        let (src, parent, replaced) = prepare_transfer(t, user, from, to, overwrite, now)?;
        let mut node = tables::need_node(&t.nodes, src)?;
        let name = to.name().unwrap_or_default();
        t.children
            .remove((node.parent, node.name.as_str()))
            .db("removing a folder entry")?;
        let old_parent = node.parent;
        node.parent = parent;
        node.name = name.to_owned();
        t.put_node(src, &node)?;
        t.put_child(parent, name, src)?;
        t.touch(old_parent, now)?;
        t.touch(src, now)?;
        Ok(TransferOutcome {
            entry: entry(src, &tables::need_node(&t.nodes, src)?),
            replaced,
        })
    })
}

pub(crate) fn copy(
    inner: &Inner,
    user: UserId,
    from: &StorePath,
    to: &StorePath,
    overwrite: bool,
    recursive: bool,
) -> Result<TransferOutcome> {
    inner.write("copying", |t| {
        let now = now();
        if from == to {
            return Err(StoreError::IntoItself {
                from: from.clone(),
                to: to.clone(),
            });
        }
        let (src, parent, replaced) = prepare_transfer(t, user, from, to, overwrite, now)?;
        let name = to.name().unwrap_or_default();
        let mut bytes = 0u64;
        let id = copy_tree(t, user, src, parent, name, recursive, now, &mut bytes)?;
        t.touch(id, now)?;
        let mut account = need_user(&t.users, user)?;
        account.used += bytes;
        if let Some(quota) = account.quota
            && account.used > quota
        {
            return Err(StoreError::QuotaExceeded {
                user: account.name,
                needed: bytes,
                available: quota.saturating_sub(account.used - bytes),
            });
        }
        t.put_user(user, &account)?;
        Ok(TransferOutcome {
            entry: entry(id, &tables::need_node(&t.nodes, id)?),
            replaced,
        })
    })
}

/// Copies node `src` as `name` into `parent`: files get a new node whose one version shares
/// the source's chunks; folders are copied with their contents when `recursive`.
#[allow(clippy::too_many_arguments)]
fn copy_tree(
    t: &mut WriteTables<'_>,
    owner: UserId,
    src: NodeId,
    parent: NodeId,
    name: &str,
    recursive: bool,
    now: u64,
    bytes: &mut u64,
) -> Result<NodeId> {
    let node = tables::need_node(&t.nodes, src)?;
    let id = t.next_id(tables::NEXT_NODE)?;
    let mut copy = NodeRec {
        owner,
        parent,
        name: name.to_owned(),
        kind: node.kind,
        created: now,
        mtime: node.mtime,
        seq: 0,
        trash: None,
        file: None,
    };
    if let Some(head) = &node.file {
        let (rec, chunks) = versions::load(t, src, head.version)?;
        let version = t.next_id(tables::NEXT_VERSION)?;
        let rec = VersionRec {
            created: now,
            ..rec
        };
        versions::insert(t, id, version, &rec, &chunks)?;
        versions::add_refs(t, &chunks, 1)?;
        copy.file = Some(crate::records::FileHead {
            version,
            ..head.clone()
        });
        *bytes += head.size;
    }
    t.put_node(id, &copy)?;
    t.put_child(parent, name, id)?;
    copy_props(t, src, id)?;
    if node.kind == NodeKind::Dir && recursive {
        let mut kids = Vec::new();
        for item in t
            .children
            .range((src, "")..(src + 1, ""))
            .db("listing a folder")?
        {
            let (key, child) = item.db("listing a folder")?;
            kids.push((
                key.value().1.to_owned(),
                crate::records::IdRec::decode(child.value())?.0,
            ));
        }
        for (kid_name, kid) in kids {
            copy_tree(t, owner, kid, id, &kid_name, true, now, bytes)?;
        }
    }
    Ok(id)
}

fn copy_props(t: &mut WriteTables<'_>, src: NodeId, dst: NodeId) -> Result<()> {
    let mut props = Vec::new();
    for item in t
        .props
        .range((src, "", "")..(src + 1, "", ""))
        .db("reading properties")?
    {
        let (key, value) = item.db("reading properties")?;
        let (_, ns, name) = key.value();
        props.push((
            ns.to_owned(),
            name.to_owned(),
            PropRec::decode(value.value())?,
        ));
    }
    for (ns, name, value) in props {
        t.props
            .insert(
                (dst, ns.as_str(), name.as_str()),
                value.encode()?.as_slice(),
            )
            .db("writing properties")?;
    }
    Ok(())
}

/// Removes a detached subtree for good: versions (dropping chunk references), properties,
/// folder entries and nodes. Returns the bytes of the current versions removed.
pub(crate) fn purge_tree(t: &mut WriteTables<'_>, top: NodeId) -> Result<u64> {
    let mut freed = 0u64;
    let mut stack = vec![top];
    while let Some(id) = stack.pop() {
        let Some(node) = get_node(&t.nodes, id)? else {
            continue;
        };
        let mut kids = Vec::new();
        for item in t
            .children
            .range((id, "")..(id + 1, ""))
            .db("listing a folder")?
        {
            let (key, child) = item.db("listing a folder")?;
            kids.push((
                key.value().1.to_owned(),
                crate::records::IdRec::decode(child.value())?.0,
            ));
        }
        for (name, kid) in kids {
            t.children
                .remove((id, name.as_str()))
                .db("removing a folder entry")?;
            stack.push(kid);
        }
        if let Some(head) = &node.file {
            freed += head.size;
        }
        for version in versions::ids(&t.versions, id)? {
            versions::remove(t, id, version)?;
        }
        let mut props = Vec::new();
        for item in t
            .props
            .range((id, "", "")..(id + 1, "", ""))
            .db("reading properties")?
        {
            let (key, _) = item.db("reading properties")?;
            let (_, ns, name) = key.value();
            props.push((ns.to_owned(), name.to_owned()));
        }
        for (ns, name) in props {
            t.props
                .remove((id, ns.as_str(), name.as_str()))
                .db("removing properties")?;
        }
        t.nodes.remove(id).db("removing a node")?;
    }
    Ok(freed)
}

/// A stand-in path for errors about a node known only by id.
fn node_label(node: NodeId) -> StorePath {
    StorePath::from_segments([format!("#{node}")]).unwrap_or_default()
}

/// The current path of `node` in `user`'s tree, walking parents up to the root.
pub(crate) fn path_of(inner: &Inner, user: UserId, node: NodeId) -> Result<StorePath> {
    inner.read("finding a node's path", |t| {
        let root = need_user(&t.users, user)?.root;
        let gone = || StoreError::NotFound {
            path: node_label(node),
        };
        let mut names = Vec::new();
        let mut id = node;
        while id != root {
            let rec = get_node(&t.nodes, id)?.ok_or_else(gone)?;
            // A trashed subtree's top has parent 0; so has another user's root.
            if rec.owner != user || rec.trash.is_some() || rec.parent == 0 {
                return Err(gone());
            }
            if names.len() > crate::MAX_DEPTH {
                return Err(StoreError::Corrupt {
                    what: format!("node {node}"),
                    detail: "its parents form a cycle".to_owned(),
                });
            }
            names.push(rec.name);
            id = rec.parent;
        }
        names.reverse();
        Ok(StorePath::from_segments(names)?)
    })
}

/// Breadth-first search from `user`'s root for names containing `query`, ignoring case;
/// never looks into the trash (trashed subtrees are detached from the tree).
pub(crate) fn search(
    inner: &Inner,
    user: UserId,
    query: &str,
    limit: usize,
) -> Result<Vec<(StorePath, Entry)>> {
    let needle = query.to_lowercase();
    inner.read("searching", |t| {
        let root = need_user(&t.users, user)?.root;
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([(root, StorePath::root())]);
        while let Some((dir, dir_path)) = queue.pop_front() {
            if out.len() >= limit {
                break;
            }
            for item in t.children.range((dir, "")..(dir + 1, "")).db("searching")? {
                let (key, child) = item.db("searching")?;
                let name = key.value().1;
                let child = crate::records::IdRec::decode(child.value())?.0;
                let node = tables::need_node(&t.nodes, child)?;
                let path = dir_path.join(name)?;
                if node.kind == NodeKind::Dir {
                    queue.push_back((child, path.clone()));
                }
                if out.len() < limit && name.to_lowercase().contains(&needle) {
                    out.push((path, entry(child, &node)));
                }
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETags are what sync clients compare to decide what changed: a new way of computing
    /// them must give the same values, or every client re-checks every file after an update.
    /// The values are those of the first definition (incremental BLAKE3 over the parts).
    #[test]
    fn etags_keep_their_values() {
        assert_eq!(
            file_etag(&[7; 32], 1_700_000_000, 42),
            "751c0296e4b4d314ed1c5914750a4642"
        );
        assert_eq!(dir_etag(5, 9), "31ab0d48bf366ff7f0c00ed1998b941c");
    }
}
