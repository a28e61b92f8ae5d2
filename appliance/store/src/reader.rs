//! The read path: one version's chunk list, cumulative offsets for seeking, and one
//! decompressed chunk held at a time.

use std::io::SeekFrom;
use std::sync::Arc;

use crate::inner::Inner;
use crate::records::ChunkRef;
use crate::{Entry, StoreError};

/// The state of one reader; [`crate::FileReader`] wraps it.
pub(crate) struct ReaderState {
    inner: Arc<Inner>,
    entry: Entry,
    chunks: Vec<ChunkRef>,
    /// `starts[i]` is the file offset where chunk `i` begins.
    starts: Vec<u64>,
    len: u64,
    pos: u64,
    /// The chunk currently decompressed: (index, plaintext).
    current: Option<(usize, Vec<u8>)>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for ReaderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("entry", &self.entry)
            .field("chunks", &self.chunks.len())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl ReaderState {
    pub fn new(inner: Arc<Inner>, entry: Entry, chunks: Vec<ChunkRef>) -> Self {
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = 0u64;
        for c in &chunks {
            starts.push(at);
            at += u64::from(c.len);
        }
        ReaderState {
            inner,
            entry,
            chunks,
            starts,
            len: at,
            pos: 0,
            current: None,
            decompressor: None,
        }
    }

    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len {
            return Ok(0);
        }
        // The chunk holding `pos`: the last one starting at or before it.
        let index = self.starts.partition_point(|&s| s <= self.pos) - 1;
        if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
            self.current = None;
            let plain = self.load(index).map_err(std::io::Error::other)?;
            self.current = Some((index, plain));
        }
        let Some((_, plain)) = &self.current else {
            return Ok(0);
        };
        let within = (self.pos - self.starts[index]) as usize;
        let n = buf.len().min(plain.len() - within);
        buf[..n].copy_from_slice(&plain[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn load(&mut self, index: usize) -> crate::Result<Vec<u8>> {
        let chunk = self.chunks[index];
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            slot => slot.insert(zstd::bulk::Decompressor::new().map_err(|e| {
                StoreError::io("creating a decompressor", self.inner.dir.clone(), e)
            })?),
        };
        let plain = self.inner.read_chunk(&chunk.hash, decompressor)?;
        if plain.len() != chunk.len as usize {
            return Err(StoreError::Corrupt {
                what: format!("chunk {}", crate::pack::hex(&chunk.hash)),
                detail: "length differs from the version's chunk list".to_owned(),
            });
        }
        Ok(plain)
    }

    pub fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        self.pos = target;
        Ok(target)
    }
}
