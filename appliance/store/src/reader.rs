//! The read path: one version's chunk list, cumulative offsets for seeking, and one chunk
//! at a time.
//!
//! A compressed chunk is decompressed and held whole. A raw chunk (photos, videos: most
//! bytes on the box) is never held: it is served from the pack with `pread`, and verified
//! one of two ways:
//! - read from its first byte on in order (a download): hashed as it is served, and the
//!   read that would complete the chunk fails instead if the hash does not match. Its
//!   earlier pieces have been handed out unverified, but the reader can never *finish* a
//!   chunk (or a file) with bad bytes: an HTTP download is cut short before its announced
//!   length, which every client treats as a failed transfer. One pass over the bytes
//!   instead of two (a hashing read, then a serving one).
//! - entered in the middle (a range request): its stored bytes are first hashed in
//!   [`VERIFY_BUF`] pieces straight from the pack, then served.
//!
//! So a reader of raw data costs a fixed, small amount of memory whatever the chunk size, and
//! 64 clients reading ranges do not hold 64 chunks of up to 4 MiB (plus a copy each).
//! Packs are append-only and a compacted pack is deleted only after the index points at the
//! copy, so verified bytes cannot change under the reader; a pread that fails because GC
//! deleted the pack in between looks the chunk up again.

use std::io::SeekFrom;
use std::sync::Arc;

use crate::backend::PackBackend;
use crate::inner::Inner;
use crate::pack::{self, COMPRESSION_NONE, ENTRY_HEADER_LEN, EntryHeader};
use crate::records::ChunkRef;
use crate::{Entry, StoreError};

/// Bytes of a raw chunk hashed at a time while verifying it.
const VERIFY_BUF: usize = 256 * 1024;

/// The chunk a reader is positioned in.
enum Loaded {
    /// A compressed chunk's plaintext.
    Plain(Vec<u8>),
    /// A raw chunk whose stored bytes start at `data` in `pack`: verified already, or being
    /// hashed as it is served (`streaming`).
    Raw {
        pack: u64,
        data: u64,
        streaming: Option<Box<Streaming>>,
    },
}

/// The hash of a raw chunk being served from its start, in order.
struct Streaming {
    hasher: blake3::Hasher,
    /// Bytes of the chunk hashed (and served) so far.
    hashed: u64,
    /// The chunk's location, remembered as verified once the hash matched.
    key: (u64, u64, crate::records::ChunkHash),
}

/// Where a read puts its bytes: a caller's slice, or the end of a `Vec`.
trait Dest {
    /// Bytes that may still be put.
    fn room(&self) -> usize;
    fn copy(&mut self, bytes: &[u8]);
    /// Reads `n` bytes of pack `pack` at `offset`.
    fn pread(
        &mut self,
        backend: &dyn PackBackend,
        pack: u64,
        offset: u64,
        n: usize,
    ) -> crate::Result<()>;
    /// The last `n` bytes put.
    fn last(&self, n: usize) -> &[u8];
    /// Takes back the last `n` bytes put (they failed verification).
    fn take_back(&mut self, n: usize);
}

impl Dest for &mut [u8] {
    fn room(&self) -> usize {
        self.len()
    }
    fn copy(&mut self, bytes: &[u8]) {
        self[..bytes.len()].copy_from_slice(bytes);
    }
    fn pread(
        &mut self,
        backend: &dyn PackBackend,
        pack: u64,
        offset: u64,
        n: usize,
    ) -> crate::Result<()> {
        backend.read_at(pack, offset, &mut self[..n])
    }
    fn last(&self, n: usize) -> &[u8] {
        &self[..n]
    }
    fn take_back(&mut self, _n: usize) {
        // The caller's buffer; a failed read's contents mean nothing.
    }
}

/// Appends to `out`, at most `max` bytes past `start`.
struct Append<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    max: usize,
}

impl Dest for Append<'_> {
    fn room(&self) -> usize {
        self.max - (self.out.len() - self.start)
    }
    fn copy(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn pread(
        &mut self,
        backend: &dyn PackBackend,
        pack: u64,
        offset: u64,
        n: usize,
    ) -> crate::Result<()> {
        backend.read_append(pack, offset, n, self.out)
    }
    fn last(&self, n: usize) -> &[u8] {
        &self.out[self.out.len() - n..]
    }
    fn take_back(&mut self, n: usize) {
        self.out.truncate(self.out.len() - n);
    }
}

/// The state of one reader; [`crate::FileReader`] wraps it.
pub(crate) struct ReaderState {
    inner: Arc<Inner>,
    entry: Entry,
    chunks: Vec<ChunkRef>,
    /// `starts[i]` is the file offset where chunk `i` begins.
    starts: Vec<u64>,
    len: u64,
    pos: u64,
    /// The chunk currently loaded and its index.
    current: Option<(usize, Loaded)>,
    /// Reused by the verification of raw chunks.
    verify_buf: Vec<u8>,
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
            verify_buf: Vec::new(),
            decompressor: None,
        }
    }

    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn read(&mut self, mut buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_into(&mut buf)
    }

    /// Appends at most `max` bytes to `out`; 0 at the end. Raw bytes go from the pack
    /// straight into `out`'s spare room, which `read` would have had to zero first.
    pub fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        let start = out.len();
        self.read_into(&mut Append { out, start, max })
    }

    fn read_into(&mut self, dest: &mut impl Dest) -> std::io::Result<usize> {
        if dest.room() == 0 || self.pos >= self.len {
            return Ok(0);
        }
        // The chunk holding `pos`: the last one starting at or before it.
        let index = self.starts.partition_point(|&s| s <= self.pos) - 1;
        let within = self.pos - self.starts[index];
        let n = dest
            .room()
            .min(usize::try_from(u64::from(self.chunks[index].len) - within).unwrap_or(usize::MAX));
        let mut retried = false;
        let mut stream = within == 0;
        loop {
            if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
                self.current = None;
                let loaded = self.load(index, stream).map_err(std::io::Error::other)?;
                self.current = Some((index, loaded));
            }
            let Some((_, loaded)) = &mut self.current else {
                return Ok(0);
            };
            match loaded {
                Loaded::Plain(plain) => {
                    let at = within as usize;
                    dest.copy(&plain[at..at + n]);
                }
                Loaded::Raw {
                    streaming: Some(st),
                    ..
                } if st.hashed != within => {
                    // Moved within the chunk (a seek): verify the whole chunk first instead.
                    self.current = None;
                    stream = false;
                    continue;
                }
                Loaded::Raw {
                    pack,
                    data,
                    streaming,
                } => {
                    let read = dest.pread(&*self.inner.backend, *pack, *data + within, n);
                    if let Err(e) = read {
                        // GC may have moved the chunk since it was verified: look again, once.
                        self.current = None;
                        if retried {
                            return Err(std::io::Error::other(e));
                        }
                        retried = true;
                        stream = false;
                        continue;
                    }
                    if let Some(st) = streaming {
                        st.hasher.update(dest.last(n));
                        st.hashed += n as u64;
                        if st.hashed == u64::from(self.chunks[index].len) {
                            let key = st.key;
                            let sound = *st.hasher.finalize().as_bytes() == key.2;
                            *streaming = None;
                            if !sound {
                                // Not served: the chunk (and the file) never completes.
                                dest.take_back(n);
                                self.current = None;
                                return Err(std::io::Error::other(StoreError::Corrupt {
                                    what: format!("chunk {}", pack::hex(&key.2)),
                                    detail: "content does not match its hash".to_owned(),
                                }));
                            }
                            self.inner.verified.insert(key);
                        }
                    }
                }
            }
            self.pos += n as u64;
            return Ok(n);
        }
    }

    /// Positions the reader in chunk `index`; with `stream`, an unverified raw chunk is
    /// hashed as it is read instead of up front (the caller reads it from its first byte).
    fn load(&mut self, index: usize, stream: bool) -> crate::Result<Loaded> {
        let chunk = self.chunks[index];
        if let Some(loaded) = self.verify_raw(&chunk, stream)? {
            return Ok(loaded);
        }
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
        Ok(Loaded::Plain(plain))
    }

    /// For a raw chunk, hashes its stored bytes piece by piece (or, with `stream`, arranges
    /// for them to be hashed as they are read) and returns where they are. `None` (let
    /// [`Inner::read_chunk`] handle it, with its errors and GC retries) when the chunk is
    /// compressed, missing, damaged, or anything is off.
    fn verify_raw(&mut self, chunk: &ChunkRef, stream: bool) -> crate::Result<Option<Loaded>> {
        let Some(rec) = self.inner.chunk_rec(&chunk.hash)? else {
            return Ok(None);
        };
        if rec.damaged || rec.compression != COMPRESSION_NONE || rec.plain_len != chunk.len {
            return Ok(None);
        }
        let mut head = [0u8; ENTRY_HEADER_LEN];
        if self
            .inner
            .backend
            .read_at(rec.pack, rec.offset, &mut head)
            .is_err()
        {
            return Ok(None);
        }
        let Ok(header) = EntryHeader::decode(&head, || pack::hex(&chunk.hash)) else {
            return Ok(None);
        };
        if header.hash != chunk.hash
            || header.compression != COMPRESSION_NONE
            || header.stored_len != rec.stored_len
            || header.plain_len != rec.plain_len
        {
            return Ok(None);
        }
        let data = rec.offset + ENTRY_HEADER_LEN as u64;
        let key = (rec.pack, rec.offset, chunk.hash);
        if self.inner.verified.contains(&key) {
            // Verified by an earlier read in this process (header checked again above).
            return Ok(Some(Loaded::Raw {
                pack: rec.pack,
                data,
                streaming: None,
            }));
        }
        if stream {
            return Ok(Some(Loaded::Raw {
                pack: rec.pack,
                data,
                streaming: Some(Box::new(Streaming {
                    hasher: blake3::Hasher::new(),
                    hashed: 0,
                    key,
                })),
            }));
        }
        self.verify_buf.resize(VERIFY_BUF, 0);
        let mut hasher = blake3::Hasher::new();
        let mut done = 0u64;
        while done < u64::from(rec.stored_len) {
            let n = (u64::from(rec.stored_len) - done).min(VERIFY_BUF as u64) as usize;
            let piece = &mut self.verify_buf[..n];
            if self
                .inner
                .backend
                .read_at(rec.pack, data + done, piece)
                .is_err()
            {
                return Ok(None);
            }
            hasher.update(piece);
            done += n as u64;
        }
        if *hasher.finalize().as_bytes() != chunk.hash {
            // The slow path reports the corruption with its usual error.
            return Ok(None);
        }
        self.inner.verified.insert(key);
        Ok(Some(Loaded::Raw {
            pack: rec.pack,
            data,
            streaming: None,
        }))
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
