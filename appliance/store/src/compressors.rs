//! The zstd contexts the store's uploads compress with, kept between uploads.
//!
//! A fresh context clears its tables on first use, which costs more than trying to compress a
//! small chunk, so contexts are reused. They are pooled, not kept per thread: the blocking
//! pool runs a hundred threads or more under many parallel readers, and a context on each
//! (about 1.3 MiB at level 3) grew the process by tens of MiB once uploads landed on them.

use std::sync::Mutex;

use zstd::bulk::Compressor;

use crate::inner::lock;
use crate::pack::ZSTD_LEVEL;

pub(crate) struct Compressors {
    idle: Mutex<Vec<Compressor<'static>>>,
    /// Idle contexts kept; a context returned beyond this is dropped.
    keep: usize,
}

impl Compressors {
    /// Keeps as many idle contexts as the machine runs threads at once: more could never all
    /// be busy compressing.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::keeping(cores)
    }

    pub fn keeping(keep: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(keep)),
            keep,
        }
    }

    /// Runs `f` with an idle context, or a new one when all are in use.
    pub fn with<R>(&self, f: impl FnOnce(&mut Compressor<'static>) -> R) -> std::io::Result<R> {
        let idle = lock(&self.idle).pop();
        let mut compressor = match idle {
            Some(compressor) => compressor,
            None => Compressor::new(ZSTD_LEVEL)?,
        };
        let result = f(&mut compressor);
        let mut idle = lock(&self.idle);
        if idle.len() < self.keep {
            idle.push(compressor);
        }
        Ok(result)
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        lock(&self.idle).len()
    }
}

impl std::fmt::Debug for Compressors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressors")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn contexts_are_reused_and_at_most_keep_stay_idle() {
        let pool = Compressors::keeping(2);
        let data = vec![7u8; 64 * 1024];
        let small = pool.with(|c| c.compress(&data).unwrap()).unwrap();
        assert!(small.len() < data.len() / 10);
        assert_eq!(pool.idle(), 1, "the context went back to the pool");
        // Three at once: three contexts exist, two stay.
        pool.with(|_| pool.with(|_| pool.with(|_| ()).unwrap()).unwrap())
            .unwrap();
        assert_eq!(pool.idle(), 2);
        let again = pool.with(|c| c.compress(&data).unwrap()).unwrap();
        assert_eq!(again, small, "a reused context compresses the same");
    }
}
