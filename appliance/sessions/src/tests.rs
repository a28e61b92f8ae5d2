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

fn device(user_id: u64, name: &'static str) -> NewAppPassword<'static> {
    NewAppPassword {
        user_id,
        user_name: "alice",
        name,
    }
}

#[test]
fn app_passwords_check_list_and_revoke() {
    let (dir, sessions) = open();
    let (pw, phone) = sessions
        .create_app_password(device(1, "Nextcloud Android"), at(1000))
        .expect("create");
    assert!(looks_like_app_password(&pw), "{pw}");
    assert_eq!(phone.last_used, None);
    let (pw2, laptop) = sessions
        .create_app_password(device(1, "  "), at(1001))
        .expect("create");
    assert_eq!(laptop.name, "Unnamed device");
    assert_ne!(pw, pw2);

    let found = sessions
        .check_app_password(&pw, at(1100))
        .expect("check")
        .expect("valid");
    assert_eq!(found.id, phone.id);
    assert_eq!(found.last_used, Some(1100));
    assert_eq!(
        sessions
            .check_app_password("nope", at(1100))
            .expect("check"),
        None
    );
    // A session token is not an app password, nor the other way round.
    let (token, _) = sessions.create(new(1), at(1000)).expect("session");
    assert_eq!(
        sessions
            .check_app_password(&token, at(1100))
            .expect("check"),
        None
    );
    assert_eq!(sessions.lookup(&pw, at(1100)).expect("lookup"), None);

    let list = sessions.app_passwords(1).expect("list");
    assert_eq!(
        list.iter().map(|a| a.id).collect::<Vec<_>>(),
        [laptop.id, phone.id]
    );
    assert!(sessions.app_passwords(2).expect("list").is_empty());

    assert!(
        !sessions.revoke_app_password(2, phone.id).expect("revoke"),
        "not another user's"
    );
    assert!(sessions.revoke_app_password(1, phone.id).expect("revoke"));
    assert_eq!(
        sessions.check_app_password(&pw, at(1200)).expect("check"),
        None
    );
    assert!(
        sessions
            .check_app_password(&pw2, at(1200))
            .expect("check")
            .is_some()
    );

    // Removing the account (revoke_user) takes its devices too.
    assert_eq!(sessions.revoke_user(1).expect("revoke"), 2);
    assert_eq!(
        sessions.check_app_password(&pw2, at(1300)).expect("check"),
        None
    );

    drop(sessions);
    let raw = std::fs::read(dir.path().join("sessions.redb")).expect("read");
    assert!(
        !raw.windows(pw.len()).any(|w| w == pw.as_bytes()),
        "stored only as a digest"
    );
}

#[test]
fn app_password_use_is_recorded_coarsely_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.redb");
    let pw = {
        let sessions = Sessions::open(&path).expect("open");
        let (pw, _) = sessions
            .create_app_password(device(1, "desktop"), at(1000))
            .expect("create");
        let first = sessions.check_app_password(&pw, at(2000)).expect("check");
        assert_eq!(first.and_then(|a| a.last_used), Some(2000));
        let soon = sessions.check_app_password(&pw, at(2010)).expect("check");
        assert_eq!(
            soon.and_then(|a| a.last_used),
            Some(2000),
            "not written again yet"
        );
        let later = APP_TOUCH_INTERVAL.as_secs() + 2000;
        let moved = sessions.check_app_password(&pw, at(later)).expect("check");
        assert_eq!(moved.and_then(|a| a.last_used), Some(later));
        pw
    };
    let sessions = Sessions::open(&path).expect("reopen");
    let list = sessions.app_passwords(1).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_used, Some(APP_TOUCH_INTERVAL.as_secs() + 2000));
    assert!(
        sessions
            .check_app_password(&pw, at(9000))
            .expect("check")
            .is_some()
    );
}

#[test]
fn app_passwords_per_user_are_capped() {
    let (_dir, sessions) = open();
    for _ in 0..MAX_APP_PASSWORDS_PER_USER {
        sessions
            .create_app_password(device(1, "d"), at(1))
            .expect("create");
    }
    assert!(matches!(
        sessions.create_app_password(device(1, "d"), at(1)),
        Err(SessionError::TooManyAppPasswords { .. })
    ));
    sessions
        .create_app_password(device(2, "d"), at(1))
        .expect("another user");
}

#[test]
fn revoking_an_app_password_changes_the_generation() {
    let (_dir, sessions) = open();
    let (_, app) = sessions
        .create_app_password(device(1, "d"), at(1))
        .expect("create");
    let before = sessions.app_password_generation();
    sessions.check_app_password("x", at(2)).expect("check");
    assert_eq!(
        sessions.app_password_generation(),
        before,
        "checks do not change it"
    );
    assert!(!sessions.revoke_app_password(2, app.id).expect("revoke"));
    let after_nothing = sessions.app_password_generation();
    assert_eq!(after_nothing, before, "nothing revoked, nothing to forget");
    assert!(sessions.revoke_app_password(1, app.id).expect("revoke"));
    assert!(sessions.app_password_generation() > after_nothing);
}

#[test]
fn users_gone_lose_their_sessions_and_app_passwords() {
    let (_dir, sessions) = open();
    let (kept, _) = sessions.create(new(1), at(1)).expect("session");
    let (gone, _) = sessions.create(new(2), at(1)).expect("session");
    let (kept_pw, _) = sessions
        .create_app_password(device(1, "d"), at(1))
        .expect("create");
    let (gone_pw, _) = sessions
        .create_app_password(device(2, "d"), at(1))
        .expect("create");
    assert_eq!(sessions.forget_users_except(&[1]).expect("forget"), 2);
    assert!(sessions.lookup(&kept, at(2)).expect("lookup").is_some());
    assert!(sessions.lookup(&gone, at(2)).expect("lookup").is_none());
    assert!(
        sessions
            .check_app_password(&kept_pw, at(2))
            .expect("check")
            .is_some()
    );
    assert!(
        sessions
            .check_app_password(&gone_pw, at(2))
            .expect("check")
            .is_none()
    );
}
