//! The running SHA-1 of uploads, kept in memory while the daemon lives so the final MOVE
//! need not read the bytes back (after a restart it does, once).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};

use percloud_dav::Sha1;
use percloud_store::{StagedId, Store};

/// SHA-1 states kept at most (an upload beyond it is re-read at the MOVE).
const MAX_HASHERS: usize = 1024;

/// By (data folder, staged id): the offset the state covers and the state.
type Hashers = HashMap<(PathBuf, StagedId), (u64, Sha1)>;
static HASHERS: LazyLock<Mutex<Hashers>> = LazyLock::new(Mutex::default);

fn hashers() -> MutexGuard<'static, Hashers> {
    HASHERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state of upload `id` if it covers exactly `offset` bytes; forgotten either way.
pub(super) fn take_hasher(store: &Store, id: StagedId, offset: u64) -> Option<Sha1> {
    let key = (store.data_dir().to_owned(), id);
    match hashers().remove(&key) {
        Some((at, sha)) if at == offset => Some(sha),
        _ => None,
    }
}

pub(super) fn keep_hasher(store: &Store, id: StagedId, offset: u64, sha: Sha1) {
    let mut map = hashers();
    if map.len() >= MAX_HASHERS {
        map.clear();
    }
    map.insert((store.data_dir().to_owned(), id), (offset, sha));
}
