//! Versions, retention, trash.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use percloud_store::{Retention, StoreError, StoreOptions};

#[test]
fn versions_are_kept_and_pruned_by_count() {
    let retention = Retention {
        keep_versions: 3,
        ..Retention::default()
    };
    let (_d, s) = store_with(StoreOptions {
        retention,
        ..StoreOptions::default()
    });
    let u = user(&s, "alice").id;
    for i in 0..6u8 {
        put(&s, u, "/f", &[i; 100]);
    }
    let versions = s.versions(u, &p("/f")).unwrap();
    assert_eq!(versions.len(), 4, "current + 3");
    assert!(versions[0].current);
    assert!(versions.windows(2).all(|w| w[0].version > w[1].version));
    assert_eq!(
        versions[3].content_hash,
        *blake3::hash(&[2u8; 100]).as_bytes()
    );
    // Pruned versions' chunks become garbage.
    let report = s.gc().unwrap();
    assert_eq!(report.chunks_removed, 2);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn restore_version_makes_a_new_current_version() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    put(&s, u, "/f", b"first");
    put(&s, u, "/f", b"second");
    let old = s.versions(u, &p("/f")).unwrap()[1].version;
    let e = s.restore_version(u, &p("/f"), old).unwrap();
    assert_eq!(e.size, 5);
    assert_eq!(get(&s, u, "/f"), b"first");
    assert_eq!(s.versions(u, &p("/f")).unwrap().len(), 3);
    assert!(matches!(
        s.restore_version(u, &p("/f"), 999_999),
        Err(StoreError::VersionNotFound { .. })
    ));
    assert_eq!(s.user("alice").unwrap().unwrap().used, 5);
}

#[test]
fn expire_drops_old_versions_and_trash() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    put(&s, u, "/f", b"one");
    put(&s, u, "/f", b"two");
    put(&s, u, "/g", b"gone");
    s.delete(u, &p("/g"), &Default::default()).unwrap();
    let report = s
        .expire(SystemTime::now() + Duration::from_secs(86_400))
        .unwrap();
    assert_eq!((report.versions_removed, report.trash_items_purged), (0, 0));
    let report = s
        .expire(SystemTime::now() + Duration::from_secs(31 * 86_400))
        .unwrap();
    assert_eq!((report.versions_removed, report.trash_items_purged), (1, 1));
    assert_eq!(s.versions(u, &p("/f")).unwrap().len(), 1);
    assert!(s.trash(u).unwrap().is_empty());
    assert_eq!(get(&s, u, "/f"), b"two");
    assert_eq!(s.user("alice").unwrap().unwrap().used, 3);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn trash_delete_restore_purge_empty() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    s.mkdir(u, &p("/dir")).unwrap();
    s.mkdir(u, &p("/dir/sub")).unwrap();
    put(&s, u, "/dir/sub/f.txt", b"content");
    let id = s.stat(u, &p("/dir")).unwrap().id;
    s.delete(u, &p("/dir"), &Default::default()).unwrap();
    assert!(matches!(
        s.stat(u, &p("/dir")),
        Err(StoreError::NotFound { .. })
    ));
    let trash = s.trash(u).unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].original_path, "/dir");
    assert_eq!(trash[0].entry.id, id);
    // Restore puts the whole subtree back.
    let e = s.restore_from_trash(u, trash[0].id).unwrap();
    assert_eq!((e.id, e.name.as_str()), (id, "dir"));
    assert_eq!(get(&s, u, "/dir/sub/f.txt"), b"content");
    assert!(matches!(
        s.restore_from_trash(u, trash[0].id),
        Err(StoreError::TrashItemNotFound { .. })
    ));

    // Name taken: restored beside it; parent gone: recreated.
    s.delete(u, &p("/dir/sub/f.txt"), &Default::default())
        .unwrap();
    put(&s, u, "/dir/sub/f.txt", b"new");
    s.delete(u, &p("/dir/sub/f.txt"), &Default::default())
        .unwrap();
    put(&s, u, "/dir/sub/f.txt", b"newer");
    for item in s.trash(u).unwrap() {
        s.restore_from_trash(u, item.id).unwrap();
    }
    let mut names: Vec<_> = s
        .list(u, &p("/dir/sub"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, ["f (restored 2).txt", "f (restored).txt", "f.txt"]);
    s.delete(u, &p("/dir/sub/f.txt"), &Default::default())
        .unwrap();
    s.delete(u, &p("/dir"), &Default::default()).unwrap();
    let file_item = s
        .trash(u)
        .unwrap()
        .into_iter()
        .find(|t| t.original_path == "/dir/sub/f.txt")
        .unwrap();
    s.restore_from_trash(u, file_item.id).unwrap();
    assert_eq!(get(&s, u, "/dir/sub/f.txt"), b"newer");

    // Purge and empty.
    let items = s.trash(u).unwrap();
    assert_eq!(items.len(), 1);
    s.purge_from_trash(u, items[0].id).unwrap();
    assert!(s.trash(u).unwrap().is_empty());
    put(&s, u, "/x", b"x");
    s.delete(u, &p("/x"), &Default::default()).unwrap();
    s.delete(u, &p("/dir"), &Default::default()).unwrap();
    assert_eq!(s.trash(u).unwrap().len(), 2);
    s.empty_trash(u).unwrap();
    assert!(s.trash(u).unwrap().is_empty());
    assert_eq!(s.user("alice").unwrap().unwrap().used, 0);
    assert!(s.fsck(false).unwrap().is_clean());
    assert!(s.gc().unwrap().chunks_removed >= 4);
}
