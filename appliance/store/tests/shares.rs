//! Share links: create, list, look up, revoke, and their life cycle with the tree.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use percloud_store::{NewShare, Precondition, ShareMode, StoreError};

fn new_share(mode: ShareMode, seed: u8) -> NewShare {
    NewShare {
        mode,
        password_hash: Some("$argon2id$x".to_owned()),
        expires: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
        nonce: [seed; 32],
        token_hash: [seed.wrapping_add(100); 32],
    }
}

#[test]
fn create_list_lookup_revoke() {
    let (_d, s) = store();
    let a = user(&s, "alice");
    let b = user(&s, "bob");
    s.mkdir(a.id, &p("/Drop")).unwrap();
    let f = put(&s, a.id, "/doc.txt", b"hello");
    let one = s
        .create_share(a.id, &p("/doc.txt"), new_share(ShareMode::Read, 1))
        .unwrap();
    assert_eq!(
        (one.node, one.user, one.mode),
        (f.id, a.id, ShareMode::Read)
    );
    assert!(matches!(
        s.create_share(a.id, &p("/doc.txt"), new_share(ShareMode::Upload, 2)),
        Err(StoreError::NotADirectory { .. })
    ));
    assert!(matches!(
        s.create_share(a.id, &p("/nope"), new_share(ShareMode::Read, 2)),
        Err(StoreError::NotFound { .. })
    ));
    let two = s
        .create_share(a.id, &p("/Drop"), new_share(ShareMode::Upload, 2))
        .unwrap();
    let listed = s.shares(a.id).unwrap();
    assert_eq!(listed, vec![two.clone(), one.clone()], "newest first");
    assert!(s.shares(b.id).unwrap().is_empty());
    assert_eq!(
        s.share_by_token_hash(&one.token_hash).unwrap(),
        Some(one.clone())
    );
    assert_eq!(one.password_hash.as_deref(), Some("$argon2id$x"));
    assert!(s.share_by_token_hash(&[0; 32]).unwrap().is_none());
    assert!(matches!(
        s.revoke_share(b.id, one.id),
        Err(StoreError::ShareNotFound { .. })
    ));
    s.revoke_share(a.id, one.id).unwrap();
    assert!(s.share_by_token_hash(&one.token_hash).unwrap().is_none());
    assert!(matches!(
        s.revoke_share(a.id, one.id),
        Err(StoreError::ShareNotFound { .. })
    ));
    assert_eq!(s.shares(a.id).unwrap(), vec![two]);
}

#[test]
fn follows_renames_and_dies_with_purge_and_user_removal() {
    let (_d, s) = store();
    let _owner = user(&s, "owner");
    let a = user(&s, "alice");
    s.mkdir(a.id, &p("/A")).unwrap();
    put(&s, a.id, "/A/f", b"x");
    let share = s
        .create_share(a.id, &p("/A/f"), new_share(ShareMode::Read, 1))
        .unwrap();
    s.rename(a.id, &p("/A"), &p("/B"), false).unwrap();
    assert_eq!(s.path_of(a.id, share.node).unwrap(), p("/B/f"));
    s.delete(a.id, &p("/B"), &Precondition::default()).unwrap();
    assert!(
        s.path_of(a.id, share.node).is_err(),
        "trashed: no longer resolves"
    );
    let item = s.trash(a.id).unwrap()[0].id;
    s.restore_from_trash(a.id, item).unwrap();
    assert_eq!(s.path_of(a.id, share.node).unwrap(), p("/B/f"));
    s.delete(a.id, &p("/B"), &Precondition::default()).unwrap();
    s.empty_trash(a.id).unwrap();
    assert!(s.share_by_token_hash(&share.token_hash).unwrap().is_none());
    assert!(s.shares(a.id).unwrap().is_empty());

    s.mkdir(a.id, &p("/C")).unwrap();
    let other = s
        .create_share(a.id, &p("/C"), new_share(ShareMode::Upload, 3))
        .unwrap();
    s.remove_user("alice").unwrap();
    assert!(s.share_by_token_hash(&other.token_hash).unwrap().is_none());
    assert!(s.fsck(false).unwrap().is_clean());
}
