//! Group commit: uploads that finish while another commit is being made queue up, and the
//! next leader (the first waiting thread to find no commit running) commits all of them with
//! one pack fdatasync and one redb transaction.
//!
//! Before taking its group, a leader waits (at most [`GATHER_WAIT`]) for the uploads that
//! are about to queue:
//! - the *imminent* ones: small uploads (announced length at most [`GATHER_MAX_LEN`]) that
//!   began and have not queued yet; their bytes are in memory, so they queue within
//!   microseconds;
//! - as many as the previous group held: parallel clients (rclone's four transfers by
//!   default) send their next file as soon as the previous one was answered, so their
//!   uploads arrive together again. When fewer come, the wait ends at the bound and the next
//!   group expects fewer.
//!
//! That turns four parallel clients' small files into one sync and one transaction per four
//! files instead of one per two. A *submission* is what one caller hands in at once: one
//! upload, or a whole [`crate::UploadBatch`] (a Nextcloud bulk upload), whose jobs always land
//! in the same group; the expectation above counts submissions, not jobs. A lone client does not wait: its groups hold one upload
//! (after a burst of parallel ones, its first commit waits once, at most the bound). A caller
//! that commits one small upload while holding another begun one waits the bound too.
//!
//! Each upload still gets its own answer: the leader runs each job's checks (parent,
//! If-Match, quota) inside the shared transaction before writing anything for it, so a job
//! whose checks fail is skipped without touching what the others wrote. If writing a job
//! fails (a database error), the shared transaction is abandoned and every job of the batch
//! is committed alone, as without grouping. Nobody is answered before the shared sync and
//! commit returned; a waiting upload keeps its pins until then.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::inner::{Inner, lock};
use crate::tables::{DbResult, WriteTables};
use crate::upload::CommitJob;
use crate::{CommitOutcome, Result, StoreError};

const OP: &str = "committing uploads";

/// Uploads announced at most this long are *imminent* once begun (see the module docs).
pub(crate) const GATHER_MAX_LEN: u64 = 256 * 1024;
/// The longest a leader waits for uploads about to queue before committing without them.
pub(crate) const GATHER_WAIT: Duration = Duration::from_millis(1);

/// The queue of commits waiting for the next group.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
    done: Condvar,
    /// Signalled when a job queues or an imminent upload is abandoned (for a gathering leader).
    arrived: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: Vec<(u64, CommitJob)>,
    /// Submissions whose jobs are in `waiting`.
    submissions: usize,
    /// A leader is committing a group right now.
    busy: bool,
    next_ticket: u64,
    results: HashMap<u64, Result<CommitOutcome>>,
    /// Small uploads that began and have neither queued nor been dropped.
    imminent: usize,
    /// Groups committed so far (for tests and measurements).
    groups: u64,
    /// Submissions in the last group: how many the next leader expects.
    last_group: usize,
    /// Replaces [`GATHER_WAIT`] (tests).
    gather_wait: Option<Duration>,
}

/// Marks one upload as imminent until it queues its commit or is dropped.
#[derive(Debug)]
pub(crate) struct Imminent {
    inner: Arc<Inner>,
    counted: bool,
}

impl Imminent {
    /// Counts a new upload of `expected_len` bytes; `None` when it is not small.
    pub fn register(inner: &Arc<Inner>, expected_len: Option<u64>) -> Option<Imminent> {
        if expected_len.is_none_or(|n| n > GATHER_MAX_LEN) {
            return None;
        }
        lock(&inner.commits.state).imminent += 1;
        Some(Imminent {
            inner: Arc::clone(inner),
            counted: true,
        })
    }
}

impl Drop for Imminent {
    fn drop(&mut self) {
        if self.counted {
            let queue = &self.inner.commits;
            let mut q = lock(&queue.state);
            q.imminent = q.imminent.saturating_sub(1);
            queue.arrived.notify_all();
        }
    }
}

impl CommitQueue {
    /// Commits `job`, possibly together with others; returns once it is durable (or failed).
    /// `imminent` is the upload's [`Imminent`] mark, if it has one: it ends as the job queues.
    pub fn commit(
        &self,
        inner: &Inner,
        job: CommitJob,
        imminent: Option<Imminent>,
    ) -> Result<CommitOutcome> {
        self.commit_all(inner, vec![job], imminent)
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Database {
                    op: OP,
                    detail: "a commit went unanswered".to_owned(),
                })
            })
    }

    /// Commits `jobs` in one group (with whatever else is waiting); one result per job, in
    /// order, once all of them are durable (or failed).
    pub fn commit_all(
        &self,
        inner: &Inner,
        jobs: Vec<CommitJob>,
        imminent: Option<Imminent>,
    ) -> Vec<Result<CommitOutcome>> {
        let mut q = lock(&self.state);
        if let Some(mut mark) = imminent {
            mark.counted = false;
            q.imminent = q.imminent.saturating_sub(1);
        }
        let first = q.next_ticket;
        let tickets = first..first + jobs.len() as u64;
        q.next_ticket = tickets.end;
        q.waiting.extend(tickets.clone().zip(jobs));
        q.submissions += 1;
        self.arrived.notify_all();
        loop {
            // A submission's jobs are queued together, so they are answered together.
            if tickets.clone().all(|t| q.results.contains_key(&t)) {
                return tickets.filter_map(|t| q.results.remove(&t)).collect();
            }
            if !q.busy {
                q.busy = true;
                q = self.gather(q);
                q.groups += 1;
                let batch = std::mem::take(&mut q.waiting);
                q.last_group = std::mem::take(&mut q.submissions);
                drop(q);
                let leader = Leader {
                    queue: self,
                    tickets: batch.iter().map(|(t, _)| *t).collect(),
                };
                let results = run_batch(inner, batch);
                q = lock(&self.state);
                q.results.extend(results);
                leader.finish(&mut q);
                continue;
            }
            q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Groups committed so far.
    #[cfg(test)]
    pub fn groups(&self) -> u64 {
        lock(&self.state).groups
    }

    /// Lets the uploads that are about to queue do so, for at most [`GATHER_WAIT`].
    fn gather<'a>(
        &self,
        mut q: std::sync::MutexGuard<'a, QueueState>,
    ) -> std::sync::MutexGuard<'a, QueueState> {
        let deadline = Instant::now() + q.gather_wait.unwrap_or(GATHER_WAIT);
        while q.imminent > 0 || q.submissions < q.last_group {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = match self.arrived.wait_timeout(q, deadline - now) {
                Ok((q, _)) => q,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        q
    }
}

/// Hands the lead on when a group is done, even if committing it panicked (its waiters
/// then get an error instead of waiting forever).
struct Leader<'q> {
    queue: &'q CommitQueue,
    tickets: Vec<u64>,
}

impl Leader<'_> {
    fn finish(mut self, q: &mut QueueState) {
        self.tickets.clear();
        q.busy = false;
        self.queue.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.tickets.is_empty() {
            return;
        }
        let mut q = lock(&self.queue.state);
        for &ticket in &self.tickets {
            q.results.entry(ticket).or_insert_with(|| {
                Err(StoreError::Database {
                    op: OP,
                    detail: "the committing thread panicked".to_owned(),
                })
            });
        }
        q.busy = false;
        self.queue.done.notify_all();
    }
}

/// Syncs the data of every job, then commits them in one transaction (or alone, on trouble).
fn run_batch(inner: &Inner, batch: Vec<(u64, CommitJob)>) -> Vec<(u64, Result<CommitOutcome>)> {
    let mut results = Vec::with_capacity(batch.len());
    let mut ready = Vec::with_capacity(batch.len());
    let mut packs = BTreeSet::new();
    for (ticket, job) in batch {
        match inner.check_unpoisoned(&job.packs) {
            Ok(()) => {
                packs.extend(job.packs.iter().copied());
                ready.push((ticket, job));
            }
            Err(e) => results.push((ticket, Err(e))),
        }
    }
    if ready.is_empty() {
        return results;
    }
    // Data first: one fdatasync covers every byte these uploads appended. It must return
    // before the write transaction begins: syncing takes the pack writer's lock, and an
    // upload starting a new pack holds that lock while it allocates the pack's id in a write
    // transaction of its own (lock order: pack writer, then database). Syncing while holding
    // the transaction deadlocked bulk uploads once a pack filled up.
    let grouped = match inner.sync_packs(&packs) {
        Ok(()) => one_transaction(inner, &ready),
        Err(e) => Err(e),
    };
    match grouped {
        Ok(outcomes) => results.extend(ready.iter().map(|(t, _)| *t).zip(outcomes)),
        Err(e) => {
            if ready.len() > 1 {
                tracing::debug!(
                    "group commit of {} uploads failed, one by one: {e}",
                    ready.len()
                );
                for (ticket, job) in &ready {
                    results.push((*ticket, commit_alone(inner, job)));
                }
            } else if let Some((ticket, _)) = ready.first() {
                results.push((*ticket, Err(e)));
            }
        }
    }
    results
}

/// One transaction for all `jobs`; a job whose checks fail gets its error and leaves no trace.
/// An `Err` means nothing was committed.
fn one_transaction(inner: &Inner, jobs: &[(u64, CommitJob)]) -> Result<Vec<Result<CommitOutcome>>> {
    let txn = inner.db.begin_write().db(OP)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    {
        let mut t = WriteTables::open(&txn)?;
        for (_, job) in jobs {
            let view = job.view();
            match view.check(&t, &job.path, &job.options) {
                Ok(checked) => {
                    let outcome =
                        view.apply(&mut t, inner, checked, &job.options, job.content_hash)?;
                    outcomes.push(Ok(outcome));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
    }
    txn.commit().db(OP)?;
    Ok(outcomes)
}

/// The ungrouped commit: sync this job's packs, then its own transaction.
fn commit_alone(inner: &Inner, job: &CommitJob) -> Result<CommitOutcome> {
    inner.sync_packs(&job.packs)?;
    inner.write(OP, |t| {
        let view = job.view();
        let checked = view.check(t, &job.path, &job.options)?;
        view.apply(t, inner, checked, &job.options, job.content_hash)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::test_support::{p, read};
    use crate::{CommitOptions, Precondition, Store, StoreOptions};

    #[test]
    fn a_failed_check_leaves_the_rest_of_the_group_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        let mut first = store.begin_upload(user, None).unwrap();
        first.write(b"old b").unwrap();
        first.commit(&p("/b"), &CommitOptions::default()).unwrap();

        let must_be_new = CommitOptions {
            precondition: Precondition {
                if_none_match_any: true,
                ..Precondition::default()
            },
            ..CommitOptions::default()
        };
        // /b exists: its job fails its check between two that succeed; /a twice: the second
        // job sees the first one's file inside the same transaction.
        let plan = [
            ("/a", b"new a".as_slice(), &must_be_new),
            ("/b", b"new b", &must_be_new),
            ("/c", b"new c", &must_be_new),
            ("/a", b"a again", &must_be_new),
        ];
        let mut uploads: Vec<_> = plan
            .iter()
            .map(|(_, data, _)| {
                let mut u = store.begin_upload(user, None).unwrap();
                u.write(data).unwrap();
                u
            })
            .collect();
        let batch: Vec<_> = uploads
            .iter_mut()
            .zip(&plan)
            .enumerate()
            .map(|(i, (u, (path, _, options)))| {
                (i as u64, u.state.take_job(&p(path), options).unwrap())
            })
            .collect();
        let results = run_batch(&store.inner, batch);
        let ok: Vec<bool> = results.iter().map(|(_, r)| r.is_ok()).collect();
        assert_eq!(ok, [true, false, true, false]);
        assert!(matches!(
            results[1].1,
            Err(StoreError::PreconditionFailed { .. })
        ));
        drop(uploads);
        assert_eq!(read(&store, user, "/a"), b"new a");
        assert_eq!(read(&store, user, "/b"), b"old b");
        assert_eq!(read(&store, user, "/c"), b"new c");
        assert_eq!(store.list(user, &p("/")).unwrap().len(), 3);
        let report = store.fsck(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(store.stats().unwrap().logical_bytes, 5 + 5 + 5);
    }

    fn small_upload(store: &Store, user: u64, data: &[u8]) -> crate::Upload {
        let mut u = store.begin_upload(user, Some(data.len() as u64)).unwrap();
        u.write(data).unwrap();
        u
    }

    /// A store whose leaders gather for up to a minute: the tests below then depend on the
    /// order of events only, never on how fast this machine schedules threads.
    fn patient_store(dir: &std::path::Path) -> (Store, u64) {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        lock(&store.inner.commits.state).gather_wait = Some(std::time::Duration::from_secs(60));
        let user = store.create_user("u", "$argon2id$fake", None).unwrap().id;
        (store, user)
    }

    #[test]
    fn a_leader_waits_for_a_small_upload_that_began_and_commits_both_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = patient_store(dir.path());
        let a = small_upload(&store, user, b"first");
        let b = small_upload(&store, user, b"second");
        let groups_before = lock(&store.inner.commits.state).groups;
        let leader = std::thread::spawn(move || a.commit(&p("/a"), &CommitOptions::default()));
        // The leader is now waiting for `b`, which is begun but not queued.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !leader.is_finished(),
            "the leader did not wait for the imminent upload"
        );
        assert!(
            store.stat(user, &p("/a")).is_err(),
            "committed before gathering"
        );
        b.commit(&p("/b"), &CommitOptions::default()).unwrap();
        leader.join().unwrap().unwrap();
        assert_eq!(lock(&store.inner.commits.state).groups - groups_before, 1);
        assert_eq!(read(&store, user, "/a"), b"first");
        assert_eq!(read(&store, user, "/b"), b"second");
        assert_eq!(lock(&store.inner.commits.state).imminent, 0);
    }

    #[test]
    fn a_dropped_small_upload_releases_the_leader_and_large_ones_are_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = patient_store(dir.path());
        let a = small_upload(&store, user, b"kept");
        let abandoned = small_upload(&store, user, b"abandoned");
        let mut large = store.begin_upload(user, Some(1 << 30)).unwrap();
        large.write(b"the start of a large file").unwrap();
        let mut unknown = store.begin_upload(user, None).unwrap();
        unknown.write(b"length not announced").unwrap();
        let leader = std::thread::spawn(move || a.commit(&p("/a"), &CommitOptions::default()));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !leader.is_finished(),
            "the leader did not wait for the imminent upload"
        );
        drop(abandoned);
        // Only `large` and `unknown` remain in flight: the leader must not wait for them.
        leader.join().unwrap().unwrap();
        assert_eq!(read(&store, user, "/a"), b"kept");
        assert_eq!(lock(&store.inner.commits.state).imminent, 0);
        drop((large, unknown));
        // A lone small upload commits at once (nothing imminent besides itself).
        let started = std::time::Instant::now();
        small_upload(&store, user, b"alone")
            .commit(&p("/alone"), &CommitOptions::default())
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_failed_take_job_ends_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = patient_store(dir.path());
        let u = small_upload(&store, user, b"x");
        // No parent folder: the commit fails in its checks, and the mark must be gone.
        assert!(
            u.commit(&p("/missing/x"), &CommitOptions::default())
                .is_err()
        );
        assert_eq!(lock(&store.inner.commits.state).imminent, 0);
    }
}
