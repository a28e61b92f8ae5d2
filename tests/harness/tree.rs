//! Test content: random bytes and files, sizes on disk.

use std::io::Write;
use std::path::Path;

use rand::Rng;

/// `len` random (incompressible) bytes.
pub fn random_bytes(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// Writes `len` random bytes to `path` in 1 MiB pieces; returns their BLAKE3.
pub fn write_random_file(rng: &mut impl Rng, path: &Path, len: u64) -> blake3::Hash {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display())),
    );
    let mut hasher = blake3::Hasher::new();
    let mut piece = vec![0; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(piece.len() as u64)).unwrap_or(piece.len());
        rng.fill_bytes(&mut piece[..n]);
        hasher.update(&piece[..n]);
        file.write_all(&piece[..n])
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        left -= n as u64;
    }
    file.flush()
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    hasher.finalize()
}

/// The sum of the sizes of the regular files under `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
