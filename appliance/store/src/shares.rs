//! Share links: a record per link (keyed by id) and an index from the token's hash to the id.
//! The token itself is never stored. A link names a node, so it follows renames and moves; it
//! stops resolving when the node goes to the trash, and is deleted when the node is purged or
//! its owner removed.

use redb::ReadableTable;

use crate::inner::Inner;
use crate::namespace;
use crate::records::{IdRec, NodeKind, Record, ShareRec};
use crate::tables::{self, DbResult, WriteTables, get_node, get_rec, need_user, now, time};
use crate::{NewShare, Result, Share, ShareId, ShareMode, StoreError, StorePath, UserId};

fn share(id: ShareId, rec: ShareRec) -> Share {
    Share {
        id,
        user: rec.user,
        node: rec.node,
        mode: if rec.mode == 1 {
            ShareMode::Upload
        } else {
            ShareMode::Read
        },
        password_hash: rec.password_hash,
        expires: rec.expires.map(time),
        created: time(rec.created),
        nonce: rec.nonce,
        token_hash: rec.token_hash,
    }
}

pub(crate) fn create(
    inner: &Inner,
    user: UserId,
    path: &StorePath,
    new: NewShare,
) -> Result<Share> {
    inner.write("creating a share link", |t| {
        let root = need_user(&t.users, user)?.root;
        let (node, rec) = namespace::need(&t.nodes, &t.children, root, path)?;
        if new.mode == ShareMode::Upload && rec.kind != NodeKind::Dir {
            return Err(StoreError::NotADirectory { path: path.clone() });
        }
        if t.share_tokens
            .get(&new.token_hash)
            .db("reading share tokens")?
            .is_some()
        {
            return Err(StoreError::Corrupt {
                what: "share link token".to_owned(),
                detail: "a link with the same token hash exists already".to_owned(),
            });
        }
        let id = t.next_id(tables::NEXT_SHARE)?;
        let rec = ShareRec {
            user,
            node,
            mode: match new.mode {
                ShareMode::Read => 0,
                ShareMode::Upload => 1,
            },
            password_hash: new.password_hash,
            expires: new.expires.map(tables::nanos),
            created: now(),
            nonce: new.nonce,
            token_hash: new.token_hash,
        };
        t.shares
            .insert(id, rec.encode()?.as_slice())
            .db("writing a share link")?;
        t.share_tokens
            .insert(&rec.token_hash, IdRec(id).encode()?.as_slice())
            .db("writing a share token")?;
        Ok(share(id, rec))
    })
}

pub(crate) fn list(inner: &Inner, user: UserId) -> Result<Vec<Share>> {
    inner.read("listing share links", |t| {
        need_user(&t.users, user)?;
        let mut out = Vec::new();
        for item in t.shares.iter().db("listing share links")?.rev() {
            let (id, value) = item.db("listing share links")?;
            let rec = ShareRec::decode(value.value())?;
            if rec.user == user {
                out.push(share(id.value(), rec));
            }
        }
        Ok(out)
    })
}

pub(crate) fn by_token_hash(inner: &Inner, token_hash: &[u8; 32]) -> Result<Option<Share>> {
    inner.read("looking up a share link", |t| {
        let Some(IdRec(id)) =
            get_rec::<IdRec, &[u8; 32]>(&t.share_tokens, token_hash, "reading share tokens")?
        else {
            return Ok(None);
        };
        Ok(get_rec::<ShareRec, u64>(&t.shares, id, "reading a share link")?.map(|r| share(id, r)))
    })
}

fn remove(t: &mut WriteTables<'_>, id: ShareId, rec: &ShareRec) -> Result<()> {
    t.shares.remove(id).db("removing a share link")?;
    t.share_tokens
        .remove(&rec.token_hash)
        .db("removing a share token")?;
    Ok(())
}

pub(crate) fn revoke(inner: &Inner, user: UserId, id: ShareId) -> Result<()> {
    inner.write("revoking a share link", |t| {
        match get_rec::<ShareRec, u64>(&t.shares, id, "reading a share link")? {
            Some(rec) if rec.user == user => remove(t, id, &rec),
            _ => Err(StoreError::ShareNotFound { id }),
        }
    })
}

/// Deletes the links of `user` (all of them) or, with `None`, the links whose node no longer
/// exists (after a purge).
pub(crate) fn remove_where(t: &mut WriteTables<'_>, user: Option<UserId>) -> Result<()> {
    let mut doomed = Vec::new();
    for item in t.shares.iter().db("scanning share links")? {
        let (id, value) = item.db("scanning share links")?;
        let rec = ShareRec::decode(value.value())?;
        let gone = match user {
            Some(u) => rec.user == u,
            None => get_node(&t.nodes, rec.node)?.is_none(),
        };
        if gone {
            doomed.push((id.value(), rec));
        }
    }
    for (id, rec) in doomed {
        remove(t, id, &rec)?;
    }
    Ok(())
}
