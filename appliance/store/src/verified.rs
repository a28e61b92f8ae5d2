//! Raw chunks whose bytes this process has known to be good recently, served without hashing
//! them again.
//!
//! A chunk gets in two ways: a reader hashed it and the hash matched, or an upload of this
//! process wrote it (it hashed the plaintext it appended). Hashing such a chunk again right
//! away would check the page cache, which holds those very bytes, not the disk: file systems
//! that checksum their data (ZFS, Btrfs) do not re-check cached blocks either. The page cache
//! may drop the pages and a later read fetch them from the disk, so a chunk is trusted only for
//! [`VerifiedSet::WINDOW`] after it was hashed or written; after that the next read hashes it
//! again. Rot that appears on the disk is found by the first read after the window, by the
//! next process, or by fsck (which also makes this process forget a chunk it found damaged).
//!
//! Entries cannot go stale otherwise: compaction moves a chunk to a new (pack, offset), pack
//! ids are never reused, and the key holds the hash.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::inner::lock;
use crate::piece::ChunkKey;

/// Trusted raw chunks by (pack, entry offset, hash), with when each was last known good.
#[derive(Debug)]
pub(crate) struct VerifiedSet {
    window: Duration,
    known: Mutex<HashMap<ChunkKey, Instant>>,
}

impl Default for VerifiedSet {
    fn default() -> Self {
        VerifiedSet::new(Self::WINDOW)
    }
}

impl VerifiedSet {
    /// Covers 16 GiB of average (1 MiB) chunks; when full, the table holds 32 Ki buckets of
    /// 64 bytes and a control byte each: about 2 MiB.
    pub const CAPACITY: usize = 16 * 1024;
    /// How long a chunk stays trusted: long enough for the user's other devices to fetch what
    /// one of them just uploaded (a sync client polls every 30 s or is told at once), short
    /// against the months a box runs.
    pub const WINDOW: Duration = Duration::from_secs(10 * 60);
    /// Written chunks shorter than this are not remembered: hashing one costs less than the
    /// request that reads it, and thousands of small files would crowd the larger chunks out.
    /// A file's chunks are at least 256 KiB (the chunker's minimum), all but its last one.
    pub const MIN_WRITTEN: u32 = 128 * 1024;

    pub fn new(window: Duration) -> VerifiedSet {
        VerifiedSet {
            window,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the chunk was verified or written within the window.
    pub fn contains(&self, key: &ChunkKey) -> bool {
        lock(&self.known)
            .get(key)
            .is_some_and(|at| at.elapsed() < self.window)
    }

    /// A reader hashed the chunk and it matched.
    pub fn insert(&self, key: ChunkKey) {
        let mut known = lock(&self.known);
        if known.len() >= Self::CAPACITY {
            // Expired entries go first; if that frees nothing, start over (bounded memory
            // matters more than the hashing a full set saves).
            known.retain(|_, at| at.elapsed() < self.window);
            if known.len() >= Self::CAPACITY {
                known.clear();
            }
        }
        known.insert(key, Instant::now());
    }

    /// The chunk failed a check (fsck): hash it on every read again.
    pub fn forget(&self, key: &ChunkKey) {
        lock(&self.known).remove(key);
    }

    /// An upload of this process appended the chunk's `plain_len` bytes, stored raw.
    pub fn insert_written(&self, key: ChunkKey, plain_len: u32) {
        if plain_len >= Self::MIN_WRITTEN {
            self.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> ChunkKey {
        (1, n, [n as u8; 32])
    }

    #[test]
    fn chunks_are_trusted_for_the_window_only() {
        let set = VerifiedSet::new(Duration::from_secs(3600));
        set.insert(key(1));
        assert!(set.contains(&key(1)));
        assert!(!set.contains(&key(2)));
        assert!(!set.contains(&(2, 1, [1; 32])), "another pack");
        assert!(!set.contains(&(1, 1, [9; 32])), "another hash");

        let expired = VerifiedSet::new(Duration::from_millis(200));
        expired.insert(key(1));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!expired.contains(&key(1)), "hashed again after the window");
        expired.insert(key(1));
        assert!(
            expired.contains(&key(1)),
            "and trusted again once it matched"
        );
        expired.forget(&key(1));
        assert!(!expired.contains(&key(1)), "until a check found it damaged");
    }

    #[test]
    fn small_written_chunks_are_not_remembered() {
        let set = VerifiedSet::default();
        set.insert_written(key(1), VerifiedSet::MIN_WRITTEN - 1);
        set.insert_written(key(2), VerifiedSet::MIN_WRITTEN);
        assert!(!set.contains(&key(1)));
        assert!(set.contains(&key(2)));
    }

    #[test]
    fn a_full_set_drops_expired_entries_first_then_starts_over() {
        let set = VerifiedSet::new(Duration::from_secs(2));
        for n in 0..VerifiedSet::CAPACITY as u64 / 2 {
            set.insert(key(n));
        }
        std::thread::sleep(Duration::from_millis(2500));
        for n in 0..VerifiedSet::CAPACITY as u64 / 2 {
            set.insert(key(1_000_000 + n));
        }
        set.insert(key(2_000_000));
        assert_eq!(lock(&set.known).len(), VerifiedSet::CAPACITY / 2 + 1);
        assert!(set.contains(&key(1_000_000)), "fresh entries kept");

        let set = VerifiedSet::default();
        for n in 0..=VerifiedSet::CAPACITY as u64 {
            set.insert(key(n));
        }
        assert_eq!(lock(&set.known).len(), 1, "nothing expired: started over");
        assert!(set.contains(&key(VerifiedSet::CAPACITY as u64)));
    }
}
