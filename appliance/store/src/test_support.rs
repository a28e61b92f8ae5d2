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
