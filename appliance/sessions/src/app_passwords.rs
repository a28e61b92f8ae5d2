//! App passwords: one per device that signed in through the Nextcloud Login Flow (or that the
//! owner added by hand), so a phone or a sync client never holds the account password and can
//! be cut off alone.
//!
//! The password is random (30 characters from 62, about 178 bits) and shown once. Only its
//! BLAKE3 digest is stored, indexed so a check is one lookup; a slow hash would add nothing for
//! a secret that cannot be guessed, and clients send it with every request. `last_used` is
//! written at most once per [`APP_TOUCH_INTERVAL`], so a syncing device does not write the
//! database on every request.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rand::Rng;
use rand::distributions::Alphanumeric;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::record::{decode_record, encode_record};
use crate::{Result, SessionError, Sessions, db_err, truncate, unix};

/// An app password's public id (shown in the device list, used to revoke it).
pub type AppPasswordId = u64;

/// `last_used` moves at most this often.
pub const APP_TOUCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// Most app passwords one user keeps; more are refused rather than silently dropping a device.
pub const MAX_APP_PASSWORDS_PER_USER: usize = 200;
/// Longest device name kept, in bytes.
const MAX_DEVICE_NAME: usize = 200;
/// Groups of characters in an app password, and their length.
const GROUPS: usize = 5;
const GROUP_LEN: usize = 6;

/// id → versioned record.
pub(crate) const APP_PASSWORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("app_passwords");
/// BLAKE3(password) → id.
pub(crate) const APP_BY_HASH: TableDefinition<&[u8], u64> =
    TableDefinition::new("app_passwords_by_hash");
/// `next_app_id` lives in the crate's `meta` table.
const NEXT_ID: &str = "next_app_id";

/// A device's app password, without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: AppPasswordId,
    pub user_id: u64,
    pub user_name: String,
    /// What the device called itself (from its User-Agent), or what the owner typed.
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; `None` until first used. Coarse: see [`APP_TOUCH_INTERVAL`].
    pub last_used: Option<u64>,
}

/// Who gets a new app password, for which device.
#[derive(Debug, Clone)]
pub struct NewAppPassword<'a> {
    pub user_id: u64,
    pub user_name: &'a str,
    pub name: &'a str,
}

/// Whether `candidate` has the shape of an app password (`xxxxxx-xxxxxx-…`), so a check can
/// skip the database for account passwords.
pub fn looks_like_app_password(candidate: &str) -> bool {
    candidate.len() == GROUPS * GROUP_LEN + GROUPS - 1
        && candidate
            .split('-')
            .all(|g| g.len() == GROUP_LEN && g.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn generate() -> String {
    let mut rng = rand::thread_rng();
    let groups: Vec<String> = (0..GROUPS)
        .map(|_| {
            (&mut rng)
                .sample_iter(Alphanumeric)
                .take(GROUP_LEN)
                .map(char::from)
                .collect()
        })
        .collect();
    groups.join("-")
}

fn digest(password: &str) -> blake3::Hash {
    blake3::hash(password.as_bytes())
}

impl Sessions {
    /// Makes an app password for a device; returns it (shown once, never stored) and its record.
    pub fn create_app_password(
        &self,
        new: NewAppPassword<'_>,
        now: SystemTime,
    ) -> Result<(String, AppPassword)> {
        let password = generate();
        let hash = *digest(&password).as_bytes();
        let name = truncate(new.name.trim(), MAX_DEVICE_NAME);
        let record = self.write("creating an app password", |tx| {
            let mut table = tx
                .open_table(APP_PASSWORDS)
                .map_err(db_err("opening app passwords"))?;
            let mine = records(&table)?
                .into_iter()
                .filter(|r| r.user_id == new.user_id)
                .count();
            if mine >= MAX_APP_PASSWORDS_PER_USER {
                return Err(SessionError::TooManyAppPasswords {
                    max: MAX_APP_PASSWORDS_PER_USER,
                });
            }
            let mut meta = tx.open_table(crate::META).map_err(db_err("opening meta"))?;
            let id = meta
                .get(NEXT_ID)
                .map_err(db_err("reading next_app_id"))?
                .map_or(1, |v| v.value());
            meta.insert(NEXT_ID, id + 1)
                .map_err(db_err("writing next_app_id"))?;
            let record = AppRecord {
                id,
                hash,
                user_id: new.user_id,
                user_name: new.user_name.to_owned(),
                name: if name.is_empty() {
                    "Unnamed device".to_owned()
                } else {
                    name
                },
                created: unix(now),
                last_used: None,
            };
            table
                .insert(id, record.encode()?.as_slice())
                .map_err(db_err("writing an app password"))?;
            tx.open_table(APP_BY_HASH)
                .map_err(db_err("opening the app password index"))?
                .insert(hash.as_slice(), id)
                .map_err(db_err("writing the app password index"))?;
            Ok(record)
        })?;
        Ok((password, record.into_public()))
    }

    /// The app password `password` is, if any; refreshes `last_used` when it is more than
    /// [`APP_TOUCH_INTERVAL`] old. The caller checks that the user still exists.
    pub fn check_app_password(
        &self,
        password: &str,
        now: SystemTime,
    ) -> Result<Option<AppPassword>> {
        let hash = digest(password);
        let found = {
            let tx = self.db.begin_read().map_err(db_err("starting a read"))?;
            let index = tx
                .open_table(APP_BY_HASH)
                .map_err(db_err("opening the app password index"))?;
            let Some(id) = index
                .get(hash.as_bytes().as_slice())
                .map_err(db_err("reading the app password index"))?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            let table = tx
                .open_table(APP_PASSWORDS)
                .map_err(db_err("opening app passwords"))?;
            let Some(bytes) = table.get(id).map_err(db_err("reading an app password"))? else {
                return Ok(None);
            };
            AppRecord::decode(bytes.value())?
        };
        // blake3::Hash compares in constant time.
        if blake3::Hash::from(found.hash) != hash {
            return Ok(None);
        }
        let now = unix(now);
        let stale = found
            .last_used
            .is_none_or(|t| now >= t.saturating_add(APP_TOUCH_INTERVAL.as_secs()));
        if !stale {
            return Ok(Some(found.into_public()));
        }
        let id = found.id;
        self.write("recording an app password's use", |tx| {
            let mut table = tx
                .open_table(APP_PASSWORDS)
                .map_err(db_err("opening app passwords"))?;
            let current = table
                .get(id)
                .map_err(db_err("reading an app password"))?
                .map(|v| AppRecord::decode(v.value()))
                .transpose()?;
            // Revoked meanwhile: nothing to touch (and the caller still gets `found`, which was
            // live when the request arrived).
            if let Some(mut record) = current {
                record.last_used = Some(now);
                table
                    .insert(id, record.encode()?.as_slice())
                    .map_err(db_err("writing an app password"))?;
            }
            Ok(())
        })?;
        let mut touched = found.into_public();
        touched.last_used = Some(now);
        Ok(Some(touched))
    }

    /// `user_id`'s app passwords, newest first.
    pub fn app_passwords(&self, user_id: u64) -> Result<Vec<AppPassword>> {
        let tx = self.db.begin_read().map_err(db_err("starting a read"))?;
        let table = tx
            .open_table(APP_PASSWORDS)
            .map_err(db_err("opening app passwords"))?;
        let mut list: Vec<AppPassword> = records(&table)?
            .into_iter()
            .filter(|r| r.user_id == user_id)
            .map(AppRecord::into_public)
            .collect();
        list.sort_by_key(|a| std::cmp::Reverse(a.id));
        Ok(list)
    }

    /// Revokes app password `id` of `user_id`; `false` when that user has no such password.
    pub fn revoke_app_password(&self, user_id: u64, id: AppPasswordId) -> Result<bool> {
        Ok(self.revoke_app_passwords_where(|r| r.user_id == user_id && r.id == id)? > 0)
    }

    /// Revokes every app password of `user_id` (account removed or its password reset).
    pub fn revoke_user_app_passwords(&self, user_id: u64) -> Result<u64> {
        self.revoke_app_passwords_where(|r| r.user_id == user_id)
    }

    /// A number that changes whenever an app password is revoked: a cached check made under
    /// the same generation is still true (read it before checking, compare before trusting).
    pub fn app_password_generation(&self) -> u64 {
        self.app_generation.load(Ordering::SeqCst)
    }

    pub(crate) fn revoke_app_passwords_where(
        &self,
        matches: impl Fn(&AppRecord) -> bool,
    ) -> Result<u64> {
        let revoked = self.write("revoking app passwords", |tx| {
            let mut table = tx
                .open_table(APP_PASSWORDS)
                .map_err(db_err("opening app passwords"))?;
            let mut index = tx
                .open_table(APP_BY_HASH)
                .map_err(db_err("opening the app password index"))?;
            let doomed: Vec<AppRecord> = records(&table)?.into_iter().filter(matches).collect();
            for record in &doomed {
                table
                    .remove(record.id)
                    .map_err(db_err("removing an app password"))?;
                index
                    .remove(record.hash.as_slice())
                    .map_err(db_err("removing from the app password index"))?;
            }
            Ok(doomed.len() as u64)
        })?;
        // After the commit: a check that read the generation before this point and found the
        // password (before the commit) is then cached under a generation that no longer holds;
        // a check reading it after this point finds the password gone.
        if revoked > 0 {
            self.app_generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(revoked)
    }
}

fn records(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<AppRecord>> {
    let mut out = Vec::new();
    for row in table.iter().map_err(db_err("listing app passwords"))? {
        let (_, value) = row.map_err(db_err("listing app passwords"))?;
        out.push(AppRecord::decode(value.value())?);
    }
    Ok(out)
}

/// The record format this build writes: one version byte, then postcard.
const APP_FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppRecord {
    id: u64,
    hash: [u8; 32],
    pub(crate) user_id: u64,
    user_name: String,
    name: String,
    created: u64,
    last_used: Option<u64>,
}

impl AppRecord {
    fn encode(&self) -> Result<Vec<u8>> {
        encode_record(APP_FORMAT_V1, self, "app password")
    }

    fn decode(bytes: &[u8]) -> Result<AppRecord> {
        decode_record(bytes, APP_FORMAT_V1, "app password")
    }

    fn into_public(self) -> AppPassword {
        AppPassword {
            id: self.id,
            user_id: self.user_id,
            user_name: self.user_name,
            name: self.name,
            created: self.created,
            last_used: self.last_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 record as this build first wrote it: must stay readable by every later build.
    const V1_FIXTURE: &[u8] = &[
        1, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
        24, 25, 26, 27, 28, 29, 30, 31, 32, 3, 5, b'a', b'l', b'i', b'c', b'e', 5, b'p', b'h',
        b'o', b'n', b'e', 100, 1, 200, 1,
    ];

    fn sample() -> AppRecord {
        let mut hash = [0u8; 32];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        AppRecord {
            id: 4,
            hash,
            user_id: 3,
            user_name: "alice".into(),
            name: "phone".into(),
            created: 100,
            last_used: Some(200),
        }
    }

    #[test]
    fn reads_the_v1_fixture() {
        let record = AppRecord::decode(V1_FIXTURE).expect("v1 decodes");
        assert_eq!(record.encode().expect("encode"), V1_FIXTURE);
        assert_eq!(record.into_public(), sample().into_public());
    }

    #[test]
    fn refuses_unknown_versions() {
        let mut bytes = sample().encode().expect("encode");
        bytes[0] = 9;
        assert!(matches!(
            AppRecord::decode(&bytes),
            Err(SessionError::UnsupportedFormat { found: 9, .. })
        ));
        assert!(AppRecord::decode(&[]).is_err());
    }

    #[test]
    fn generated_passwords_have_the_checked_shape() {
        let a = generate();
        assert!(looks_like_app_password(&a), "{a}");
        assert_ne!(a, generate());
        assert!(!looks_like_app_password("correct-horse-battery-staple"));
        assert!(!looks_like_app_password(
            "abcdef-abcdef-abcdef-abcdef-abcde!"
        ));
    }
}
