//! Resumable (staged) uploads: durable progress across writers, drops, reopens and crashes;
//! offsets, length and quota; references held against GC, released on abort; fsck.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use percloud_store::{CommitOptions, Store, StoreError, StoreOptions};
use rand::{Rng, SeedableRng};

fn small_packs() -> StoreOptions {
    StoreOptions {
        pack_target_bytes: 8 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

/// Appends `data[from..to]` in random slices with one writer and finishes it.
fn append(s: &Store, user: u64, id: u64, data: &[u8], from: usize, to: usize, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut w = s.append_staged(user, id, from as u64).unwrap();
    let mut at = from;
    while at < to {
        let n = rng.gen_range(1..=700_000).min(to - at);
        w.write(&data[at..at + n]).unwrap();
        at += n;
    }
    assert_eq!(w.offset(), to as u64);
    assert_eq!(w.finish().unwrap().offset, to as u64);
}

#[test]
fn fifty_mib_across_writers_drops_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), small_packs()).unwrap();
    let u = user(&s, "alice").id;
    let mut data = random_bytes(50, 50 * 1024 * 1024);
    // Some repeated content so dedup within the upload is exercised too.
    let (a, b) = data.split_at_mut(30 * 1024 * 1024);
    b[..5 * 1024 * 1024].copy_from_slice(&a[..5 * 1024 * 1024]);
    let len = data.len();
    let info = s
        .create_staged(u, Some(len as u64), "target=/big.bin")
        .unwrap();
    assert_eq!((info.offset, info.label.as_str()), (0, "target=/big.bin"));
    let id = info.id;

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut offset = 0usize;
    let mut step = 0u64;
    while offset < len {
        step += 1;
        let to = (offset + rng.gen_range(1..9 * 1024 * 1024)).min(len);
        if step == 3 {
            // A connection that dies without finish: nothing it wrote counts.
            let mut w = s.append_staged(u, id, offset as u64).unwrap();
            w.write(&data[offset..to]).unwrap();
            drop(w);
            assert_eq!(s.staged(u, id).unwrap().offset, offset as u64);
        }
        if step == 5 {
            // A restart: the in-memory hasher is gone, commit must re-read.
            drop(s);
            s = Store::open(dir.path(), small_packs()).unwrap();
            assert_eq!(s.staged(u, id).unwrap().offset, offset as u64);
            let report = s.fsck(false).unwrap();
            assert!(report.is_clean(), "{report:?}");
        }
        append(&s, u, id, &data, offset, to, step);
        offset = to;
    }
    let outcome = s
        .commit_staged(u, id, &p("/big.bin"), &CommitOptions::default())
        .unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.entry.size, len as u64);
    assert_eq!(
        outcome.entry.content_hash,
        Some(*blake3::hash(&data).as_bytes())
    );
    assert!(get(&s, u, "/big.bin") == data, "content differs");
    assert!(matches!(
        s.staged(u, id),
        Err(StoreError::StagedNotFound { .. })
    ));
    assert_eq!(s.user("alice").unwrap().unwrap().used, len as u64);
    let report = s.fsck(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0,
        "tail files left behind"
    );
}

#[test]
fn fast_path_hash_and_commit_over_an_existing_file() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    put(&s, u, "/f", b"old");
    let data = random_bytes(3, 6 * 1024 * 1024 + 123);
    let id = s.create_staged(u, None, "").unwrap().id;
    append(&s, u, id, &data, 0, 1000, 1);
    append(&s, u, id, &data, 1000, data.len(), 2);
    let before = s.stat(u, &p("/f")).unwrap();
    let mut options = CommitOptions::default();
    options.precondition.if_match = Some("wrong".into());
    assert!(matches!(
        s.commit_staged(u, id, &p("/f"), &options),
        Err(StoreError::PreconditionFailed { .. })
    ));
    options.precondition.if_match = Some(before.etag);
    let out = s.commit_staged(u, id, &p("/f"), &options).unwrap();
    assert!(!out.created);
    assert_eq!(
        out.entry.content_hash,
        Some(*blake3::hash(&data).as_bytes())
    );
    assert!(get(&s, u, "/f") == data);
    assert_eq!(s.versions(u, &p("/f")).unwrap().len(), 2);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn offsets_length_busy_and_ownership() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let other = user(&s, "bob").id;
    let id = s.create_staged(u, Some(10), "").unwrap().id;
    assert!(matches!(
        s.append_staged(u, id, 3),
        Err(StoreError::OffsetMismatch {
            expected: 3,
            actual: 0,
            ..
        })
    ));
    assert!(matches!(
        s.append_staged(other, id, 0),
        Err(StoreError::StagedNotFound { .. })
    ));
    let mut w = s.append_staged(u, id, 0).unwrap();
    assert!(matches!(
        s.append_staged(u, id, 0),
        Err(StoreError::StagedBusy { .. })
    ));
    assert!(matches!(
        s.commit_staged(u, id, &p("/x"), &CommitOptions::default()),
        Err(StoreError::StagedBusy { .. })
    ));
    w.write(b"hello").unwrap();
    assert!(matches!(
        w.write(b"world!"),
        Err(StoreError::BeyondLength { length: 10, .. })
    ));
    assert_eq!(w.finish().unwrap().offset, 5);
    assert!(matches!(
        s.commit_staged(u, id, &p("/x"), &CommitOptions::default()),
        Err(StoreError::OffsetMismatch { .. })
    ));
    let mut w = s.append_staged(u, id, 5).unwrap();
    w.write(b"world").unwrap();
    w.finish().unwrap();
    s.commit_staged(u, id, &p("/x"), &CommitOptions::default())
        .unwrap();
    assert_eq!(get(&s, u, "/x"), b"helloworld");
    assert!(matches!(
        s.commit_staged(u, id, &p("/x"), &CommitOptions::default()),
        Err(StoreError::StagedNotFound { .. })
    ));
}

#[test]
fn quota_is_enforced() {
    let (_d, s) = store();
    let u = s.create_user("alice", "h", Some(1_000_000)).unwrap().id;
    assert!(matches!(
        s.create_staged(u, Some(2_000_000), ""),
        Err(StoreError::QuotaExceeded { .. })
    ));
    let id = s.create_staged(u, None, "").unwrap().id;
    let mut w = s.append_staged(u, id, 0).unwrap();
    w.write(&random_bytes(1, 900_000)).unwrap();
    assert!(matches!(
        w.write(&random_bytes(2, 200_000)),
        Err(StoreError::QuotaExceeded { .. })
    ));
    w.finish().unwrap();
    // Quota is checked again at commit against what is used then.
    put(&s, u, "/other", &random_bytes(3, 500_000));
    assert!(matches!(
        s.commit_staged(u, id, &p("/f"), &CommitOptions::default()),
        Err(StoreError::QuotaExceeded { .. })
    ));
}

#[test]
fn gc_keeps_staged_chunks_and_abort_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), small_packs()).unwrap();
    let u = user(&s, "alice").id;
    let data = random_bytes(9, 20 * 1024 * 1024);
    let id = s.create_staged(u, None, "").unwrap().id;
    append(&s, u, id, &data, 0, 12 * 1024 * 1024, 1);
    s.gc().unwrap();
    let report = s.fsck(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(s.stats().unwrap().chunks > 0);
    append(&s, u, id, &data, 12 * 1024 * 1024, data.len(), 2);
    s.gc().unwrap();
    s.commit_staged(u, id, &p("/f"), &CommitOptions::default())
        .unwrap();
    assert!(get(&s, u, "/f") == data);

    let id = s.create_staged(u, None, "").unwrap().id;
    let other = random_bytes(10, 12 * 1024 * 1024);
    append(&s, u, id, &other, 0, other.len(), 3);
    let with = s.stats().unwrap().unique_bytes;
    s.abort_staged(u, id).unwrap();
    assert!(matches!(
        s.staged(u, id),
        Err(StoreError::StagedNotFound { .. })
    ));
    let gc = s.gc().unwrap();
    assert!(gc.chunks_removed > 0, "{gc:?}");
    assert!(s.stats().unwrap().unique_bytes < with);
    assert_eq!(s.stats().unwrap().unique_bytes, data.len() as u64);
    assert!(s.fsck(false).unwrap().is_clean());
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn expiry_and_user_removal_drop_staged_uploads() {
    let (d, s) = store();
    let _owner = user(&s, "owner");
    let u = user(&s, "alice").id;
    let id = s.create_staged(u, None, "").unwrap().id;
    append(&s, u, id, &random_bytes(1, 100_000), 0, 100_000, 1);
    // expire() leaves staged uploads alone.
    s.expire(SystemTime::now() + Duration::from_secs(400 * 86_400))
        .unwrap();
    assert_eq!(s.staged(u, id).unwrap().offset, 100_000);
    assert_eq!(s.expire_staged(SystemTime::UNIX_EPOCH).unwrap(), 0);
    assert_eq!(
        s.expire_staged(SystemTime::now() + Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(s.staged(u, id).is_err());
    let id = s.create_staged(u, None, "").unwrap().id;
    append(&s, u, id, &random_bytes(2, 100_000), 0, 100_000, 2);
    s.remove_user("alice").unwrap();
    s.gc().unwrap();
    assert_eq!(s.stats().unwrap().chunks, 0);
    assert!(s.fsck(false).unwrap().is_clean());
    assert_eq!(
        std::fs::read_dir(d.path().join("staging")).unwrap().count(),
        0
    );
}

const CHILD_ENV: &str = "PERCLOUD_STAGED_CRASH_CHILD";
const CRASH_LEN: usize = 64 * 1024 * 1024;

/// Not a test on its own: the child the crash test kills.
#[test]
fn staged_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = Store::open(std::path::Path::new(&dir), small_packs()).unwrap();
    let u = s.user("alice").unwrap().unwrap().id;
    let id: u64 = std::env::var("STAGED_ID").unwrap().parse().unwrap();
    let data = random_bytes(77, CRASH_LEN);
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id().into());
    let mut out = std::io::stdout();
    loop {
        let offset = s.staged(u, id).unwrap().offset as usize;
        if offset == CRASH_LEN {
            return;
        }
        let to = (offset + rng.gen_range(1..3 * 1024 * 1024)).min(CRASH_LEN);
        let mut w = s.append_staged(u, id, offset as u64).unwrap();
        let mut at = offset;
        while at < to {
            let n = rng.gen_range(1..200_000).min(to - at);
            w.write(&data[at..at + n]).unwrap();
            at += n;
        }
        w.finish().unwrap();
        writeln!(out, "ack {to}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn killed_during_appends_resumes_from_the_recorded_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (u, id) = {
        let s = Store::open(dir.path(), small_packs()).unwrap();
        let u = user(&s, "alice").id;
        (
            u,
            s.create_staged(u, Some(CRASH_LEN as u64), "").unwrap().id,
        )
    };
    let exe = std::env::current_exe().unwrap();
    let mut acked = 0u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "staged_crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("STAGED_ID", id.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wait = Duration::from_millis(150 + 50 * round);
        let started = Instant::now();
        while started.elapsed() < wait {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) = line.strip_prefix("ack ") {
                        acked = n.parse().unwrap();
                    }
                }
                _ => break,
            }
        }
        child.kill().ok();
        child.wait().unwrap();
        let s = Store::open(dir.path(), small_packs()).unwrap();
        let offset = s.staged(u, id).unwrap().offset;
        assert!(offset >= acked, "acknowledged {acked}, recorded {offset}");
        eprintln!("round {round}: acknowledged {acked}, recorded {offset}");
        let report = s.fsck(false).unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
    }
    let s = Store::open(dir.path(), small_packs()).unwrap();
    let data = random_bytes(77, CRASH_LEN);
    let offset = s.staged(u, id).unwrap().offset as usize;
    if offset < CRASH_LEN {
        append(&s, u, id, &data, offset, CRASH_LEN, 5);
    }
    let out = s
        .commit_staged(u, id, &p("/crash.bin"), &CommitOptions::default())
        .unwrap();
    assert_eq!(
        out.entry.content_hash,
        Some(*blake3::hash(&data).as_bytes())
    );
    assert!(get(&s, u, "/crash.bin") == data);
    assert!(s.fsck(false).unwrap().is_clean());
}

/// What the Nextcloud chunked upload relies on: the label changes with the offset, the bytes
/// read back in order, the checksum kept with the version, folder sizes.
#[test]
fn labels_read_back_checksums_and_folder_sizes() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let data = random_bytes(4, 3 * 1024 * 1024 + 7);
    let id = s
        .create_staged(u, Some(data.len() as u64), "start")
        .unwrap()
        .id;
    let mut w = s.append_staged(u, id, 0).unwrap();
    w.write(&data[..1_000_000]).unwrap();
    w.set_label("one chunk".into());
    w.finish().unwrap();
    // A writer dropped without finish leaves offset and label as they were.
    let mut w = s.append_staged(u, id, 1_000_000).unwrap();
    w.write(&data[1_000_000..1_500_000]).unwrap();
    w.set_label("lost".into());
    drop(w);
    let info = s.staged(u, id).unwrap();
    assert_eq!((info.offset, info.label.as_str()), (1_000_000, "one chunk"));
    assert_eq!(s.staged_uploads(u).unwrap(), vec![info]);
    let mut w = s.append_staged(u, id, 1_000_000).unwrap();
    w.write(&data[1_000_000..]).unwrap();
    w.finish().unwrap();
    let mut back = Vec::new();
    s.read_staged(u, id, &mut |b| back.extend_from_slice(b))
        .unwrap();
    assert!(back == data);

    s.mkdir(u, &p("/d")).unwrap();
    s.mkdir(u, &p("/d/e")).unwrap();
    let options = CommitOptions {
        checksum: Some("SHA1:0123".into()),
        ..CommitOptions::default()
    };
    let out = s.commit_staged(u, id, &p("/d/e/f"), &options).unwrap();
    assert_eq!(out.entry.checksum.as_deref(), Some("SHA1:0123"));
    put(&s, u, "/d/g", b"four");
    let reopened = s.stat(u, &p("/d/e/f")).unwrap();
    assert_eq!(reopened.checksum.as_deref(), Some("SHA1:0123"));
    assert_eq!(
        s.versions(u, &p("/d/e/f")).unwrap()[0].checksum.as_deref(),
        Some("SHA1:0123")
    );
    assert_eq!(s.stat(u, &p("/d/g")).unwrap().checksum, None);
    assert_eq!(s.tree_size(u, &p("/d")).unwrap(), data.len() as u64 + 4);
    assert_eq!(s.tree_size(u, &p("/")).unwrap(), data.len() as u64 + 4);
    assert_eq!(s.tree_size(u, &p("/d/g")).unwrap(), 4);
    assert!(s.staged_uploads(u).unwrap().is_empty());
}
