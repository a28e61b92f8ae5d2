//! A quick guess whether a chunk is worth handing to zstd.
//!
//! Photos, videos and archives, most of what a personal cloud holds by size, are compressed
//! already; zstd spends its matching and entropy passes on every one of their chunks only to
//! store them raw (the store keeps a compressed chunk only under 97% of its size). An order-0
//! entropy estimate over a sample of the chunk's bytes costs a small fraction of that pass and
//! recognises such data. What it cannot see is repetition of high-entropy bytes within one
//! chunk (the same JPEG twice in a tarball); whole repeated files are deduplicated by content
//! anyway, so only repeats shorter than a chunk are stored uncompressed.

/// Chunks shorter than this always go to zstd: the estimate needs enough bytes to mean
/// anything, and compressing them costs little.
const MIN_LEN: usize = 1024;

/// Bytes sampled: evenly spaced windows of [`WINDOW`] bytes, half of the chunk but at least
/// [`MIN_SAMPLE`] (random bytes estimate at ~7.8 bits from 1 KiB, ~7.9 from 2 KiB: the
/// estimate is biased low on few samples) and at most [`MAX_SAMPLE`].
const MIN_SAMPLE: usize = 1024;
const MAX_SAMPLE: usize = 16 * 1024;
const WINDOW: usize = 64;

/// Above this many bits a byte, zstd's entropy coding cannot reach 97%: Huffman-coded literals
/// take about the entropy, and 7.76 bits is 97% of 8. Text estimates at 4-6 bits.
const INCOMPRESSIBLE_BITS: f32 = 7.6;

/// Whether zstd should try `data`; false only when its sampled bytes look random.
pub(crate) fn worth_compressing(data: &[u8]) -> bool {
    if data.len() < MIN_LEN {
        return true;
    }
    let sample = (data.len() / 2)
        .clamp(MIN_SAMPLE, MAX_SAMPLE)
        .min(data.len());
    let windows = sample / WINDOW;
    let stride = data.len() / windows;
    let mut counts = [0u32; 256];
    for i in 0..windows {
        for &b in &data[i * stride..i * stride + WINDOW] {
            counts[usize::from(b)] += 1;
        }
    }
    entropy_bits(&counts, windows * WINDOW) < INCOMPRESSIBLE_BITS
}

/// Shannon entropy of the byte distribution, in bits per byte: log2(n) - sum(c log2 c) / n.
fn entropy_bits(counts: &[u32; 256], total: usize) -> f32 {
    let sum: f32 = counts
        .iter()
        .filter(|&&c| c > 1)
        .map(|&c| c as f32 * log2(c as f32))
        .sum();
    log2(total as f32) - sum / total as f32
}

/// log2 of a positive normal float, within 0.005: the exponent plus a quadratic fit of
/// 1 + log2 of the mantissa. libm's exact log2 cost more than the rest of the estimate together.
fn log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as f32 - 128.0;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // in [1, 2)
    exponent + (-0.344_848_43 * m + 2.024_665_8) * m - 0.674_877_6
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::test_support::noise;

    #[test]
    fn log2_is_close() {
        for x in [1.0f32, 1.5, 2.0, 3.0, 7.0, 100.0, 4096.0, 12345.0, 16384.0] {
            assert!((log2(x) - x.log2()).abs() < 0.005, "{x}");
        }
    }

    #[test]
    fn random_bytes_are_not_worth_it() {
        for len in [
            MIN_LEN,
            1500,
            2047,
            4096,
            64 * 1024,
            1 << 20,
            (1 << 20) + 12345,
        ] {
            assert!(
                !worth_compressing(&noise(len as u64, len)),
                "{len} random bytes"
            );
        }
    }

    #[test]
    fn text_zeros_and_small_chunks_go_to_zstd() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(30_000);
        assert!(worth_compressing(text.as_bytes()));
        assert!(worth_compressing(&vec![0u8; 1 << 20]));
        assert!(worth_compressing(&noise(9, MIN_LEN - 1)));
        assert!(worth_compressing(&[]));
    }

    #[test]
    fn random_bytes_with_a_compressible_half_go_to_zstd() {
        // Half zeros: zstd stores it in about half the size, and the estimate sees ~5 bits.
        let mut data = noise(3, 1 << 20);
        data[..1 << 19].fill(0);
        assert!(worth_compressing(&data));
    }

    #[test]
    fn what_the_guess_skips_zstd_would_have_stored_raw() {
        let mut zstd = zstd::bulk::Compressor::new(crate::pack::ZSTD_LEVEL).unwrap();
        for (len, seed) in [(4096, 1), (256 * 1024, 2), (1 << 20, 3)] {
            let data = noise(seed, len);
            assert!(!worth_compressing(&data));
            let compressed = zstd.compress(&data).unwrap();
            assert!(
                compressed.len() * 100 >= data.len() * 97,
                "{len}: zstd would have kept it"
            );
        }
    }
}
