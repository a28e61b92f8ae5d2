//! A download split in two: [`crate::FileReader::read_piece`] reads pieces from the packs,
//! and a [`Verifier`] releases them, hashing on the way the raw chunks that are read from
//! their start. The two may run on different threads (reading the next piece while the
//! last one is hashed); the integrity rule holds either way, because bytes leave only through
//! [`Verifier::release`], in order, and the piece that would complete a chunk whose hash does
//! not match is refused — and so is everything after it.

use std::sync::Arc;

use crate::StoreError;
use crate::inner::Inner;
use crate::pack;
use crate::records::ChunkHash;

/// A raw chunk's identity in the verified set: (pack, entry offset, hash).
pub(crate) type ChunkKey = (u64, u64, ChunkHash);

/// Bytes read from a file, not yet released: [`Verifier::release`] gives them out.
#[derive(Debug)]
pub struct Piece {
    bytes: Vec<u8>,
    check: Check,
}

/// What releasing a piece requires.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Verified already: up front, earlier in this process, or by decompression.
    Verified,
    /// Part of a raw chunk read from its start: `at` is the piece's offset in the chunk,
    /// `len` the chunk's length. Hashed on release; the piece ending at `len` is released
    /// only when the chunk's hash matches.
    Stream { key: ChunkKey, at: u64, len: u64 },
}

impl Piece {
    pub(crate) fn new(bytes: Vec<u8>, check: Check) -> Piece {
        Piece { bytes, check }
    }

    /// Bytes in the piece.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Releases the pieces of one reader, in the order they were read. After a refusal it
/// refuses everything.
pub struct Verifier {
    inner: Arc<Inner>,
    hashing: Option<Hashing>,
    failed: bool,
}

/// The chunk being hashed as it is released.
struct Hashing {
    key: ChunkKey,
    hasher: blake3::Hasher,
    /// Bytes of the chunk hashed so far.
    done: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hashing", &self.hashing.as_ref().map(|h| h.done))
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub(crate) fn new(inner: Arc<Inner>) -> Verifier {
        Verifier {
            inner,
            hashing: None,
            failed: false,
        }
    }

    /// The piece's bytes, when they may be served: the piece that completes a raw chunk is
    /// refused if the chunk's hash does not match, and so is every piece after a refusal.
    pub fn release(&mut self, piece: Piece) -> std::io::Result<Vec<u8>> {
        self.check(piece.check, &piece.bytes)?;
        Ok(piece.bytes)
    }

    /// Checks `bytes`, read under `check`, in order.
    pub(crate) fn check(&mut self, check: Check, bytes: &[u8]) -> std::io::Result<()> {
        if self.failed {
            return Err(refused("a piece before this one failed verification"));
        }
        let result = self.hash(check, bytes);
        self.failed = result.is_err();
        result.map_err(std::io::Error::other)
    }

    fn hash(&mut self, check: Check, bytes: &[u8]) -> crate::Result<()> {
        let Check::Stream { key, at, len } = check else {
            return Ok(());
        };
        if at == 0 {
            // A chunk starts; one left unfinished was served verified (a seek moved on).
            self.hashing = Some(Hashing {
                key,
                hasher: blake3::Hasher::new(),
                done: 0,
            });
        }
        let Some(h) = self
            .hashing
            .as_mut()
            .filter(|h| h.key == key && h.done == at)
        else {
            return Err(corrupt(&key, "piece released out of order"));
        };
        h.hasher.update(bytes);
        h.done += bytes.len() as u64;
        if h.done < len {
            return Ok(());
        }
        let sound = h.done == len && *h.hasher.finalize().as_bytes() == key.2;
        self.hashing = None;
        if !sound {
            return Err(corrupt(&key, "content does not match its hash"));
        }
        self.inner.verified.insert(key);
        Ok(())
    }
}

fn corrupt(key: &ChunkKey, detail: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("chunk {}", pack::hex(&key.2)),
        detail: detail.to_owned(),
    }
}

fn refused(detail: &str) -> std::io::Error {
    std::io::Error::other(StoreError::Corrupt {
        what: "download".to_owned(),
        detail: detail.to_owned(),
    })
}
