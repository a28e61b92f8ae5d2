//! Commits many small files from several threads and prints files per second: the store's
//! part of benchmark workload (3) without HTTP. Stable instruction counts under callgrind:
//!
//! ```sh
//! cargo run --release -p percloud-store --example small_commits -- 2000 4
//! valgrind --tool=callgrind target/release/examples/small_commits 500 1
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use percloud_store::{CommitOptions, Store, StoreOptions, StorePath};

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(2000, |a| a.parse().expect("count"));
    let threads: usize = args.next().map_or(4, |a| a.parse().expect("threads"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let user = store
        .create_user("bench", "$argon2id$fake", None)
        .expect("user");
    store
        .mkdir(user.id, &StorePath::parse("/small").expect("path"))
        .expect("mkdir");
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store: &Store = &store;
            s.spawn(move || {
                let mut data = vec![0u8; 4096];
                for i in (t..count).step_by(threads) {
                    // Fresh bytes for every file (no dedup).
                    data[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    data[8..16].copy_from_slice(&0x9e37_79b9_7f4a_7c15u64.to_le_bytes());
                    let mut upload = store.begin_upload(user.id, Some(4096)).expect("begin");
                    upload.write(&data).expect("write");
                    let path = StorePath::parse(&format!("/small/f{i:05}.bin")).expect("path");
                    upload
                        .commit(&path, &CommitOptions::default())
                        .expect("commit");
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} files, {threads} threads: {:.0} files/s ({:.0} us/file)",
        count as f64 / secs,
        secs * 1e6 / count as f64
    );
    let listed = Instant::now();
    let n = store
        .list(user.id, &StorePath::parse("/small").expect("path"))
        .expect("list")
        .len();
    println!(
        "list of {n}: {:.2} ms",
        listed.elapsed().as_secs_f64() * 1e3
    );
}
