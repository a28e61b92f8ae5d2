//! Accounts: name → id, and per id the record with the password hash, quota, usage and the
//! user's root folder.

use redb::ReadableTable;

use crate::inner::Inner;
use crate::namespace::{self, purge_tree};
use crate::records::{IdRec, Record, UserRec};
use crate::tables::{self, DbResult, get_rec, need_user, now, time};
use crate::{Result, StoreError, User, UserId};

/// Longest user name, in characters.
pub const MAX_USER_NAME: usize = 64;

/// Checks a user name: 1–64 of `[A-Za-z0-9._-]`, not starting with '.'.
pub fn validate_user_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(StoreError::InvalidUserName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_USER_NAME {
        return bad("longer than 64 characters");
    }
    if name.starts_with('.') {
        return bad("starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn user(id: UserId, rec: UserRec) -> User {
    User {
        id,
        name: rec.name,
        password_hash: rec.password_hash,
        quota: rec.quota,
        used: rec.used,
        created: time(rec.created),
    }
}

fn id_of(
    names: &impl redb::ReadableTable<&'static str, tables::Bytes>,
    name: &str,
) -> Result<Option<UserId>> {
    Ok(get_rec::<IdRec, &str>(names, name, "reading a user name")?.map(|r| r.0))
}

pub(crate) fn create(
    inner: &Inner,
    name: &str,
    password_hash: &str,
    quota: Option<u64>,
) -> Result<User> {
    validate_user_name(name)?;
    inner.write("creating a user", |t| {
        if id_of(&t.user_names, name)?.is_some() {
            return Err(StoreError::UserExists {
                name: name.to_owned(),
            });
        }
        let now = now();
        let id = t.next_id(tables::NEXT_USER)?;
        let root = t.next_id(tables::NEXT_NODE)?;
        t.put_node(root, &namespace::new_dir(id, 0, "", now))?;
        t.touch(root, now)?;
        let rec = UserRec {
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            quota,
            used: 0,
            root,
            created: now,
        };
        t.put_user(id, &rec)?;
        t.user_names
            .insert(name, IdRec(id).encode()?.as_slice())
            .db("writing a user name")?;
        Ok(user(id, rec))
    })
}

/// Every authenticated request asks this: two tables are opened, not all of them.
pub(crate) fn by_name(inner: &Inner, name: &str) -> Result<Option<User>> {
    const OP: &str = "reading a user";
    let txn = inner.db.begin_read().db(OP)?;
    let user_names = txn.open_table(tables::USER_NAMES).db(OP)?;
    let Some(id) = id_of(&user_names, name)? else {
        return Ok(None);
    };
    let users = txn.open_table(tables::USERS).db(OP)?;
    Ok(Some(user(id, need_user(&users, id)?)))
}

pub(crate) fn all(inner: &Inner) -> Result<Vec<User>> {
    inner.read("listing users", |t| {
        let mut out = Vec::new();
        for item in redb::ReadableTable::iter(&t.users).db("listing users")? {
            let (id, rec) = item.db("listing users")?;
            out.push(user(id.value(), UserRec::decode(rec.value())?));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    })
}

/// Changes a user's record in one transaction.
pub(crate) fn update(inner: &Inner, name: &str, f: impl FnOnce(&mut UserRec)) -> Result<()> {
    inner.write("updating a user", |t| {
        let id = id_of(&t.user_names, name)?.ok_or_else(|| StoreError::UnknownUser {
            name: name.to_owned(),
        })?;
        let mut rec = need_user(&t.users, id)?;
        f(&mut rec);
        t.put_user(id, &rec)
    })
}

pub(crate) fn remove(inner: &Inner, name: &str) -> Result<()> {
    let mut removed_staged = Vec::new();
    inner.write("removing a user", |t| {
        let id = id_of(&t.user_names, name)?.ok_or_else(|| StoreError::UnknownUser {
            name: name.to_owned(),
        })?;
        let owner = t
            .users
            .first()
            .db("finding the owner")?
            .map(|(k, _)| k.value());
        if owner == Some(id) {
            return Err(StoreError::OwnerRequired);
        }
        let rec = need_user(&t.users, id)?;
        crate::shares::remove_where(t, Some(id))?;
        removed_staged = crate::staged::remove_for_user(t, id)?;
        for item in crate::trash::item_ids(t, id)? {
            crate::trash::purge_item(t, id, item)?;
        }
        purge_tree(t, rec.root)?;
        t.users.remove(id).db("removing a user")?;
        t.user_names.remove(name).db("removing a user name")?;
        Ok(())
    })?;
    crate::staged::forget_files(inner, &removed_staged);
    Ok(())
}

/// The lowest-id account that still exists.
pub(crate) fn owner(inner: &Inner) -> Result<Option<User>> {
    inner.read("finding the owner", |t| {
        match redb::ReadableTable::first(&t.users).db("finding the owner")? {
            Some((id, rec)) => Ok(Some(user(id.value(), UserRec::decode(rec.value())?))),
            None => Ok(None),
        }
    })
}
