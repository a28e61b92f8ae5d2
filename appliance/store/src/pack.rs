//! The byte layout of pack files and of the self-describing entries inside them.
//!
//! ```text
//! pack   = header entry*
//! header = "PERCPACK" (8) | format u8 (=1) | zero (7)                       16 bytes
//! entry  = "PCHK" (4) | format u8 (=1) | compression u8 | zero (2)
//!          | plain_len u32 LE | stored_len u32 LE | blake3(plaintext) (32)  48 bytes
//!          | stored bytes (stored_len)
//! ```

use crate::compressibility;
use crate::compressors::Compressors;
use crate::records::ChunkHash;
use crate::{Result, StoreError};

pub(crate) const PACK_MAGIC: &[u8; 8] = b"PERCPACK";
pub(crate) const PACK_FORMAT: u8 = 1;
pub(crate) const PACK_HEADER_LEN: u64 = 16;
pub(crate) const ENTRY_MAGIC: &[u8; 4] = b"PCHK";
pub(crate) const ENTRY_FORMAT: u8 = 1;
pub(crate) const ENTRY_HEADER_LEN: usize = 48;

/// How a chunk's bytes are stored.
pub(crate) const COMPRESSION_NONE: u8 = 0;
pub(crate) const COMPRESSION_ZSTD: u8 = 1;

/// zstd level for chunks.
pub(crate) const ZSTD_LEVEL: i32 = 3;

pub(crate) fn pack_header() -> [u8; PACK_HEADER_LEN as usize] {
    let mut h = [0u8; PACK_HEADER_LEN as usize];
    h[..8].copy_from_slice(PACK_MAGIC);
    h[8] = PACK_FORMAT;
    h
}

/// The fixed header in front of each chunk's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub compression: u8,
    pub plain_len: u32,
    pub stored_len: u32,
    pub hash: ChunkHash,
}

impl EntryHeader {
    pub fn encode(&self) -> [u8; ENTRY_HEADER_LEN] {
        let mut h = [0u8; ENTRY_HEADER_LEN];
        h[..4].copy_from_slice(ENTRY_MAGIC);
        h[4] = ENTRY_FORMAT;
        h[5] = self.compression;
        h[8..12].copy_from_slice(&self.plain_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.stored_len.to_le_bytes());
        h[16..48].copy_from_slice(&self.hash);
        h
    }

    pub fn decode(bytes: &[u8], what: impl Fn() -> String) -> Result<Self> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            what: what(),
            detail: detail.to_owned(),
        };
        if bytes.len() < ENTRY_HEADER_LEN {
            return Err(corrupt("entry header truncated"));
        }
        if &bytes[..4] != ENTRY_MAGIC {
            return Err(corrupt("bad entry magic"));
        }
        if bytes[4] != ENTRY_FORMAT {
            return Err(StoreError::UnsupportedFormat {
                what: "pack entry",
                found: bytes[4],
                supported: ENTRY_FORMAT,
            });
        }
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[16..48]);
        let header = EntryHeader {
            compression: bytes[5],
            plain_len: u32_at(8),
            stored_len: u32_at(12),
            hash,
        };
        if header.compression > COMPRESSION_ZSTD {
            return Err(corrupt("unknown compression"));
        }
        Ok(header)
    }

    /// Bytes the whole entry takes in the pack.
    pub fn entry_len(&self) -> u64 {
        ENTRY_HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// Compresses a chunk when that pays (compressed < 97% of raw); returns (compression, bytes).
/// Chunks whose sampled bytes look random are stored raw without trying.
pub(crate) fn encode_chunk<'a>(
    compressors: &Compressors,
    plain: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> std::io::Result<(u8, &'a [u8])> {
    if !compressibility::worth_compressing(plain) {
        return Ok((COMPRESSION_NONE, plain));
    }
    scratch.clear();
    scratch.reserve(zstd::zstd_safe::compress_bound(plain.len()));
    let compressed = compressors.with(|c| c.compress_to_buffer(plain, scratch))?;
    Ok(match compressed {
        Ok(n) if (n as u64) * 100 < (plain.len() as u64) * 97 => (COMPRESSION_ZSTD, &scratch[..n]),
        _ => (COMPRESSION_NONE, plain),
    })
}

/// Turns stored bytes back into the plaintext and checks its hash.
pub(crate) fn decode_chunk(
    decompressor: &mut zstd::bulk::Decompressor<'static>,
    header: &EntryHeader,
    stored: &[u8],
    what: impl Fn() -> String,
) -> Result<Vec<u8>> {
    let plain = match header.compression {
        COMPRESSION_NONE => stored.to_vec(),
        _ => decompressor
            .decompress(stored, header.plain_len as usize)
            .map_err(|e| StoreError::Corrupt {
                what: what(),
                detail: format!("cannot decompress: {e}"),
            })?,
    };
    if plain.len() != header.plain_len as usize || *blake3::hash(&plain).as_bytes() != header.hash {
        return Err(StoreError::Corrupt {
            what: what(),
            detail: "content does not match its hash".to_owned(),
        });
    }
    Ok(plain)
}

/// Lower-case hex. A table lookup per nibble, not `format!`: a PROPFIND of 10,000 files
/// makes an ETag per entry, and the formatting machinery cost ~2,500 instructions each.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Bytes first: `String::push` encodes each char as UTF-8, and a PROPFIND formats an ETag
    // for every entry it lists.
    let mut digits = vec![0u8; bytes.len() * 2];
    for (pair, &b) in digits.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    String::from_utf8(digits).expect("hex digits are ASCII")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn header_round_trip() {
        let h = EntryHeader {
            compression: COMPRESSION_ZSTD,
            plain_len: 1 << 20,
            stored_len: 12345,
            hash: [7; 32],
        };
        let bytes = h.encode();
        assert_eq!(EntryHeader::decode(&bytes, String::new).unwrap(), h);
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(EntryHeader::decode(&bad, String::new).is_err());
    }

    #[test]
    fn incompressible_is_stored_raw() {
        let c = Compressors::keeping(1);
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let mut scratch = Vec::new();
        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let text = b"hello hello hello hello hello hello hello".repeat(1000);
        for (plain, expect) in [(&random[..], None), (&text[..], Some(COMPRESSION_ZSTD))] {
            let (comp, stored) = encode_chunk(&c, plain, &mut scratch).unwrap();
            if let Some(e) = expect {
                assert_eq!(comp, e);
            }
            let header = EntryHeader {
                compression: comp,
                plain_len: plain.len() as u32,
                stored_len: stored.len() as u32,
                hash: *blake3::hash(plain).as_bytes(),
            };
            let stored = stored.to_vec();
            assert_eq!(
                decode_chunk(&mut d, &header, &stored, String::new).unwrap(),
                plain
            );
        }
    }
}
