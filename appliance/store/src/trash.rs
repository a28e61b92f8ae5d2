//! Each user's trash: deleted subtrees kept whole (detached from the tree, O(1)) until they
//! are restored, purged, or expire.

use redb::ReadableTable;

use crate::inner::Inner;
use crate::namespace::{self, entry, purge_tree};
use crate::records::{NodeKind, Record, TrashRec};
use crate::tables::{self, DbResult, WriteTables, get_child, get_rec, need_user, now, time};
use crate::{Entry, NodeId, Result, StoreError, StorePath, TrashEntry, TrashId, UserId};

fn get(t: &WriteTables<'_>, user: UserId, id: TrashId) -> Result<TrashRec> {
    get_rec::<TrashRec, (u64, u64)>(&t.trash, (user, id), "reading a trash item")?
        .ok_or(StoreError::TrashItemNotFound { id })
}

pub(crate) fn list(inner: &Inner, user: UserId) -> Result<Vec<TrashEntry>> {
    inner.read("listing the trash", |t| {
        need_user(&t.users, user)?;
        let mut out = Vec::new();
        for item in t
            .trash
            .range((user, 0)..=(user, u64::MAX))
            .db("listing the trash")?
        {
            let (key, value) = item.db("listing the trash")?;
            let rec = TrashRec::decode(value.value())?;
            let node = tables::need_node(&t.nodes, rec.node)?;
            out.push(TrashEntry {
                id: key.value().1,
                original_path: rec.original_path,
                deleted: time(rec.deleted),
                entry: entry(rec.node, &node),
            });
        }
        Ok(out)
    })
}

/// A free name in `parent` for a restored item: `name`, then "stem (restored).ext",
/// "stem (restored 2).ext", …
fn free_name(t: &WriteTables<'_>, parent: NodeId, name: &str, is_file: bool) -> Result<String> {
    if get_child(&t.children, parent, name)?.is_none() {
        return Ok(name.to_owned());
    }
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if is_file && dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    for n in 1u32.. {
        let tag = if n == 1 {
            " (restored)".to_owned()
        } else {
            format!(" (restored {n})")
        };
        let candidate = format!("{stem}{tag}{ext}");
        if get_child(&t.children, parent, &candidate)?.is_none() {
            return Ok(candidate);
        }
    }
    Ok(name.to_owned())
}

/// The folder at `path`, creating missing folders; where a file is in the way, the user's
/// root is used instead.
fn ensure_dir(
    t: &mut WriteTables<'_>,
    user: UserId,
    root: NodeId,
    path: &StorePath,
    now: u64,
) -> Result<NodeId> {
    let mut id = root;
    for segment in path.segments() {
        id = match get_child(&t.children, id, segment)? {
            Some(child) if tables::need_node(&t.nodes, child)?.kind == NodeKind::Dir => child,
            Some(_) => return Ok(root),
            None => namespace::create_dir(t, user, id, segment, now)?,
        };
    }
    Ok(id)
}

pub(crate) fn restore(inner: &Inner, user: UserId, id: TrashId) -> Result<Entry> {
    inner.write("restoring from the trash", |t| {
        let now = now();
        let root = need_user(&t.users, user)?.root;
        let rec = get(t, user, id)?;
        let original = StorePath::parse(&rec.original_path)?;
        let parent_path = original.parent().unwrap_or_default();
        let parent = ensure_dir(t, user, root, &parent_path, now)?;
        let mut node = tables::need_node(&t.nodes, rec.node)?;
        let wanted = original.name().unwrap_or("restored");
        let name = free_name(t, parent, wanted, node.kind == NodeKind::File)?;
        node.parent = parent;
        node.name = name.clone();
        node.trash = None;
        t.put_node(rec.node, &node)?;
        t.put_child(parent, &name, rec.node)?;
        t.trash.remove((user, id)).db("removing a trash item")?;
        t.touch(rec.node, now)?;
        Ok(entry(rec.node, &tables::need_node(&t.nodes, rec.node)?))
    })
}

/// Purges one trash item inside a transaction, freeing the owner's quota.
pub(crate) fn purge_item(t: &mut WriteTables<'_>, user: UserId, id: TrashId) -> Result<()> {
    let rec = get(t, user, id)?;
    t.trash.remove((user, id)).db("removing a trash item")?;
    let freed = purge_tree(t, rec.node)?;
    crate::shares::remove_where(t, None)?;
    if let Some(mut account) = tables::get_user(&t.users, user)? {
        account.used = account.used.saturating_sub(freed);
        t.put_user(user, &account)?;
    }
    Ok(())
}

pub(crate) fn item_ids(t: &WriteTables<'_>, user: UserId) -> Result<Vec<TrashId>> {
    let mut ids = Vec::new();
    for item in t
        .trash
        .range((user, 0)..=(user, u64::MAX))
        .db("listing the trash")?
    {
        ids.push(item.db("listing the trash")?.0.value().1);
    }
    Ok(ids)
}

pub(crate) fn purge(inner: &Inner, user: UserId, id: TrashId) -> Result<()> {
    inner.write("purging a trash item", |t| {
        need_user(&t.users, user)?;
        purge_item(t, user, id)
    })
}

pub(crate) fn empty(inner: &Inner, user: UserId) -> Result<()> {
    inner.write("emptying the trash", |t| {
        need_user(&t.users, user)?;
        for id in item_ids(t, user)? {
            purge_item(t, user, id)?;
        }
        Ok(())
    })
}

/// Purges every trash item deleted before `cutoff`; returns how many.
pub(crate) fn expire(t: &mut WriteTables<'_>, cutoff: u64) -> Result<u64> {
    let mut doomed = Vec::new();
    for item in t.trash.iter().db("scanning the trash")? {
        let (key, value) = item.db("scanning the trash")?;
        if TrashRec::decode(value.value())?.deleted < cutoff {
            doomed.push(key.value());
        }
    }
    for &(user, id) in &doomed {
        purge_item(t, user, id)?;
    }
    Ok(doomed.len() as u64)
}
