//! The in-memory lock table (RFC 4918 class 2): write locks keyed by user and path, expiring.
//!
//! Locks live only as long as the process; a restart releases them all, which clients handle
//! as an expired lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use percloud_store::{StorePath, UserId};

/// One granted lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    /// `opaquelocktoken:<uuid>`.
    pub token: String,
    pub root: StorePath,
    pub shared: bool,
    /// Depth infinity: covers everything beneath `root`.
    pub deep: bool,
    /// The client's `DAV:owner` content, as a self-contained XML fragment.
    pub owner: Option<String>,
    pub timeout: Duration,
    pub expires: Instant,
}

impl Lock {
    /// Whether this lock applies to `path` (is on it, or on a deep ancestor).
    pub fn covers(&self, path: &StorePath) -> bool {
        self.root == *path || (self.deep && self.root.contains(path))
    }

    /// Whether this lock and a would-be lock at `root` with `deep` lock common resources.
    fn overlaps(&self, root: &StorePath, deep: bool) -> bool {
        self.covers(root) || (deep && root.contains(&self.root))
    }
}

/// Most live locks one user may hold; the table is in memory, so it must stay bounded.
pub(crate) const MAX_LOCKS_PER_USER: usize = 1024;

/// Why a lock could not be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LockError {
    #[error("{root} is already locked")]
    Conflict { root: StorePath },
    #[error("too many locks held (at most {MAX_LOCKS_PER_USER})")]
    TooMany,
}

/// Every user's locks.
#[derive(Debug, Default)]
pub(crate) struct LockTable {
    locks: Mutex<HashMap<UserId, Vec<Lock>>>,
}

impl LockTable {
    /// Runs `f` on `user`'s live locks, dropping expired ones first.
    fn with<T>(&self, user: UserId, f: impl FnOnce(&mut Vec<Lock>) -> T) -> T {
        // A panic elsewhere while holding the mutex leaves the table consistent (every change
        // is a single push or retain), so a poisoned lock is still usable.
        let mut all = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let locks = all.entry(user).or_default();
        locks.retain(|l| l.expires > now);
        f(locks)
    }

    /// The locks that apply to `path`.
    pub fn covering(&self, user: UserId, path: &StorePath) -> Vec<Lock> {
        self.with(user, |locks| {
            locks.iter().filter(|l| l.covers(path)).cloned().collect()
        })
    }

    /// The locks rooted strictly beneath `path`.
    pub fn beneath(&self, user: UserId, path: &StorePath) -> Vec<Lock> {
        self.with(user, |locks| {
            locks
                .iter()
                .filter(|l| l.root != *path && path.contains(&l.root))
                .cloned()
                .collect()
        })
    }

    /// Grants a new lock unless it conflicts with one held: an exclusive lock conflicts with
    /// any overlapping lock, a shared one with overlapping exclusive locks.
    pub fn acquire(
        &self,
        user: UserId,
        root: StorePath,
        shared: bool,
        deep: bool,
        owner: Option<String>,
        timeout: Duration,
    ) -> Result<Lock, LockError> {
        self.with(user, |locks| {
            if let Some(held) = locks
                .iter()
                .find(|l| l.overlaps(&root, deep) && (!shared || !l.shared))
            {
                return Err(LockError::Conflict {
                    root: held.root.clone(),
                });
            }
            if locks.len() >= MAX_LOCKS_PER_USER {
                return Err(LockError::TooMany);
            }
            let lock = Lock {
                token: format!("opaquelocktoken:{}", uuid::Uuid::new_v4()),
                root,
                shared,
                deep,
                owner,
                timeout,
                expires: Instant::now() + timeout,
            };
            locks.push(lock.clone());
            Ok(lock)
        })
    }

    /// Extends the lock with one of `tokens` that covers `path`.
    pub fn refresh(
        &self,
        user: UserId,
        path: &StorePath,
        tokens: &[String],
        timeout: Duration,
    ) -> Option<Lock> {
        self.with(user, |locks| {
            let lock = locks
                .iter_mut()
                .find(|l| l.covers(path) && tokens.contains(&l.token))?;
            lock.timeout = timeout;
            lock.expires = Instant::now() + timeout;
            Some(lock.clone())
        })
    }

    /// Removes the lock with `token` if it covers `path`; false when there is none.
    pub fn release(&self, user: UserId, path: &StorePath, token: &str) -> bool {
        self.with(user, |locks| {
            let before = locks.len();
            locks.retain(|l| !(l.token == token && l.covers(path)));
            locks.len() != before
        })
    }

    /// Drops every lock rooted at or beneath `path` (the resources are gone or moved).
    pub fn release_tree(&self, user: UserId, path: &StorePath) {
        self.with(user, |locks| locks.retain(|l| !path.contains(&l.root)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> StorePath {
        StorePath::parse(s).expect("path")
    }

    const T: Duration = Duration::from_secs(60);

    #[test]
    fn exclusive_and_shared() {
        let table = LockTable::default();
        let a = table
            .acquire(1, p("a"), false, false, None, T)
            .expect("lock");
        assert!(a.token.starts_with("opaquelocktoken:"));
        assert!(table.acquire(1, p("a"), true, false, None, T).is_err());
        // Another user's tree is separate.
        assert!(table.acquire(2, p("a"), false, false, None, T).is_ok());
        assert!(table.release(1, &p("a"), &a.token));
        assert!(!table.release(1, &p("a"), &a.token));
        table
            .acquire(1, p("a"), true, false, None, T)
            .expect("shared");
        table
            .acquire(1, p("a"), true, false, None, T)
            .expect("second shared");
        assert!(table.acquire(1, p("a"), false, false, None, T).is_err());
        assert_eq!(table.covering(1, &p("a")).len(), 2);
    }

    #[test]
    fn depth_infinity_covers_members() {
        let table = LockTable::default();
        let c = table
            .acquire(1, p("c"), false, true, None, T)
            .expect("lock");
        assert_eq!(table.covering(1, &p("c/x/y")), std::slice::from_ref(&c));
        assert!(table.acquire(1, p("c/x"), false, false, None, T).is_err());
        assert!(table.acquire(1, p("d"), false, false, None, T).is_ok());
        assert_eq!(table.beneath(1, &StorePath::root()).len(), 2);
        let refreshed = table
            .refresh(1, &p("c/x"), std::slice::from_ref(&c.token), T)
            .expect("refresh");
        assert_eq!(refreshed.token, c.token);
        assert!(
            table
                .refresh(1, &p("d"), std::slice::from_ref(&c.token), T)
                .is_none()
        );
        table.release_tree(1, &p("c"));
        assert!(table.covering(1, &p("c/x")).is_empty());
    }

    #[test]
    fn deep_lock_conflicts_with_locks_beneath() {
        let table = LockTable::default();
        table
            .acquire(1, p("c/x"), false, false, None, T)
            .expect("lock");
        assert!(table.acquire(1, p("c"), false, true, None, T).is_err());
        assert!(table.acquire(1, p("c"), false, false, None, T).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let table = LockTable::default();
        for i in 0..MAX_LOCKS_PER_USER {
            let path = p(&format!("f{i}"));
            table.acquire(1, path, false, false, None, T).expect("lock");
        }
        let extra = table.acquire(1, p("one-more"), false, false, None, T);
        assert_eq!(extra, Err(LockError::TooMany));
    }

    #[test]
    fn locks_expire() {
        let table = LockTable::default();
        table
            .acquire(1, p("a"), false, false, None, Duration::ZERO)
            .expect("lock");
        assert!(table.covering(1, &p("a")).is_empty());
    }
}
