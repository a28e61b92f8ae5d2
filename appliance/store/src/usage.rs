//! Sizes of folders (the bytes of the current version of every file beneath), computed on
//! demand by walking the subtree inside one read transaction: folders keep no running total,
//! so no write ever has to update every ancestor's size.

use crate::inner::Inner;
use crate::namespace::need;
use crate::records::{IdRec, NodeKind, Record};
use crate::tables::{self, DbResult, need_user};
use crate::{Result, StorePath, UserId};

pub(crate) fn tree_size(inner: &Inner, user: UserId, path: &StorePath) -> Result<u64> {
    inner.read("summing a folder's size", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, node) = need(&t.nodes, &t.children, root, path)?;
        let mut total = node.file.as_ref().map_or(0, |f| f.size);
        if node.kind != NodeKind::Dir {
            return Ok(total);
        }
        let mut pending = vec![id];
        while let Some(dir) = pending.pop() {
            for item in t
                .children
                .range((dir, "")..(dir + 1, ""))
                .db("summing a folder's size")?
            {
                let (_, child) = item.db("summing a folder's size")?;
                let child = IdRec::decode(child.value())?.0;
                let node = tables::need_node(&t.nodes, child)?;
                match (&node.kind, &node.file) {
                    (NodeKind::Dir, _) => pending.push(child),
                    (NodeKind::File, Some(f)) => total += f.size,
                    (NodeKind::File, None) => {}
                }
            }
        }
        Ok(total)
    })
}

/// The random id made when the data folder was created (it travels with backups).
pub(crate) fn instance_id(inner: &Inner) -> Result<u64> {
    inner.read("reading the instance id", |t| {
        Ok(tables::get_rec::<IdRec, &str>(
            &t.meta,
            tables::META_INSTANCE,
            "reading the instance id",
        )?
        .map_or(0, |r| r.0))
    })
}
