//! Streaming content-defined chunking (FastCDC 2020).
//!
//! Bytes arrive in arbitrary slices; complete chunks are handed out as soon as they are
//! certain, the undecided tail is kept. Because a cut is only taken when at least
//! [`MAX_CHUNK`] bytes follow the start of the chunk, the cut points are exactly those of
//! chunking the whole file at once, whatever the slice sizes.

use fastcdc::v2020::FastCDC;

pub(crate) const MIN_CHUNK: usize = 256 * 1024;
pub(crate) const AVG_CHUNK: usize = 1024 * 1024;
pub(crate) const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// Holds at most `2 * MAX_CHUNK` bytes.
#[derive(Debug, Default)]
pub(crate) struct Chunker {
    buf: Vec<u8>,
}

impl Chunker {
    /// A chunker that continues after `pending`, the un-cut bytes another chunker left (see
    /// [`Chunker::pending`]); `None` if that many bytes cannot be pending.
    pub fn resume(pending: Vec<u8>) -> Option<Chunker> {
        (pending.len() < 2 * MAX_CHUNK).then_some(Chunker { buf: pending })
    }

    /// The bytes received but not cut into chunks yet (less than `2 * MAX_CHUNK`).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Feeds bytes; calls `emit` for every chunk that is now complete.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let room = 2 * MAX_CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 2 * MAX_CHUNK {
                self.cut(false, emit)?;
            }
        }
        Ok(())
    }

    /// Emits everything left, as the file's last chunks.
    pub fn finish<E>(&mut self, emit: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.cut(true, emit)?;
        self.buf = Vec::new();
        Ok(())
    }

    fn cut<E>(
        &mut self,
        last: bool,
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        // A file no longer than the smallest chunk is one chunk, the cut FastCDC would find;
        // skipping it spares the small files its two gear tables (a heap copy each).
        if last && self.buf.len() <= MIN_CHUNK {
            if !self.buf.is_empty() {
                emit(&self.buf)?;
            }
            self.buf.clear();
            return Ok(());
        }
        let cdc = FastCDC::new(
            &self.buf,
            MIN_CHUNK as u32,
            AVG_CHUNK as u32,
            MAX_CHUNK as u32,
        );
        let mut start = 0;
        let len = self.buf.len();
        while start < len && (last || len - start >= MAX_CHUNK) {
            let (_, end) = cdc.cut(start, len - start);
            emit(&self.buf[start..end])?;
            start = end;
        }
        self.buf.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

    fn chunk_lens(data: &[u8], slices: &mut impl FnMut() -> usize) -> Vec<usize> {
        let mut chunker = Chunker::default();
        let mut lens = Vec::new();
        let mut emit = |c: &[u8]| -> Result<(), ()> {
            lens.push(c.len());
            Ok(())
        };
        let mut rest = data;
        while !rest.is_empty() {
            let n = slices().min(rest.len());
            chunker.push(&rest[..n], &mut emit).unwrap();
            rest = &rest[n..];
        }
        chunker.finish(&mut emit).unwrap();
        lens
    }

    #[test]
    fn cuts_do_not_depend_on_slice_sizes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut data = vec![0u8; 13 * 1024 * 1024 + 17];
        rng.fill_bytes(&mut data);
        let whole = chunk_lens(&data, &mut || usize::MAX);
        let sliced = chunk_lens(&data, &mut || rng.gen_range(1..300_000));
        assert_eq!(whole, sliced);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
        assert!(whole.iter().all(|&l| l <= MAX_CHUNK));
        assert!(whole.len() > 4, "about 1 MiB average: {whole:?}");
    }

    #[test]
    fn resuming_from_pending_bytes_cuts_the_same() {
        let data = {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            let mut d = vec![0u8; 11 * 1024 * 1024 + 5];
            rng.fill_bytes(&mut d);
            d
        };
        let whole = chunk_lens(&data, &mut || usize::MAX);
        let mut lens = Vec::new();
        let mut emit = |c: &[u8]| -> Result<(), ()> {
            lens.push(c.len());
            Ok(())
        };
        let mut chunker = Chunker::default();
        for part in data.chunks(3_000_001) {
            chunker.push(part, &mut emit).unwrap();
            chunker = Chunker::resume(chunker.pending().to_vec()).unwrap();
        }
        chunker.finish(&mut emit).unwrap();
        assert_eq!(lens, whole);
    }

    #[test]
    fn small_input_is_one_chunk() {
        assert_eq!(chunk_lens(b"hello", &mut || 2), vec![5]);
        assert!(chunk_lens(b"", &mut || 2).is_empty());
    }

    /// Around the smallest chunk, where small files skip FastCDC: the cuts are FastCDC's.
    #[test]
    fn files_near_the_smallest_chunk_cut_as_fastcdc_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for len in [
            1,
            4096,
            MIN_CHUNK - 1,
            MIN_CHUNK,
            MIN_CHUNK + 1,
            MIN_CHUNK + 70_000,
        ] {
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            let fastcdc: Vec<usize> =
                FastCDC::new(&data, MIN_CHUNK as u32, AVG_CHUNK as u32, MAX_CHUNK as u32)
                    .map(|c| c.length)
                    .collect();
            assert_eq!(chunk_lens(&data, &mut || 1000), fastcdc, "{len} bytes");
        }
    }
}
