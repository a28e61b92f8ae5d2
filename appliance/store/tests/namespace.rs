//! Namespace operations: mkdir, list, stat, rename, copy, delete, props, ETags.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use percloud_store::{EntryKind, Precondition, PropName, StoreError};

#[test]
fn mkdir_list_stat() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    s.mkdir(u, &p("/a")).unwrap();
    s.mkdir(u, &p("/a/b")).unwrap();
    put(&s, u, "/a/f.txt", b"hello");
    let names: Vec<_> = s
        .list(u, &p("/a"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["b", "f.txt"]);
    let f = s.stat(u, &p("/a/f.txt")).unwrap();
    assert_eq!(f.kind, EntryKind::File);
    assert_eq!(f.size, 5);
    assert_eq!(f.content_hash, Some(*blake3::hash(b"hello").as_bytes()));
    assert!(matches!(
        s.mkdir(u, &p("/a")),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.mkdir(u, &p("/x/y")),
        Err(StoreError::ParentMissing { .. })
    ));
    assert!(matches!(
        s.mkdir(u, &p("/a/f.txt/y")),
        Err(StoreError::NotADirectory { .. })
    ));
    assert!(matches!(
        s.stat(u, &p("/nope")),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.list(u, &p("/a/f.txt")),
        Err(StoreError::NotADirectory { .. })
    ));
    assert!(s.stat(u, &p("/")).unwrap().is_dir());
    // Users are separate.
    let b = user(&s, "bob").id;
    assert!(s.list(b, &p("/")).unwrap().is_empty());
}

#[test]
fn rename_keeps_id_and_copy_gets_new_one() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    s.mkdir(u, &p("/a")).unwrap();
    let f = put(&s, u, "/a/f", &random_bytes(1, 3_000_000));
    let moved = s.rename(u, &p("/a/f"), &p("/g"), false).unwrap();
    assert_eq!(moved.entry.id, f.id);
    assert!(!moved.replaced);
    assert!(matches!(
        s.stat(u, &p("/a/f")),
        Err(StoreError::NotFound { .. })
    ));
    let before = s.stats().unwrap();
    let copied = s.copy(u, &p("/g"), &p("/a/h"), false, true).unwrap();
    assert_ne!(copied.entry.id, f.id);
    assert_eq!(get(&s, u, "/a/h"), get(&s, u, "/g"));
    let after = s.stats().unwrap();
    assert_eq!(
        after.stored_bytes, before.stored_bytes,
        "copy shares chunks"
    );
    assert_eq!(after.logical_bytes, before.logical_bytes * 2);
    // Folder into itself, existing destination.
    assert!(matches!(
        s.rename(u, &p("/a"), &p("/a/b"), false),
        Err(StoreError::IntoItself { .. })
    ));
    assert!(matches!(
        s.rename(u, &p("/a/h"), &p("/a"), true),
        Err(StoreError::IntoItself { .. })
    ));
    put(&s, u, "/x", b"x");
    assert!(matches!(
        s.rename(u, &p("/x"), &p("/g"), false),
        Err(StoreError::AlreadyExists { .. })
    ));
    let r = s.rename(u, &p("/x"), &p("/g"), true).unwrap();
    assert!(r.replaced);
    assert_eq!(get(&s, u, "/g"), b"x");
    assert_eq!(s.trash(u).unwrap().len(), 1);
    // Recursive folder copy.
    s.copy(u, &p("/a"), &p("/a2"), false, true).unwrap();
    assert_eq!(get(&s, u, "/a2/h"), get(&s, u, "/a/h"));
    s.copy(u, &p("/a"), &p("/a3"), false, false).unwrap();
    assert!(s.list(u, &p("/a3")).unwrap().is_empty());
}

#[test]
fn folder_etags_change_up_the_tree_only() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    for d in ["/a", "/a/b", "/a/b/c", "/side", "/a/sib"] {
        s.mkdir(u, &p(d)).unwrap();
    }
    let etag = |path: &str| s.stat(u, &p(path)).unwrap().etag;
    let before: Vec<_> = ["/", "/a", "/a/b", "/a/b/c", "/side", "/a/sib"]
        .iter()
        .map(|x| etag(x))
        .collect();
    put(&s, u, "/a/b/c/deep.txt", b"deep");
    let after: Vec<_> = ["/", "/a", "/a/b", "/a/b/c", "/side", "/a/sib"]
        .iter()
        .map(|x| etag(x))
        .collect();
    for i in 0..4 {
        assert_ne!(before[i], after[i], "ancestor {i} changed");
    }
    assert_eq!(before[4], after[4], "unrelated sibling unchanged");
    assert_eq!(before[5], after[5], "sibling folder unchanged");
    // Every kind of change propagates.
    let ops: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            put(&s, u, "/a/b/c/deep.txt", b"again");
        }),
        Box::new(|| {
            s.rename(u, &p("/a/b/c/deep.txt"), &p("/a/b/c/deeper.txt"), false)
                .unwrap();
        }),
        Box::new(|| {
            s.copy(
                u,
                &p("/a/b/c/deeper.txt"),
                &p("/a/b/c/copy.txt"),
                false,
                false,
            )
            .unwrap();
        }),
        Box::new(|| {
            s.delete(u, &p("/a/b/c/copy.txt"), &Precondition::default())
                .unwrap();
        }),
        Box::new(|| {
            let id = s.trash(u).unwrap()[0].id;
            s.restore_from_trash(u, id).unwrap();
        }),
    ];
    for op in ops {
        let root = etag("/");
        let c = etag("/a/b/c");
        let side = etag("/side");
        op();
        assert_ne!(root, etag("/"));
        assert_ne!(c, etag("/a/b/c"));
        assert_eq!(side, etag("/side"));
    }
}

#[test]
fn file_etag_changes_on_every_write() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let a = put(&s, u, "/f", b"same");
    let b = put(&s, u, "/f", b"same");
    assert_ne!(a.etag, b.etag);
    assert_eq!(a.id, b.id);
}

#[test]
fn preconditions() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let e = put(&s, u, "/f", b"one");
    let mut opts = percloud_store::CommitOptions::default();
    opts.precondition.if_none_match_any = true;
    assert!(matches!(
        put_with(&s, u, "/f", b"two", &opts),
        Err(StoreError::PreconditionFailed { .. })
    ));
    put_with(&s, u, "/new", b"two", &opts).unwrap();
    opts.precondition = Precondition {
        if_match: Some("bogus".into()),
        if_none_match_any: false,
    };
    assert!(matches!(
        put_with(&s, u, "/f", b"two", &opts),
        Err(StoreError::PreconditionFailed { .. })
    ));
    opts.precondition.if_match = Some(e.etag.clone());
    let e2 = put_with(&s, u, "/f", b"two", &opts).unwrap();
    assert!(matches!(
        put_with(&s, u, "/f", b"3", &opts),
        Err(StoreError::PreconditionFailed { .. })
    ));
    opts.precondition.if_match = Some("*".into());
    assert!(matches!(
        put_with(&s, u, "/missing", b"3", &opts),
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert_eq!(get(&s, u, "/f"), b"two");
    let stale = Precondition {
        if_match: Some(e.etag),
        if_none_match_any: false,
    };
    assert!(matches!(
        s.delete(u, &p("/f"), &stale),
        Err(StoreError::PreconditionFailed { .. })
    ));
    let fresh = Precondition {
        if_match: Some(e2.etag),
        if_none_match_any: false,
    };
    s.delete(u, &p("/f"), &fresh).unwrap();
}

#[test]
fn props_follow_moves_and_copies() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    put(&s, u, "/f", b"x");
    let name = |n: &str| PropName {
        namespace: "urn:x".into(),
        name: n.into(),
    };
    s.patch_props(
        u,
        &p("/f"),
        &[(name("a"), b"1".to_vec()), (name("b"), b"2".to_vec())],
        &[],
    )
    .unwrap();
    s.patch_props(u, &p("/f"), &[(name("c"), b"3".to_vec())], &[name("a")])
        .unwrap();
    s.rename(u, &p("/f"), &p("/g"), false).unwrap();
    let props = s.props(u, &p("/g")).unwrap();
    assert_eq!(
        props,
        vec![(name("b"), b"2".to_vec()), (name("c"), b"3".to_vec())]
    );
    s.copy(u, &p("/g"), &p("/h"), false, false).unwrap();
    assert_eq!(s.props(u, &p("/h")).unwrap(), props);
}

#[test]
fn users() {
    let (_d, s) = store();
    let owner = s.create_user("owner", "h0", None).unwrap();
    let a = s.create_user("alice", "h1", Some(100)).unwrap();
    assert!(matches!(
        s.create_user("alice", "h", None),
        Err(StoreError::UserExists { .. })
    ));
    for bad in ["", ".hidden", "a/b", "é", &"x".repeat(65)] {
        assert!(
            matches!(
                s.create_user(bad, "h", None),
                Err(StoreError::InvalidUserName { .. })
            ),
            "{bad}"
        );
    }
    s.create_user("b.o_b-1", "h2", None).unwrap();
    s.set_password_hash("alice", "h3").unwrap();
    s.set_quota("alice", None).unwrap();
    let got = s.user("alice").unwrap().unwrap();
    assert_eq!(
        (got.id, got.password_hash.as_str(), got.quota),
        (a.id, "h3", None)
    );
    assert_eq!(s.users().unwrap().len(), 3);
    assert!(matches!(
        s.set_quota("nobody", None),
        Err(StoreError::UnknownUser { .. })
    ));
    put(&s, a.id, "/f", b"data");
    s.remove_user("alice").unwrap();
    assert!(s.user("alice").unwrap().is_none());
    assert!(matches!(
        s.remove_user("owner"),
        Err(StoreError::OwnerRequired)
    ));
    assert_eq!(s.owner().unwrap().map(|u| u.id), Some(owner.id));
    assert!(matches!(
        s.remove_user("alice"),
        Err(StoreError::UnknownUser { .. })
    ));
    assert!(s.fsck(false).unwrap().is_clean());
}
