//! Group commit: uploads that finish while another commit is being made queue up, and the
//! next leader (the first waiting thread to find no commit running) commits all of them with
//! one pack fdatasync and one redb transaction.
//!
//! Each upload still gets its own answer: the leader runs each job's checks (parent,
//! If-Match, quota) inside the shared transaction before writing anything for it, so a job
//! whose checks fail is skipped without touching what the others wrote. If writing a job
//! fails (a database error), the shared transaction is abandoned and every job of the batch
//! is committed alone, as without grouping. Nobody is answered before the shared sync and
//! commit returned; a waiting upload keeps its pins until then.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex};

use crate::inner::{Inner, lock};
use crate::tables::{DbResult, WriteTables};
use crate::upload::CommitJob;
use crate::{CommitOutcome, Result, StoreError};

const OP: &str = "committing uploads";

/// The queue of commits waiting for the next group.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: Vec<(u64, CommitJob)>,
    /// A leader is committing a group right now.
    busy: bool,
    next_ticket: u64,
    results: HashMap<u64, Result<CommitOutcome>>,
}

impl CommitQueue {
    /// Commits `job`, possibly together with others; returns once it is durable (or failed).
    pub fn commit(&self, inner: &Inner, job: CommitJob) -> Result<CommitOutcome> {
        let mut q = lock(&self.state);
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push((ticket, job));
        loop {
            if let Some(result) = q.results.remove(&ticket) {
                return result;
            }
            if !q.busy {
                q.busy = true;
                let batch = std::mem::take(&mut q.waiting);
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
    // Data first: one fdatasync covers every byte these uploads appended.
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
    use crate::{CommitOptions, Precondition, Store, StoreOptions, StorePath};

    fn p(s: &str) -> StorePath {
        StorePath::parse(s).unwrap()
    }

    fn read(store: &Store, user: u64, path: &str) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        store
            .open_file(user, &p(path))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

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
}
