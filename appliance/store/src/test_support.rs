//! Helpers shared by the crate's unit tests.
#![allow(clippy::unwrap_used)]

use crate::{Store, StorePath};

pub(crate) fn p(s: &str) -> StorePath {
    StorePath::parse(s).unwrap()
}

/// The whole content of the file at `path`.
pub(crate) fn read(store: &Store, user: u64, path: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    store
        .open_file(user, &p(path))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `len` bytes that look random (xorshift, so a failure reproduces from its seed).
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
