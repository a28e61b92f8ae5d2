//! percloud-sessions: browser sign-in sessions and devices' app passwords, persisted in their
//! own redb file (`<data>/sessions.redb`), apart from the store's database; and the pending
//! device sign-ins (Login Flow v2), kept in memory.
//!
//! **Owns**: session records (who, since when, from where, the CSRF token) and their expiry;
//! app passwords (`app_passwords`: per device, revocable, last use); pending login flows
//! (`flows`). A session token is 32 random bytes in base64url handed to the browser once, an
//! app password is shown once; only their BLAKE3 hashes are stored, so a copy of the file signs
//! nobody in.
//!
//! **Must never**: know about HTTP or cookies, check account passwords, store a token or an app
//! password in clear, or read a record of an unknown format version as if it were known.
//!
//! Methods are synchronous and may block on disk: async callers run them on a blocking thread.

mod app_passwords;
mod error;
mod flows;
mod record;

pub use app_passwords::{
    APP_TOUCH_INTERVAL, AppPassword, AppPasswordId, MAX_APP_PASSWORDS_PER_USER, NewAppPassword,
    looks_like_app_password,
};
pub use error::SessionError;
pub use flows::{
    FLOW_LIFETIME, GrantedFlow, LoginFlows, MAX_FLOWS, MAX_FLOWS_PER_ADDRESS, PendingFlow,
    StartedFlow,
};

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use record::Record;

/// A session's public id (shown in the session list, used to revoke it).
pub type SessionId = u64;

/// Sessions unused for this long are gone.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// `last_seen` is written at most this often, so browsing does not write on every request.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Most sessions one user keeps; signing in once more drops the least recently used.
pub const MAX_PER_USER: usize = 100;
/// Longest user agent kept, in bytes.
const MAX_USER_AGENT: usize = 256;

/// id → versioned record (which holds the token hash).
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// BLAKE3(token) → id.
const BY_HASH: TableDefinition<&[u8], u64> = TableDefinition::new("sessions_by_token_hash");
/// Counters: `next_id`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

type Result<T, E = SessionError> = std::result::Result<T, E>;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: u64,
    pub user_name: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; updated at most once per [`TOUCH_INTERVAL`].
    pub last_seen: u64,
    /// The client's address when it signed in.
    pub address: String,
    pub user_agent: String,
    /// The token state-changing requests must echo (base64url, 32 random bytes).
    pub csrf: String,
}

/// Who is signing in, from where.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: u64,
    pub user_name: &'a str,
    pub address: &'a str,
    pub user_agent: &'a str,
}

/// The session database; share it behind an `Arc`.
#[derive(Debug)]
pub struct Sessions {
    db: Database,
    /// Bumped whenever an app password is revoked, so callers may cache checks safely.
    app_generation: std::sync::atomic::AtomicU64,
}

impl Sessions {
    /// Opens (creating if needed) the session database at `path`.
    pub fn open(path: &Path) -> Result<Sessions> {
        let db = Database::create(path).map_err(|e| SessionError::Open {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let sessions = Sessions {
            db,
            app_generation: std::sync::atomic::AtomicU64::new(0),
        };
        sessions.write("creating tables", |tx| {
            tx.open_table(SESSIONS)
                .map_err(db_err("opening sessions"))?;
            tx.open_table(BY_HASH)
                .map_err(db_err("opening the hash index"))?;
            tx.open_table(META).map_err(db_err("opening meta"))?;
            tx.open_table(app_passwords::APP_PASSWORDS)
                .map_err(db_err("opening app passwords"))?;
            tx.open_table(app_passwords::APP_BY_HASH)
                .map_err(db_err("opening the app password index"))?;
            Ok(())
        })?;
        Ok(sessions)
    }

    /// Starts a session; returns the token for the browser (shown once, never stored).
    pub fn create(&self, new: NewSession<'_>, now: SystemTime) -> Result<(String, Session)> {
        let token_bytes: [u8; 32] = rand::random();
        let csrf_bytes: [u8; 32] = rand::random();
        let token = URL_SAFE_NO_PAD.encode(token_bytes);
        let hash = *blake3::hash(token.as_bytes()).as_bytes();
        let now = unix(now);
        let user_agent = truncate(new.user_agent, MAX_USER_AGENT);
        let session = self.write("creating a session", |tx| {
            let mut meta = tx.open_table(META).map_err(db_err("opening meta"))?;
            let id = meta
                .get("next_id")
                .map_err(db_err("reading next_id"))?
                .map_or(1, |v| v.value());
            meta.insert("next_id", id + 1)
                .map_err(db_err("writing next_id"))?;
            let mut table = tx
                .open_table(SESSIONS)
                .map_err(db_err("opening sessions"))?;
            let mut index = tx
                .open_table(BY_HASH)
                .map_err(db_err("opening the index"))?;
            let mut mine = user_records(&table, new.user_id)?;
            if mine.len() >= MAX_PER_USER {
                mine.sort_by_key(|r| r.last_seen);
                for old in &mine[..=mine.len() - MAX_PER_USER] {
                    remove(&mut table, &mut index, old)?;
                }
            }
            let record = Record {
                id,
                token_hash: hash,
                user_id: new.user_id,
                user_name: new.user_name.to_owned(),
                created: now,
                last_seen: now,
                address: new.address.to_owned(),
                user_agent,
                csrf: URL_SAFE_NO_PAD.encode(csrf_bytes),
            };
            table
                .insert(id, record.encode()?.as_slice())
                .map_err(db_err("writing the session"))?;
            index
                .insert(hash.as_slice(), id)
                .map_err(db_err("writing the index"))?;
            Ok(record.into_session())
        })?;
        Ok((token, session))
    }

    /// The live session `token` belongs to, if any. Expired sessions are removed on the way;
    /// `last_seen` is refreshed when it is more than [`TOUCH_INTERVAL`] old.
    pub fn lookup(&self, token: &str, now: SystemTime) -> Result<Option<Session>> {
        let hash = blake3::hash(token.as_bytes());
        let now = unix(now);
        let found = {
            let tx = self.db.begin_read().map_err(db_err("starting a read"))?;
            let index = tx
                .open_table(BY_HASH)
                .map_err(db_err("opening the index"))?;
            let Some(id) = index
                .get(hash.as_bytes().as_slice())
                .map_err(db_err("reading the index"))?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            let table = tx
                .open_table(SESSIONS)
                .map_err(db_err("opening sessions"))?;
            let Some(bytes) = table.get(id).map_err(db_err("reading a session"))? else {
                return Ok(None);
            };
            Record::decode(bytes.value())?
        };
        // blake3::Hash compares in constant time.
        if blake3::Hash::from(found.token_hash) != hash {
            return Ok(None);
        }
        if now >= found.last_seen.saturating_add(IDLE_EXPIRY.as_secs()) {
            self.revoke_where(|r| r.id == found.id)?;
            return Ok(None);
        }
        if now >= found.last_seen.saturating_add(TOUCH_INTERVAL.as_secs()) {
            let id = found.id;
            self.write("touching a session", |tx| {
                let mut table = tx
                    .open_table(SESSIONS)
                    .map_err(db_err("opening sessions"))?;
                let current = table
                    .get(id)
                    .map_err(db_err("reading a session"))?
                    .map(|v| Record::decode(v.value()))
                    .transpose()?;
                if let Some(mut record) = current {
                    record.last_seen = now;
                    table
                        .insert(id, record.encode()?.as_slice())
                        .map_err(db_err("writing a session"))?;
                }
                Ok(())
            })?;
            let mut touched = found.into_session();
            touched.last_seen = now;
            return Ok(Some(touched));
        }
        Ok(Some(found.into_session()))
    }

    /// `user_id`'s sessions, most recently used first.
    pub fn list(&self, user_id: u64) -> Result<Vec<Session>> {
        let tx = self.db.begin_read().map_err(db_err("starting a read"))?;
        let table = tx
            .open_table(SESSIONS)
            .map_err(db_err("opening sessions"))?;
        let mut sessions: Vec<Session> = user_records(&table, user_id)?
            .into_iter()
            .map(Record::into_session)
            .collect();
        sessions.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.id.cmp(&a.id)));
        Ok(sessions)
    }

    /// Ends session `id` of `user_id`; `false` when there is no such session of that user.
    pub fn revoke(&self, user_id: u64, id: SessionId) -> Result<bool> {
        Ok(self.revoke_where(|r| r.user_id == user_id && r.id == id)? > 0)
    }

    /// Ends the session `token` belongs to (sign-out).
    pub fn revoke_token(&self, token: &str) -> Result<()> {
        let hash = *blake3::hash(token.as_bytes()).as_bytes();
        self.revoke_where(|r| r.token_hash == hash)?;
        Ok(())
    }

    /// Ends every session of `user_id` but `keep` ("sign out everywhere else").
    pub fn revoke_all_except(&self, user_id: u64, keep: SessionId) -> Result<u64> {
        self.revoke_where(|r| r.user_id == user_id && r.id != keep)
    }

    /// Ends every session of `user_id` and revokes its app passwords (password reset by the
    /// owner, account removed): every browser and device must sign in again. Returns how many
    /// sessions and app passwords went.
    pub fn revoke_user(&self, user_id: u64) -> Result<u64> {
        let sessions = self.revoke_where(|r| r.user_id == user_id)?;
        Ok(sessions + self.revoke_user_app_passwords(user_id)?)
    }

    /// Ends the sessions and revokes the app passwords of every user not in `live` (accounts
    /// removed behind the web pages' back, e.g. from the command line); returns how many went.
    pub fn forget_users_except(&self, live: &[u64]) -> Result<u64> {
        let sessions = self.revoke_where(|r| !live.contains(&r.user_id))?;
        let apps = self.revoke_app_passwords_where(|r| !live.contains(&r.user_id))?;
        Ok(sessions + apps)
    }

    /// Removes sessions idle past [`IDLE_EXPIRY`] at `now`; returns how many.
    pub fn purge_expired(&self, now: SystemTime) -> Result<u64> {
        let now = unix(now);
        self.revoke_where(|r| now >= r.last_seen.saturating_add(IDLE_EXPIRY.as_secs()))
    }

    /// How many sessions are stored, for the admin page and tests.
    pub fn count(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(db_err("starting a read"))?;
        let table = tx
            .open_table(SESSIONS)
            .map_err(db_err("opening sessions"))?;
        table.len().map_err(db_err("counting sessions"))
    }

    fn revoke_where(&self, matches: impl Fn(&Record) -> bool) -> Result<u64> {
        self.write("revoking sessions", |tx| {
            let mut table = tx
                .open_table(SESSIONS)
                .map_err(db_err("opening sessions"))?;
            let mut index = tx
                .open_table(BY_HASH)
                .map_err(db_err("opening the index"))?;
            let doomed: Vec<Record> = all_records(&table)?
                .into_iter()
                .filter(|r| matches(r))
                .collect();
            for record in &doomed {
                remove(&mut table, &mut index, record)?;
            }
            Ok(doomed.len() as u64)
        })
    }

    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let tx = self.db.begin_write().map_err(db_err(op))?;
        let value = f(&tx)?;
        tx.commit().map_err(db_err(op))?;
        Ok(value)
    }
}

fn all_records(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for row in table.iter().map_err(db_err("listing sessions"))? {
        let (_, value) = row.map_err(db_err("listing sessions"))?;
        records.push(Record::decode(value.value())?);
    }
    Ok(records)
}

fn user_records(
    table: &impl ReadableTable<u64, &'static [u8]>,
    user_id: u64,
) -> Result<Vec<Record>> {
    Ok(all_records(table)?
        .into_iter()
        .filter(|r| r.user_id == user_id)
        .collect())
}

fn remove(
    table: &mut redb::Table<u64, &[u8]>,
    index: &mut redb::Table<&[u8], u64>,
    record: &Record,
) -> Result<()> {
    table
        .remove(record.id)
        .map_err(db_err("removing a session"))?;
    index
        .remove(record.token_hash.as_slice())
        .map_err(db_err("removing from the index"))?;
    Ok(())
}

fn db_err<E: std::fmt::Display>(op: &'static str) -> impl Fn(E) -> SessionError {
    move |e| SessionError::Database {
        op,
        detail: e.to_string(),
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests;
