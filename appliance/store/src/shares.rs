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

impl crate::Store {
    /// Changes link `id` of `user` in place: mode, password hash and expiry are replaced, while
    /// its id, token (so its URL) and node stay. [`ShareMode::Upload`] only for folders
    /// ([`StoreError::NotADirectory`] otherwise); [`StoreError::ShareNotFound`] when `user` has
    /// no such link.
    pub fn update_share(
        &self,
        user: UserId,
        id: ShareId,
        mode: ShareMode,
        password_hash: Option<String>,
        expires: Option<std::time::SystemTime>,
    ) -> Result<Share> {
        self.inner.write("updating a share link", |t| {
            let mut rec = match get_rec::<ShareRec, u64>(&t.shares, id, "reading a share link")? {
                Some(rec) if rec.user == user => rec,
                _ => return Err(StoreError::ShareNotFound { id }),
            };
            if mode == ShareMode::Upload {
                let node = get_node(&t.nodes, rec.node)?.ok_or(StoreError::ShareNotFound { id })?;
                if node.kind != NodeKind::Dir {
                    return Err(StoreError::NotADirectory {
                        path: StorePath::root(),
                    });
                }
            }
            rec.mode = match mode {
                ShareMode::Read => 0,
                ShareMode::Upload => 1,
            };
            rec.password_hash = password_hash;
            rec.expires = expires.map(tables::nanos);
            t.shares
                .insert(id, rec.encode()?.as_slice())
                .db("writing a share link")?;
            Ok(share(id, rec))
        })
    }
}

#[cfg(test)]
mod update_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use crate::{NewShare, ShareMode, Store, StoreError, StoreOptions, StorePath};

    #[test]
    fn a_link_changes_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let user = store.create_user("alice", "x", None).expect("user").id;
        let folder = StorePath::parse("/Photos").expect("path");
        store.mkdir(user, &folder).expect("mkdir");
        let share = store
            .create_share(
                user,
                &folder,
                NewShare {
                    mode: ShareMode::Read,
                    password_hash: None,
                    expires: None,
                    nonce: [1; 32],
                    token_hash: [2; 32],
                },
            )
            .expect("share");
        let when = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let updated = store
            .update_share(
                user,
                share.id,
                ShareMode::Upload,
                Some("phc".into()),
                Some(when),
            )
            .expect("update");
        assert_eq!(
            (updated.id, updated.token_hash),
            (share.id, share.token_hash)
        );
        assert_eq!(updated.mode, ShareMode::Upload);
        let found = store
            .share_by_token_hash(&[2; 32])
            .expect("lookup")
            .expect("still found by its token");
        assert_eq!(found.password_hash.as_deref(), Some("phc"));
        assert_eq!(found.expires, Some(when));
        assert!(matches!(
            store.update_share(user + 1, share.id, ShareMode::Read, None, None),
            Err(StoreError::ShareNotFound { .. })
        ));
    }
}
