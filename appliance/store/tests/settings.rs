//! Lookups the web pages need: path by id, search, the owner, persisted retention, disk space.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use percloud_store::{Precondition, Retention, Store, StoreError, StoreOptions};

#[test]
fn path_of_follows_moves_and_refuses_trash_and_strangers() {
    let (_d, s) = store();
    let a = user(&s, "alice");
    let b = user(&s, "bob");
    s.mkdir(a.id, &p("/Photos")).unwrap();
    s.mkdir(a.id, &p("/Photos/2024")).unwrap();
    let f = put(&s, a.id, "/Photos/2024/cat.jpg", b"meow");
    assert_eq!(s.path_of(a.id, f.id).unwrap(), p("/Photos/2024/cat.jpg"));
    let root = s.stat(a.id, &p("/")).unwrap();
    assert_eq!(s.path_of(a.id, root.id).unwrap(), p("/"));
    s.rename(a.id, &p("/Photos"), &p("/Pictures"), false)
        .unwrap();
    assert_eq!(s.path_of(a.id, f.id).unwrap(), p("/Pictures/2024/cat.jpg"));
    assert!(matches!(
        s.path_of(b.id, f.id),
        Err(StoreError::NotFound { .. })
    ));
    s.delete(a.id, &p("/Pictures/2024"), &Precondition::default())
        .unwrap();
    assert!(matches!(
        s.path_of(a.id, f.id),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.path_of(a.id, 999_999),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn search_is_case_insensitive_breadth_first_and_skips_trash() {
    let (_d, s) = store();
    let a = user(&s, "alice");
    s.mkdir(a.id, &p("/Ünïcode")).unwrap();
    s.mkdir(a.id, &p("/Ünïcode/deep")).unwrap();
    put(&s, a.id, "/Ünïcode/deep/ÜNÏ.txt", b"x");
    put(&s, a.id, "/ünï-top.txt", b"y");
    put(&s, a.id, "/other.txt", b"z");
    put(&s, a.id, "/gone-ünï.txt", b"z");
    s.delete(a.id, &p("/gone-ünï.txt"), &Precondition::default())
        .unwrap();
    let hits: Vec<String> = s
        .search(a.id, "ÜnÏ", 10)
        .unwrap()
        .into_iter()
        .map(|(path, _)| path.to_string())
        .collect();
    assert_eq!(hits.len(), 3, "{hits:?}");
    // Breadth first: the two top-level hits before the deep one.
    assert!(hits[2].ends_with("ÜNÏ.txt"), "{hits:?}");
    assert_eq!(s.search(a.id, "ünï", 2).unwrap().len(), 2);
    assert!(s.search(a.id, "nothing", 10).unwrap().is_empty());
    let (path, entry) = &s.search(a.id, "other", 10).unwrap()[0];
    assert_eq!((path.to_string().as_str(), entry.size), ("/other.txt", 1));
}

#[test]
fn owner_is_the_first_account_and_cannot_be_removed() {
    let (_d, s) = store();
    assert!(s.owner().unwrap().is_none());
    let first = user(&s, "zed");
    user(&s, "amy");
    assert_eq!(s.owner().unwrap().unwrap().id, first.id);
    assert!(matches!(
        s.remove_user("zed"),
        Err(StoreError::OwnerRequired)
    ));
    s.remove_user("amy").unwrap();
    assert_eq!(s.owner().unwrap().unwrap().name, "zed");
}

#[test]
fn retention_is_persisted_and_wins_over_options() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        retention: Retention {
            keep_versions: 5,
            keep_days: 9,
            trash_days: 9,
        },
        ..StoreOptions::default()
    };
    let s = Store::open(dir.path(), options.clone()).unwrap();
    assert_eq!(s.retention().unwrap(), options.retention);
    let mine = Retention {
        keep_versions: 1,
        keep_days: 2,
        trash_days: 3,
    };
    s.set_retention(mine).unwrap();
    drop(s);
    let s = Store::open(dir.path(), options).unwrap();
    assert_eq!(s.retention().unwrap(), mine);
    // Commit-time pruning uses the persisted count.
    let a = user(&s, "alice");
    for i in 0..4u8 {
        put(&s, a.id, "/f", &[i; 10]);
    }
    assert_eq!(s.versions(a.id, &p("/f")).unwrap().len(), 2);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn disk_space_is_plausible() {
    let (_d, s) = store();
    let (total, available) = s.disk_space().unwrap();
    assert!(total > 0);
    assert!(available <= total);
}
