//! The read path: one version's chunk list, cumulative offsets for seeking, and one chunk
//! at a time.
//!
//! A compressed chunk is decompressed and held whole. A raw chunk (photos, videos: most
//! bytes on the box) is never held: it is served from the pack with `pread`, and verified
//! one of two ways:
//! - read to its end from its first byte, or by [`ReaderState::read_piece`] from any
//!   [`PIECE_LEN`]-aligned offset (a download): hashed as it is served, and a [`Verifier`]
//!   refuses the piece that would complete the chunk if the hash does not match. Its
//!   earlier pieces have been handed out unverified, but the reader can never *finish* a
//!   chunk (or a file) with bad bytes: an HTTP download is cut short before its announced
//!   length, which every client treats as a failed transfer. One pass over the bytes
//!   instead of two (a hashing read, then a serving one). `read_piece` hashes each piece as
//!   a BLAKE3 subtree on the reading thread, so two readers of alternate pieces
//!   ([`ReaderState::fork`]) hash in parallel; the verifier merges them in order.
//! - entered in the middle (a range request), or not read to its end (a range ending in
//!   it): its stored bytes are first hashed in [`VERIFY_BUF`] pieces straight from the
//!   pack, then served.
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
use crate::piece::{Check, ChunkKey, PIECE_LEN, Piece, Verifier};
use crate::records::ChunkRef;
use crate::{Entry, StoreError};

/// Bytes of a raw chunk hashed at a time while verifying it.
const VERIFY_BUF: usize = 256 * 1024;

/// The chunk a reader is positioned in.
enum Loaded {
    /// A compressed chunk's plaintext.
    Plain(Vec<u8>),
    /// A raw chunk whose stored bytes start at `data` in `pack`: verified already, or read
    /// to its end and hashed as it is served (`stream`).
    Raw {
        pack: u64,
        data: u64,
        stream: Option<Stream>,
    },
}

/// A raw chunk hashed as it is served.
struct Stream {
    key: ChunkKey,
    /// For [`ReaderState::read`]: read in order, the next read starts here. `None` for
    /// [`ReaderState::read_piece`]: any aligned piece is hashed as its subtree.
    next: Option<u64>,
}

impl Stream {
    /// What releasing `bytes`, just read at `within` of the chunk of `len` bytes, requires:
    /// hashing in order on release (`read`), or merging the subtree hashed here.
    fn check(&mut self, within: u64, len: u64, bytes: &[u8]) -> crate::Result<Check> {
        let key = self.key;
        match &mut self.next {
            Some(next) => {
                *next += bytes.len() as u64;
                Ok(Check::InOrder {
                    key,
                    at: within,
                    len,
                })
            }
            None => Check::subtree(key, within, len, bytes),
        }
    }

    /// Whether a read by `method` at `within` (`in_step`: at the offsets that method hashes
    /// from) continues this stream.
    fn follows(&self, method: Method, within: u64, in_step: bool) -> bool {
        match self.next {
            Some(next) => method == Method::Read && next == within,
            None => method == Method::Piece && in_step,
        }
    }
}

/// Which reading method reads: they hash a streamed chunk differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Read,
    Piece,
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
    fn last(&self, n: usize) -> &[u8] {
        &self[self.len() - n..]
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
    /// Where reading stops (the end of a range; `len` unless [`ReaderState::limit`] said).
    end: u64,
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
            end: at,
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

    /// A second reader of the same version at the same position and limit, with its own
    /// chunk state and verifier (to read alternate pieces on another thread).
    pub fn fork(&self) -> ReaderState {
        let mut other =
            ReaderState::new(self.inner.clone(), self.entry.clone(), self.chunks.clone());
        other.pos = self.pos;
        other.end = self.end;
        other
    }

    /// Reading stops at `end` (a range's end, at most the length). A raw chunk that the
    /// range ends in is verified whole before any of it is served, as it will not be read to
    /// its end.
    pub fn limit(&mut self, end: u64) {
        self.end = end.min(self.len);
        self.current = None;
    }

    pub fn read(&mut self, mut buf: &mut [u8]) -> std::io::Result<usize> {
        let (n, check) = self.read_into(&mut buf, Method::Read)?;
        self.verifier.check(check, &buf[..n])?;
        Ok(n)
    }

    /// The next piece: at most [`PIECE_LEN`] bytes, never crossing the end of a chunk, so
    /// the pieces of a chunk read from its start are aligned subtrees of its hash; `None` at
    /// the end.
    pub fn read_piece(&mut self) -> std::io::Result<Option<Piece>> {
        let n = self.next_piece_len();
        if n == 0 {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(n);
        let (_, check) = self.read_into(&mut bytes, Method::Piece)?;
        Ok(Some(Piece::new(bytes, check)))
    }

    /// Moves past the piece [`ReaderState::read_piece`] would read next without reading
    /// it (another reader reads it); returns its length, 0 at the end.
    pub fn skip_piece(&mut self) -> usize {
        let n = self.next_piece_len();
        self.pos += n as u64;
        n
    }

    fn next_piece_len(&self) -> usize {
        let left = self.chunk_left().min(self.end.saturating_sub(self.pos));
        left.min(PIECE_LEN as u64) as usize
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
    fn read_into(
        &mut self,
        dest: &mut impl Dest,
        method: Method,
    ) -> std::io::Result<(usize, Check)> {
        let Some((index, within)) = self.position().filter(|_| self.pos < self.end) else {
            return Ok((0, Check::Verified));
        };
        let chunk_len = u64::from(self.chunks[index].len);
        let n = (dest.room() as u64)
            .min(chunk_len - within)
            .min(self.end - self.pos) as usize;
        if n == 0 {
            return Ok((0, Check::Verified));
        }
        // Hashed as served only if read to its end, from its start (`read`) or from an
        // aligned offset in whole pieces (`read_piece`); else verified first.
        let to_end = self.starts[index] + chunk_len <= self.end;
        let in_step = match method {
            Method::Read => within == 0,
            Method::Piece => within.is_multiple_of(PIECE_LEN as u64),
        };
        let mut retried = false;
        let mut hash_as_served = to_end && in_step;
        loop {
            if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
                self.current = None;
                let loaded = self
                    .load(index, hash_as_served.then_some(method))
                    .map_err(std::io::Error::other)?;
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
                } if !s.follows(method, within, in_step) => {
                    // Moved within the chunk (a seek): verify the whole chunk first instead.
                    self.current = None;
                    hash_as_served = false;
                    continue;
                }
                Loaded::Raw { pack, data, stream } => {
                    let read = dest.pread(&*self.inner.backend, *pack, *data + within, n);
                    if let Err(e) = read {
                        // GC may have moved the chunk since it was verified: look again, once.
                        self.current = None;
                        if retried {
                            return Err(std::io::Error::other(e));
                        }
                        retried = true;
                        hash_as_served = false;
                        continue;
                    }
                    let check = match stream {
                        None => Check::Verified,
                        Some(s) => s
                            .check(within, chunk_len, dest.last(n))
                            .map_err(std::io::Error::other)?,
                    };
                    if let (Check::Verified, Some(s)) = (check, stream) {
                        // A whole chunk in one piece, checked already.
                        self.inner.verified.insert(s.key);
                    }
                    check
                }
            };
            self.pos += n as u64;
            return Ok((n, check));
        }
    }

    /// Positions the reader in chunk `index`; with `stream`, an unverified raw chunk is
    /// hashed as `stream` reads it instead of up front (it reads the chunk to its end).
    fn load(&mut self, index: usize, stream: Option<Method>) -> crate::Result<Loaded> {
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
    fn verify_raw(
        &mut self,
        chunk: &ChunkRef,
        stream: Option<Method>,
    ) -> crate::Result<Option<Loaded>> {
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
        if let Some(method) = stream {
            let next = (method == Method::Read).then_some(0);
            return Ok(Some(Loaded::Raw {
                pack: rec.pack,
                data,
                stream: Some(Stream { key, next }),
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
