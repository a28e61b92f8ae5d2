//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Read;

use percloud_store::{CommitOptions, Entry, Store, StoreOptions, StorePath, User};
use rand::{Rng, RngCore, SeedableRng};

pub fn p(s: &str) -> StorePath {
    StorePath::parse(s).unwrap()
}

pub fn store() -> (tempfile::TempDir, Store) {
    store_with(StoreOptions::default())
}

pub fn store_with(options: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    (dir, store)
}

pub fn user(store: &Store, name: &str) -> User {
    store.create_user(name, "$argon2id$fake", None).unwrap()
}

pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

/// Uploads `data` in random slice sizes.
pub fn put(store: &Store, user: u64, path: &str, data: &[u8]) -> Entry {
    put_with(store, user, path, data, &CommitOptions::default()).unwrap()
}

pub fn put_with(
    store: &Store,
    user: u64,
    path: &str,
    data: &[u8],
    options: &CommitOptions,
) -> percloud_store::Result<Entry> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(data.len() as u64);
    let mut upload = store.begin_upload(user, Some(data.len() as u64))?;
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.gen_range(1..=200_000).min(rest.len());
        upload.write(&rest[..n])?;
        rest = &rest[n..];
    }
    assert_eq!(upload.len(), data.len() as u64);
    Ok(upload.commit(&p(path), options)?.entry)
}

pub fn get(store: &Store, user: u64, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_file(user, &p(path))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}
