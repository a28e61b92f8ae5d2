//! Many small files committed as one: the store side of the Nextcloud client's bulk upload.
//! Each file's bytes go to the active pack as it is added (buffered, so a batch of small files
//! is one pack write); [`UploadBatch::commit`] hands all of them to the group commit
//! (`crate::group`) as one submission: one pack fdatasync and one redb transaction for the
//! whole batch, each file still checked on its own (parent, If-Match, quota) and answered on
//! its own, so one file's failure leaves the others alone.

use std::sync::Arc;

use crate::inner::Inner;
use crate::upload::{CommitJob, HeldPins, UploadState};
use crate::{CommitOptions, CommitOutcome, Result, StorePath, UserId};

/// Files written and waiting to be committed together; dropping it abandons them all.
#[derive(Debug)]
pub struct UploadBatch {
    inner: Arc<Inner>,
    jobs: Vec<CommitJob>,
    /// What each file pinned against GC, held until the commit is answered.
    pins: Vec<HeldPins>,
}

impl UploadBatch {
    pub(crate) fn new(inner: Arc<Inner>) -> UploadBatch {
        UploadBatch {
            inner,
            jobs: Vec::new(),
            pins: Vec::new(),
        }
    }

    /// Writes `data` as the next file of the batch, to become `path` of `user` at commit.
    /// Returns its index in [`UploadBatch::commit`]'s results. An error (a quota the file
    /// cannot fit, a failed pack write) leaves nothing of this file in the batch.
    pub fn add(
        &mut self,
        user: UserId,
        path: &StorePath,
        options: &CommitOptions,
        data: &[u8],
    ) -> Result<usize> {
        let mut state = UploadState::begin(self.inner.clone(), user, Some(data.len() as u64))?;
        state.write_whole_small(data)?;
        let job = state.take_job(path, options)?;
        self.jobs.push(job);
        self.pins.push(state.into_pins());
        Ok(self.jobs.len() - 1)
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Commits every file added, in one group; one result per file, in the order added.
    /// Only after this returns are they durable.
    pub fn commit(self) -> Vec<Result<CommitOutcome>> {
        let UploadBatch { inner, jobs, pins } = self;
        if jobs.is_empty() {
            return Vec::new();
        }
        let results = inner.commits.commit_all(&inner, jobs, None);
        drop(pins);
        results
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::inner::lock;
    use crate::test_support::{p, read};
    use crate::{Precondition, Store, StoreError, StoreOptions};

    fn groups(store: &Store) -> u64 {
        store.inner.commits.groups()
    }

    #[test]
    fn a_batch_is_one_group_and_each_file_is_checked_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        store.mkdir(user, &p("/d")).unwrap();
        let mut old = store.begin_upload(user, None).unwrap();
        old.write(b"old").unwrap();
        old.commit(&p("/d/taken"), &CommitOptions::default())
            .unwrap();

        let must_be_new = CommitOptions {
            precondition: Precondition {
                if_none_match_any: true,
                ..Precondition::default()
            },
            ..CommitOptions::default()
        };
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let with_mtime = CommitOptions {
            mtime: Some(mtime),
            ..CommitOptions::default()
        };
        let mut batch = store.begin_batch();
        let plan: [(&str, &[u8], &CommitOptions); 5] = [
            ("/d/a", b"aaa", &with_mtime),
            ("/missing/b", b"bbb", &with_mtime),
            ("/d/taken", b"new", &must_be_new),
            ("/d/c", b"", &with_mtime),
            ("/d", b"a folder", &with_mtime),
        ];
        for (i, (path, data, options)) in plan.iter().enumerate() {
            assert_eq!(batch.add(user, &p(path), options, data).unwrap(), i);
        }
        assert_eq!(batch.len(), 5);
        let before = groups(&store);
        let results = batch.commit();
        assert_eq!(groups(&store) - before, 1, "one group for the whole batch");
        let ok: Vec<bool> = results.iter().map(|r| r.is_ok()).collect();
        assert_eq!(ok, [true, false, false, true, false]);
        assert!(matches!(results[1], Err(StoreError::ParentMissing { .. })));
        assert!(matches!(
            results[2],
            Err(StoreError::PreconditionFailed { .. })
        ));
        assert!(matches!(results[4], Err(StoreError::IsADirectory { .. })));
        assert_eq!(read(&store, user, "/d/a"), b"aaa");
        assert_eq!(store.stat(user, &p("/d/a")).unwrap().mtime, mtime);
        assert_eq!(read(&store, user, "/d/taken"), b"old");
        assert_eq!(read(&store, user, "/d/c"), b"");
        // Hashed once, as one chunk: still the BLAKE3 of the whole content.
        for (path, data) in [("/d/a", b"aaa".as_slice()), ("/d/c", b"")] {
            let hash = store.stat(user, &p(path)).unwrap().content_hash.unwrap();
            assert_eq!(hash, *blake3::hash(data).as_bytes(), "{path}");
        }
        assert_eq!(store.stats().unwrap().logical_bytes, 3 + 3);
        assert!(lock(&store.inner.pins).packs.is_empty(), "pins released");
        let report = store.fsck(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
    }

    #[test]
    fn quota_refuses_one_file_and_a_dropped_batch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store
            .create_user("u", "$argon2id$fake", Some(10))
            .unwrap()
            .id;
        let options = CommitOptions::default();
        let mut batch = store.begin_batch();
        assert_eq!(batch.add(user, &p("/six"), &options, b"123456").unwrap(), 0);
        assert!(matches!(
            batch.add(user, &p("/big"), &options, &[0u8; 11]),
            Err(StoreError::QuotaExceeded { .. })
        ));
        // Fits alone, but not after /six: refused at commit, /six kept.
        assert_eq!(batch.add(user, &p("/five"), &options, b"12345").unwrap(), 1);
        let results = batch.commit();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::QuotaExceeded { .. })));
        assert_eq!(read(&store, user, "/six"), b"123456");
        assert!(store.stat(user, &p("/five")).is_err());

        let mut dropped = store.begin_batch();
        dropped.add(user, &p("/gone"), &options, b"1").unwrap();
        drop(dropped);
        assert!(store.stat(user, &p("/gone")).is_err());
        assert!(lock(&store.inner.pins).packs.is_empty(), "pins released");
        assert!(store.begin_batch().commit().is_empty());
    }

    #[test]
    fn files_of_one_chunk_or_more_keep_their_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        let sizes = [
            1,
            crate::chunker::MIN_CHUNK,
            crate::chunker::MIN_CHUNK + 1,
            5 << 20,
        ];
        let files: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| (i * 31 % 251) as u8).collect())
            .collect();
        let mut batch = store.begin_batch();
        for (i, data) in files.iter().enumerate() {
            batch
                .add(user, &p(&format!("/{i}")), &CommitOptions::default(), data)
                .unwrap();
        }
        assert!(batch.commit().iter().all(|r| r.is_ok()));
        for (i, data) in files.iter().enumerate() {
            let path = format!("/{i}");
            let entry = store.stat(user, &p(&path)).unwrap();
            assert_eq!(entry.content_hash.unwrap(), *blake3::hash(data).as_bytes());
            assert_eq!(&read(&store, user, &path), data);
        }
    }

    #[test]
    fn parallel_batches_and_single_uploads_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for round in 0..5 {
                        let mut batch = store.begin_batch();
                        for i in 0..20 {
                            let data = format!("{t}-{round}-{i}");
                            let path = p(&format!("/{data}"));
                            batch
                                .add(user, &path, &CommitOptions::default(), data.as_bytes())
                                .unwrap();
                        }
                        assert!(batch.commit().iter().all(|r| r.is_ok()));
                        let mut single = store.begin_upload(user, Some(1)).unwrap();
                        single.write(b"s").unwrap();
                        single
                            .commit(&p(&format!("/s{t}-{round}")), &CommitOptions::default())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.list(user, &p("/")).unwrap().len(), 4 * 5 * 21);
        assert_eq!(read(&store, user, "/3-4-19"), b"3-4-19");
        let report = store.fsck(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
    }

    /// Packs so small that batches start new ones while other groups commit: starting a pack
    /// takes a write transaction under the pack writer's lock, so a leader must not wait for
    /// that lock (its pack sync) while holding its own transaction.
    #[test]
    fn batches_that_fill_packs_while_groups_commit_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            pack_target_bytes: 16 * 1024,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).unwrap();
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..4 {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 0..10 {
                    let mut batch = store.begin_batch();
                    for i in 0..20 {
                        let name = format!("/{t}-{round}-{i}");
                        // Incompressible, so every file adds a full 4 KiB to the pack.
                        let mut data = vec![0u8; 4096];
                        blake3::Hasher::new()
                            .update(name.as_bytes())
                            .finalize_xof()
                            .fill(&mut data);
                        batch
                            .add(user, &p(&name), &CommitOptions::default(), &data)
                            .unwrap();
                    }
                    assert!(batch.commit().iter().all(|r| r.is_ok()));
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..4 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("every batch commits (no deadlock between pack rotation and a group)");
        }
        assert_eq!(store.list(user, &p("/")).unwrap().len(), 4 * 10 * 20);
        let report = store.fsck(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
    }
}
