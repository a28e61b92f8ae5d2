use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn new(user_id: u64) -> NewSession<'static> {
    NewSession {
        user_id,
        user_name: "alice",
        address: "192.168.1.2",
        user_agent: "Firefox",
    }
}

fn open() -> (tempfile::TempDir, Sessions) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = Sessions::open(&dir.path().join("sessions.redb")).expect("open");
    (dir, sessions)
}

#[test]
fn create_and_lookup() {
    let (_dir, sessions) = open();
    let (token, session) = sessions.create(new(1), at(1000)).expect("create");
    assert_eq!(token.len(), 43);
    assert_eq!(session.csrf.len(), 43);
    let found = sessions.lookup(&token, at(1010)).expect("lookup");
    assert_eq!(found.as_ref(), Some(&session));
    assert_eq!(sessions.lookup("nope", at(1010)).expect("lookup"), None);
    let (other, _) = sessions.create(new(1), at(1000)).expect("create");
    assert_ne!(token, other);
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    let (dir, sessions) = open();
    let (token, _) = sessions.create(new(1), at(1000)).expect("create");
    drop(sessions);
    let raw = std::fs::read(dir.path().join("sessions.redb")).expect("read");
    assert!(!raw.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[test]
fn last_seen_moves_at_most_once_a_minute_and_idle_sessions_expire() {
    let (_dir, sessions) = open();
    let (token, _) = sessions.create(new(1), at(1000)).expect("create");
    let s = sessions
        .lookup(&token, at(1030))
        .expect("lookup")
        .expect("live");
    assert_eq!(s.last_seen, 1000);
    let s = sessions
        .lookup(&token, at(1061))
        .expect("lookup")
        .expect("live");
    assert_eq!(s.last_seen, 1061);
    let s = sessions
        .lookup(&token, at(1062))
        .expect("lookup")
        .expect("live");
    assert_eq!(s.last_seen, 1061);
    let idle = IDLE_EXPIRY.as_secs();
    assert!(
        sessions
            .lookup(&token, at(1061 + idle - 1))
            .expect("lookup")
            .is_some()
    );
    let last = 1061 + idle - 1;
    assert!(
        sessions
            .lookup(&token, at(last + idle))
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        sessions.count().expect("count"),
        0,
        "expired session removed"
    );
}

#[test]
fn survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.redb");
    let token = {
        let sessions = Sessions::open(&path).expect("open");
        sessions.create(new(1), at(1000)).expect("create").0
    };
    let sessions = Sessions::open(&path).expect("reopen");
    assert!(sessions.lookup(&token, at(1001)).expect("lookup").is_some());
    let (_, later) = sessions.create(new(1), at(1002)).expect("create");
    assert_eq!(later.id, 2, "ids are not reused after reopening");
}

#[test]
fn list_and_revoke() {
    let (_dir, sessions) = open();
    let (t1, s1) = sessions.create(new(1), at(1000)).expect("create");
    let (t2, s2) = sessions.create(new(1), at(2000)).expect("create");
    let (t3, s3) = sessions.create(new(2), at(3000)).expect("create");
    let list = sessions.list(1).expect("list");
    assert_eq!(
        list.iter().map(|s| s.id).collect::<Vec<_>>(),
        [s2.id, s1.id]
    );

    assert!(
        !sessions.revoke(2, s1.id).expect("revoke"),
        "not another user's"
    );
    assert!(sessions.revoke(1, s1.id).expect("revoke"));
    assert!(sessions.lookup(&t1, at(2001)).expect("lookup").is_none());

    let (t4, s4) = sessions.create(new(1), at(2500)).expect("create");
    assert_eq!(sessions.revoke_all_except(1, s4.id).expect("revoke"), 1);
    assert!(sessions.lookup(&t2, at(2600)).expect("lookup").is_none());
    assert!(sessions.lookup(&t4, at(2600)).expect("lookup").is_some());
    assert!(sessions.lookup(&t3, at(3001)).expect("lookup").is_some());

    sessions.revoke_token(&t4).expect("logout");
    assert!(sessions.lookup(&t4, at(2600)).expect("lookup").is_none());
    assert_eq!(sessions.revoke_user(2).expect("revoke"), 1);
    assert!(sessions.lookup(&t3, at(3001)).expect("lookup").is_none());
    assert_eq!(sessions.count().expect("count"), 0);
    let _ = s3;
}

#[test]
fn purge_and_per_user_cap() {
    let (_dir, sessions) = open();
    for i in 0..(MAX_PER_USER as u64 + 5) {
        sessions.create(new(1), at(1000 + i)).expect("create");
    }
    assert_eq!(sessions.list(1).expect("list").len(), MAX_PER_USER);
    sessions.create(new(2), at(10_000_000)).expect("create");
    let purged = sessions
        .purge_expired(at(1000 + MAX_PER_USER as u64 + 5 + IDLE_EXPIRY.as_secs()))
        .expect("purge");
    assert_eq!(purged, MAX_PER_USER as u64);
    assert_eq!(sessions.count().expect("count"), 1);
}

#[test]
fn long_user_agents_are_cut_on_a_char_boundary() {
    let (_dir, sessions) = open();
    let ua = "é".repeat(300);
    let (_, s) = sessions
        .create(
            NewSession {
                user_agent: &ua,
                ..new(1)
            },
            at(1),
        )
        .expect("create");
    assert!(s.user_agent.len() <= 256);
}
