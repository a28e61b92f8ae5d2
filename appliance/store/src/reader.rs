//! The read path: one version's chunk list, cumulative offsets for seeking, and one chunk
//! at a time.
//!
//! A compressed chunk is decompressed and held whole. A raw chunk (photos, videos: most
//! bytes on the box) is never held: it is served from the pack with `pread`, and verified
//! one of two ways:
//! - read from its first byte on in order (a download): hashed as it is served by the
//!   reader's [`Verifier`], which refuses the piece that would complete the chunk if the hash
//!   does not match. Its earlier pieces have been handed out unverified, but the reader can
//!   never *finish* a chunk (or a file) with bad bytes: an HTTP download is cut short before
//!   its announced length, which every client treats as a failed transfer. One pass over the
//!   bytes instead of two (a hashing read, then a serving one). [`ReaderState::read_piece`]
//!   leaves that hashing to a verifier the caller holds, so it can run on another thread
//!   while the next piece is read.
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
use crate::piece::{Check, ChunkKey, Piece, Verifier};
use crate::records::ChunkRef;
use crate::{Entry, StoreError};

/// Bytes of a raw chunk hashed at a time while verifying it.
const VERIFY_BUF: usize = 256 * 1024;

/// The chunk a reader is positioned in.
enum Loaded {
    /// A compressed chunk's plaintext.
    Plain(Vec<u8>),
    /// A raw chunk whose stored bytes start at `data` in `pack`: verified already, or read
    /// in order from its start to be hashed on release (`stream`).
    Raw {
        pack: u64,
        data: u64,
        stream: Option<Stream>,
    },
}

/// A raw chunk being read from its start, in order, for a [`Verifier`] to hash.
struct Stream {
    key: ChunkKey,
    /// Offset in the chunk the next read must start at to stay in order.
    next: u64,
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
}

impl Dest for Vec<u8> {
    fn room(&self) -> usize {
        self.capacity() - self.len()
    }
    fn copy(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn pread(
        &mut self,
        backend: &dyn PackBackend,
        pack: u64,
        offset: u64,
        n: usize,
    ) -> crate::Result<()> {
        // Straight into the spare capacity: nothing is zeroed first.
        backend.read_append(pack, offset, n, self)
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
    /// Releases what [`ReaderState::read`] reads.
    verifier: Verifier,
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
            verifier: Verifier::new(inner.clone()),
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

    /// A verifier for the pieces of [`ReaderState::read_piece`].
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.inner.clone())
    }

    pub fn read(&mut self, mut buf: &mut [u8]) -> std::io::Result<usize> {
        let (n, check) = self.read_into(&mut buf)?;
        self.verifier.check(check, &buf[..n])?;
        Ok(n)
    }

    /// The next at most `max` bytes, never crossing the end of a chunk (so a chunk read from
    /// its start is hashed in whole, aligned pieces); `None` at the end.
    pub fn read_piece(&mut self, max: usize) -> std::io::Result<Option<Piece>> {
        let n = self.chunk_left().min(max as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(n);
        let (_, check) = self.read_into(&mut bytes)?;
        Ok(Some(Piece::new(bytes, check)))
    }

    /// The index of the chunk holding `pos` and `pos`'s offset in it; `None` at the end.
    fn position(&self) -> Option<(usize, u64)> {
        if self.pos >= self.len {
            return None;
        }
        // The last chunk starting at or before `pos`.
        let index = self.starts.partition_point(|&s| s <= self.pos) - 1;
        Some((index, self.pos - self.starts[index]))
    }

    /// Bytes from `pos` to the end of its chunk.
    fn chunk_left(&self) -> u64 {
        self.position()
            .map_or(0, |(i, within)| u64::from(self.chunks[i].len) - within)
    }

    /// Puts the bytes at `pos` into `dest`, never past the end of their chunk, and says
    /// what releasing them requires.
    fn read_into(&mut self, dest: &mut impl Dest) -> std::io::Result<(usize, Check)> {
        let Some((index, within)) = self.position() else {
            return Ok((0, Check::Verified));
        };
        let chunk_len = u64::from(self.chunks[index].len);
        let n = (dest.room() as u64).min(chunk_len - within) as usize;
        if n == 0 {
            return Ok((0, Check::Verified));
        }
        let mut retried = false;
        let mut stream = within == 0;
        loop {
            if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
                self.current = None;
                let loaded = self.load(index, stream).map_err(std::io::Error::other)?;
                self.current = Some((index, loaded));
            }
            let Some((_, loaded)) = &mut self.current else {
                return Ok((0, Check::Verified));
            };
            let check = match loaded {
                Loaded::Plain(plain) => {
                    let at = within as usize;
                    dest.copy(&plain[at..at + n]);
                    Check::Verified
                }
                Loaded::Raw {
                    stream: Some(s), ..
                } if s.next != within => {
                    // Moved within the chunk (a seek): verify the whole chunk first instead.
                    self.current = None;
                    stream = false;
                    continue;
                }
                Loaded::Raw {
                    pack,
                    data,
                    stream: in_order,
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
                    match in_order {
                        Some(s) => {
                            s.next += n as u64;
                            Check::Stream {
                                key: s.key,
                                at: within,
                                len: chunk_len,
                            }
                        }
                        None => Check::Verified,
                    }
                }
            };
            self.pos += n as u64;
            return Ok((n, check));
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
                stream: None,
            }));
        }
        if stream {
            return Ok(Some(Loaded::Raw {
                pack: rec.pack,
                data,
                stream: Some(Stream { key, next: 0 }),
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
            stream: None,
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
