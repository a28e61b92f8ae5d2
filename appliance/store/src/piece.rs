//! A download in pieces: [`crate::FileReader::read_piece`] reads them from the packs, and a
//! [`Verifier`] releases them in order. A raw chunk that the download reads to its end and
//! that is not verified yet is hashed piece by piece: each [`PIECE_LEN`]-aligned piece as
//! its own BLAKE3 subtree by the thread that read it (so two threads reading alternate pieces
//! hash in parallel), and the verifier merges the subtrees' chaining values in order and
//! refuses the piece that would complete the chunk when the root does not match its hash —
//! and everything after it. `Read` uses the same verifier, hashing in order on release.

use std::sync::Arc;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::StoreError;
use crate::inner::Inner;
use crate::pack;
use crate::records::ChunkHash;

/// Bytes of a piece of a raw chunk hashed as one BLAKE3 subtree: a power of two, a whole
/// number of BLAKE3 chunks (1 KiB), so every piece starting at a multiple of it is a subtree
/// of the chunk's hash tree. Pieces that [`crate::FileReader::read_piece`] reads are at most
/// this long.
pub const PIECE_LEN: usize = 128 * 1024;

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
    /// Part of a raw chunk read from its start, in order: `at` is the piece's offset in the
    /// chunk, `len` the chunk's length. Hashed on release; the piece ending at `len` is
    /// released only when the chunk's hash matches.
    InOrder { key: ChunkKey, at: u64, len: u64 },
    /// A [`PIECE_LEN`]-aligned piece of a raw chunk, hashed as a subtree when it was read
    /// (`cv`); the piece ending at `len` is released only when the merged root matches.
    Subtree {
        key: ChunkKey,
        at: u64,
        len: u64,
        cv: ChainingValue,
    },
}

impl Check {
    /// The check for `bytes`, read at `at` of a raw chunk of `len` bytes that is read to its
    /// end: a piece that is the whole chunk is verified at once, any other is hashed as its
    /// subtree (`at` must be a multiple of [`PIECE_LEN`], `bytes` at most that long).
    pub(crate) fn subtree(key: ChunkKey, at: u64, len: u64, bytes: &[u8]) -> crate::Result<Check> {
        if at == 0 && bytes.len() as u64 == len {
            if *blake3::hash(bytes).as_bytes() != key.2 {
                return Err(corrupt(&key, "content does not match its hash"));
            }
            return Ok(Check::Verified);
        }
        if !at.is_multiple_of(PIECE_LEN as u64) || bytes.is_empty() || bytes.len() > PIECE_LEN {
            return Err(corrupt(&key, "piece not aligned to its subtree"));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(at);
        hasher.update(bytes);
        Ok(Check::Subtree {
            key,
            at,
            len,
            cv: hasher.finalize_non_root(),
        })
    }
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

/// Releases a download's pieces (of one reader and its forks) in file order. After a refusal
/// it refuses everything.
pub struct Verifier {
    inner: Arc<Inner>,
    hashing: Option<Hashing>,
    failed: bool,
}

/// The chunk being verified as its pieces are released.
struct Hashing {
    key: ChunkKey,
    state: State,
    /// Bytes of the chunk released so far.
    done: u64,
}

enum State {
    /// Hashing the bytes in order ([`Check::InOrder`]).
    InOrder(Box<blake3::Hasher>),
    /// The pieces' subtree chaining values so far ([`Check::Subtree`]).
    Subtrees(Vec<ChainingValue>),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("done", &self.hashing.as_ref().map(|h| h.done))
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
        let (key, at, len) = match check {
            Check::Verified => return Ok(()),
            Check::InOrder { key, at, len } | Check::Subtree { key, at, len, .. } => (key, at, len),
        };
        if at == 0 {
            // A chunk starts; one left unfinished was served verified (a seek moved on).
            let state = match check {
                Check::InOrder { .. } => State::InOrder(Box::default()),
                _ => State::Subtrees(Vec::new()),
            };
            self.hashing = Some(Hashing {
                key,
                state,
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
        match (&mut h.state, check) {
            (State::InOrder(hasher), Check::InOrder { .. }) => {
                hasher.update(bytes);
            }
            (State::Subtrees(cvs), Check::Subtree { cv, .. }) => cvs.push(cv),
            _ => return Err(corrupt(&key, "pieces of one chunk checked two ways")),
        }
        h.done += bytes.len() as u64;
        if h.done < len {
            return Ok(());
        }
        let sound = h.done == len
            && match &h.state {
                State::InOrder(hasher) => *hasher.finalize().as_bytes() == key.2,
                State::Subtrees(cvs) => root_of(cvs, len) == Some(key.2),
            };
        self.hashing = None;
        if !sound {
            return Err(corrupt(&key, "content does not match its hash"));
        }
        self.inner.verified.insert(key);
        Ok(())
    }
}

/// The BLAKE3 hash of `len` bytes (more than one piece) from the chaining values of their
/// [`PIECE_LEN`] pieces, in order; `None` when their number does not fit `len`.
fn root_of(cvs: &[ChainingValue], len: u64) -> Option<[u8; 32]> {
    if len <= PIECE_LEN as u64 || cvs.len() as u64 != len.div_ceil(PIECE_LEN as u64) {
        return None;
    }
    // The tree splits at the largest power-of-two number of BLAKE3 chunks below the
    // length: past one piece that is a whole number of pieces, so pieces are its leaves.
    let left = left_subtree_len(len);
    let (l, r) = cvs.split_at((left / PIECE_LEN as u64) as usize);
    let root = merge_subtrees_root(&subtree_of(l, left), &subtree_of(r, len - left), Mode::Hash);
    Some(*root.as_bytes())
}

/// The chaining value of the subtree of `len` bytes whose pieces have `cvs`.
fn subtree_of(cvs: &[ChainingValue], len: u64) -> ChainingValue {
    if cvs.len() <= 1 {
        return cvs.first().copied().unwrap_or_default();
    }
    let left = left_subtree_len(len);
    let (l, r) = cvs.split_at((left / PIECE_LEN as u64) as usize);
    merge_subtrees_non_root(&subtree_of(l, left), &subtree_of(r, len - left), Mode::Hash)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces hashed as subtrees and merged give BLAKE3 of the whole, at every shape of tree:
    /// two pieces, a power of two of them, one byte more or less, a short last BLAKE3 chunk.
    #[test]
    fn merged_subtrees_are_the_hash_of_the_whole() {
        let data: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let p = PIECE_LEN;
        for len in [
            p + 1,
            2 * p - 1,
            2 * p,
            2 * p + 1,
            3 * p + 5,
            4 * p,
            5 * p + 1023,
            7 * p + 1024,
            17 * p + 3,
            32 * p - 1,
            32 * p,
        ] {
            let whole = &data[..len];
            let key = (1, 2, *blake3::hash(whole).as_bytes());
            let cvs: Vec<ChainingValue> = whole
                .chunks(p)
                .enumerate()
                .map(
                    |(i, piece)| match Check::subtree(key, (i * p) as u64, len as u64, piece) {
                        Ok(Check::Subtree { cv, .. }) => cv,
                        other => panic!("{other:?}"),
                    },
                )
                .collect();
            assert_eq!(root_of(&cvs, len as u64), Some(key.2), "{len} bytes");
            // One piece missing or one too many: no root.
            assert_eq!(root_of(&cvs[1..], len as u64), None);
        }
        // A whole chunk in one piece is checked at once.
        let key = (1, 2, *blake3::hash(&data[..1000]).as_bytes());
        assert!(matches!(
            Check::subtree(key, 0, 1000, &data[..1000]),
            Ok(Check::Verified)
        ));
        assert!(Check::subtree(key, 0, 1000, &data[1..1001]).is_err());
        // Misaligned pieces are refused, never hashed as something else.
        assert!(Check::subtree(key, 1024, 3 * p as u64, &data[..p]).is_err());
        assert!(Check::subtree(key, p as u64, 3 * p as u64, &data[..p + 1]).is_err());
    }
}
