//! GC, compaction (also while serving), fsck and repair.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use percloud_store::{StoreOptions, StoreStats};

fn small_packs() -> StoreOptions {
    StoreOptions {
        pack_target_bytes: 4 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

#[test]
fn gc_reclaims_and_compaction_keeps_live_files() {
    let (_d, s) = store_with(small_packs());
    let u = user(&s, "alice").id;
    let files: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(100 + i, 5_000_000)).collect();
    for (i, f) in files.iter().enumerate() {
        put(&s, u, &format!("/f{i}"), f);
    }
    // Nothing to do on a tidy store.
    let before: StoreStats = s.stats().unwrap();
    assert_eq!(s.gc().unwrap().chunks_removed, 0);
    for i in [1, 2, 4] {
        s.delete(u, &p(&format!("/f{i}")), &Default::default())
            .unwrap();
    }
    assert_eq!(
        s.gc().unwrap().chunks_removed,
        0,
        "trash still references its chunks"
    );
    s.empty_trash(u).unwrap();
    let report = s.gc().unwrap();
    eprintln!("{report:?}");
    assert!(report.chunks_removed > 0);
    assert!(report.packs_compacted + report.packs_deleted > 0);
    let after = s.stats().unwrap();
    eprintln!("before {before:?}\nafter  {after:?}");
    assert!(after.pack_bytes < before.pack_bytes * 6 / 10);
    for i in [0, 3, 5] {
        assert!(get(&s, u, &format!("/f{i}")) == files[i]);
    }
    let fsck = s.fsck(false).unwrap();
    assert!(fsck.is_clean(), "{:?}", fsck.problems);
    // Uploading the deleted content again works (its chunks were really removed).
    put(&s, u, "/again", &files[1]);
    assert!(get(&s, u, "/again") == files[1]);
}

#[test]
fn gc_reclaims_dead_space_in_the_active_pack() {
    // One 8 MiB file fits in the active (default 32 MiB) pack; once deleted and purged, its
    // space must come back even though that pack never filled up and was never sealed.
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let keep = random_bytes(7, 100_000);
    put(&s, u, "/big", &random_bytes(8, 8 << 20));
    s.delete(u, &p("/big"), &Default::default()).unwrap();
    s.empty_trash(u).unwrap();
    put(&s, u, "/keep", &keep);
    let before = s.stats().unwrap();
    let report = s.gc().unwrap();
    let after = s.stats().unwrap();
    eprintln!("{report:?}\nbefore {before:?}\nafter  {after:?}");
    assert!(
        after.pack_bytes < 1 << 20,
        "dead space left behind: {after:?}"
    );
    assert!(get(&s, u, "/keep") == keep);
    assert!(s.fsck(false).unwrap().is_clean());
    // The store keeps working after its active pack was sealed.
    put(&s, u, "/after", b"more");
    assert_eq!(get(&s, u, "/after"), b"more");
}

#[test]
fn gc_while_uploading_loses_nothing() {
    let (_d, s) = store_with(small_packs());
    let u = user(&s, "alice").id;
    let blobs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..8)
            .map(|i| random_bytes(200 + i, 700_000 + 50_000 * i as usize))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Churn: upload a blob, delete it, empty the trash: its chunks keep dropping to zero refs.
    let churn = {
        let (s, blobs, stop) = (s.clone(), blobs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                put(&s, u, "/churn", &blobs[i % blobs.len()]);
                s.delete(u, &p("/churn"), &Default::default()).unwrap();
                s.empty_trash(u).unwrap();
                i += 1;
            }
        })
    };
    let collector = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                s.gc().unwrap();
                runs += 1;
            }
            runs
        })
    };
    // Keepers: the same content, committed for good, dedup'ing against chunks GC wants gone.
    let mut kept = Vec::new();
    for round in 0..24 {
        let b = round % blobs.len();
        let path = format!("/keep{round}");
        put(&s, u, &path, &blobs[b]);
        kept.push((path, b));
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let runs = collector.join().unwrap();
    eprintln!("gc ran {runs} times during the uploads");
    s.gc().unwrap();
    for (path, b) in &kept {
        assert!(get(&s, u, path) == blobs[*b], "{path}");
    }
    let report = s.fsck(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

/// The only pack file of a store.
fn only_pack(dir: &std::path::Path) -> std::path::PathBuf {
    let packs: Vec<_> = std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    packs[0].clone()
}

#[test]
fn fsck_finds_and_repair_quarantines_a_flipped_byte() {
    let (d, s) = store();
    let u = user(&s, "alice").id;
    let sound = random_bytes(300, 100_000);
    let victim = random_bytes(301, 3_000_000);
    put(&s, u, "/sound", &sound);
    put(&s, u, "/victim", &victim);
    assert!(s.fsck(false).unwrap().is_clean());

    let pack = only_pack(d.path());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack)
        .unwrap();
    let at = file.metadata().unwrap().len() - 1000;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();

    let report = s.fsck(false).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.object.starts_with("chunk")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.object.contains("of file")),
        "{:?}",
        report.problems
    );
    assert!(report.problems.iter().all(|p| !p.repaired));
    let mut buf = Vec::new();
    assert!(
        s.open_file(u, &p("/victim"))
            .unwrap()
            .read_to_end(&mut buf)
            .is_err()
    );

    let repaired = s.fsck(true).unwrap();
    assert!(
        repaired.problems.iter().all(|p| p.repaired),
        "{:?}",
        repaired.problems
    );
    // Sound data untouched; the damaged file stays in place, unreadable, reported.
    assert!(get(&s, u, "/sound") == sound);
    let err = s
        .open_file(u, &p("/victim"))
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("quarantined"), "{err}");
    let again = s.fsck(false).unwrap();
    assert_eq!(again.problems.len(), 1, "{:?}", again.problems);
    s.gc().unwrap();
    assert!(get(&s, u, "/sound") == sound);

    // Uploading the same content again heals it.
    put(&s, u, "/victim copy", &victim);
    assert!(get(&s, u, "/victim") == victim);
    let healed = s.fsck(false).unwrap();
    assert!(healed.is_clean(), "{:?}", healed.problems);
}

#[test]
fn gc_between_write_and_commit_spares_the_upload() {
    let (_d, s) = store_with(small_packs());
    let u = user(&s, "alice").id;
    let old = random_bytes(400, 12_000_000);
    let new = random_bytes(401, 12_000_000);
    // `old`'s chunks drop to zero references but stay indexed until GC.
    put(&s, u, "/old", &old);
    s.delete(u, &p("/old"), &Default::default()).unwrap();
    s.empty_trash(u).unwrap();
    // (a) this upload dedups against those chunks; (b) the other writes fresh chunks into
    // packs that get sealed before commit.
    let mut dedup = s.begin_upload(u, None).unwrap();
    dedup.write(&old).unwrap();
    let mut fresh = s.begin_upload(u, None).unwrap();
    fresh.write(&new).unwrap();
    let report = s.gc().unwrap();
    eprintln!("{report:?}");
    dedup.commit(&p("/old again"), &Default::default()).unwrap();
    fresh.commit(&p("/new"), &Default::default()).unwrap();
    s.gc().unwrap();
    assert!(get(&s, u, "/old again") == old);
    assert!(get(&s, u, "/new") == new);
    let fsck = s.fsck(false).unwrap();
    assert!(fsck.is_clean(), "{:?}", fsck.problems);
}
