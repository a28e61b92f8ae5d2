//! The [`Thumbnailer`]: cache lookups, a bounded queue of jobs (one per key), and the workers
//! that run the helper for each job.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Cached, Key};
use crate::helper::{self, HelperCommand, OpenContent, RunLimits};
use crate::{SIZES, ThumbError};

/// The answer to [`Thumbnailer::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThumbOutcome {
    /// The thumbnail, a JPEG.
    Ready(Bytes),
    /// Not made yet: it is queued or being made (or the queue was full); ask again later.
    Pending,
    /// There will be no thumbnail: the size is not one of [`SIZES`], or the image could not
    /// be made into one before.
    Unsupported,
}

/// Tuning of a [`Thumbnailer`].
#[derive(Debug, Clone)]
pub struct ThumbOptions {
    /// Helpers running at once. One keeps a Raspberry Pi free to serve files.
    pub workers: usize,
    /// Jobs waiting at most; further requests get `Pending` without being queued.
    pub queue_capacity: usize,
    /// Wall-clock time a helper may take before it is killed.
    pub timeout: Duration,
    /// Bytes of content fed to a helper at most (it refuses larger files).
    pub max_input: u64,
    /// Bytes a helper may write at most.
    pub max_output: u64,
}

impl Default for ThumbOptions {
    fn default() -> Self {
        ThumbOptions {
            workers: 1,
            queue_capacity: 256,
            timeout: Duration::from_secs(20),
            max_input: crate::RenderLimits::default().max_input,
            max_output: 8 << 20,
        }
    }
}

/// Counters for the admin page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThumbStatus {
    /// Jobs waiting or being made now.
    pub pending: usize,
    /// Thumbnails made since start.
    pub made: u64,
    /// Images found unusable since start.
    pub failed: u64,
    /// Jobs that failed for a passing reason (and will be tried again when asked).
    pub errors: u64,
}

/// Makes thumbnails in the background and serves them from the cache. Cheap to clone.
#[derive(Clone)]
pub struct Thumbnailer {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache,
    helper: HelperCommand,
    options: ThumbOptions,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Job>,
    /// Keys waiting or being made: at most one job per key.
    pending: HashSet<Key>,
    status: ThumbStatus,
}

struct Job {
    key: Key,
    open: OpenContent,
}

impl fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thumbnailer")
            .field("cache", &self.inner.cache.root())
            .field("helper", &self.inner.helper)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Thumbnailer {
    /// A thumbnailer caching in `cache_dir` (`<data>/thumbs`, created if needed) and running
    /// `helper` for each thumbnail, with default [`ThumbOptions`].
    pub fn new(cache_dir: PathBuf, helper: HelperCommand) -> Result<Thumbnailer, ThumbError> {
        Thumbnailer::with_options(cache_dir, helper, ThumbOptions::default())
    }

    pub fn with_options(
        cache_dir: PathBuf,
        helper: HelperCommand,
        options: ThumbOptions,
    ) -> Result<Thumbnailer, ThumbError> {
        Ok(Thumbnailer {
            inner: Arc::new(Inner {
                cache: Cache::open(cache_dir)?,
                helper,
                options,
                state: Mutex::default(),
                wake: Notify::new(),
            }),
        })
    }

    /// The cached thumbnail of the content `content_hash` at `size` when there is one;
    /// `Unsupported` when the size is not one of [`SIZES`] or this content failed before;
    /// otherwise queues a job that will call `open` (on a blocking thread) and returns `Pending`.
    pub async fn get(
        &self,
        content_hash: [u8; 32],
        size: u32,
        open: impl FnOnce() -> io::Result<Box<dyn Read + Send>> + Send + 'static,
    ) -> ThumbOutcome {
        if !SIZES.contains(&size) {
            return ThumbOutcome::Unsupported;
        }
        let key = Key {
            hash: content_hash,
            size,
        };
        match self.inner.cache.lookup(key).await {
            Ok(Cached::Thumbnail(jpeg)) => return ThumbOutcome::Ready(jpeg),
            Ok(Cached::Failed) => return ThumbOutcome::Unsupported,
            Ok(Cached::Missing) => {}
            Err(error) => tracing::warn!(%error, "thumbnail cache lookup failed"),
        }
        self.enqueue(Job {
            key,
            open: Box::new(open),
        });
        ThumbOutcome::Pending
    }

    /// Current counters.
    pub fn status(&self) -> ThumbStatus {
        let state = self.state();
        ThumbStatus {
            pending: state.pending.len(),
            ..state.status
        }
    }

    /// Runs the workers until `shutdown` is cancelled; a helper running then is killed.
    pub async fn run(&self, shutdown: CancellationToken) {
        let workers = (0..self.inner.options.workers.max(1)).map(|_| self.work(&shutdown));
        futures_util::future::join_all(workers).await;
    }

    async fn work(&self, shutdown: &CancellationToken) {
        loop {
            let job = tokio::select! {
                () = shutdown.cancelled() => return,
                job = self.next_job() => job,
            };
            let key = job.key;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.make(job) => {}
            }
            self.state().pending.remove(&key);
        }
    }

    fn enqueue(&self, job: Job) {
        let mut state = self.state();
        if state.pending.contains(&job.key) {
            return;
        }
        if state.waiting.len() >= self.inner.options.queue_capacity {
            tracing::debug!("thumbnail queue full; request dropped");
            return;
        }
        state.pending.insert(job.key);
        state.waiting.push_back(job);
        drop(state);
        self.inner.wake.notify_one();
    }

    async fn next_job(&self) -> Job {
        loop {
            let woken = self.inner.wake.notified();
            if let Some(job) = self.state().waiting.pop_front() {
                return job;
            }
            woken.await;
        }
    }

    /// Makes one thumbnail and records the result in the cache.
    async fn make(&self, job: Job) {
        let inner = &self.inner;
        let limits = RunLimits {
            timeout: inner.options.timeout,
            max_input: inner.options.max_input,
            max_output: inner.options.max_output,
        };
        let key = job.key;
        let made = helper::generate(&inner.helper, key.size, job.open, limits).await;
        let cache = inner.cache.clone();
        match made {
            Ok(jpeg) => {
                let stored = tokio::task::spawn_blocking(move || cache.store(key, &jpeg)).await;
                self.record(stored, |status| status.made += 1);
            }
            Err(error) if error.is_image_fault() => {
                tracing::info!(%error, size = key.size, "no thumbnail for this image");
                let reason = error.to_string();
                let marked =
                    tokio::task::spawn_blocking(move || cache.mark_failed(&key.hash, &reason))
                        .await;
                self.record(marked, |status| status.failed += 1);
            }
            Err(error) => {
                tracing::warn!(%error, size = key.size, "thumbnail not made; will retry when asked");
                self.state().status.errors += 1;
            }
        }
    }

    fn record(
        &self,
        written: Result<Result<(), ThumbError>, tokio::task::JoinError>,
        count: impl FnOnce(&mut ThumbStatus),
    ) {
        let error = match written {
            Ok(Ok(())) => return count(&mut self.state().status),
            Ok(Err(error)) => error.to_string(),
            Err(join) => join.to_string(),
        };
        tracing::warn!(%error, "thumbnail cache write failed");
        self.state().status.errors += 1;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one statement.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
