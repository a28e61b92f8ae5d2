//! LOCK, UNLOCK and lock enforcement through the If header against a real store.

mod common;

use bytes::Bytes;
use common::Dav;
use http::StatusCode;

fn lockinfo(scope: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:{scope}/></D:lockscope>\
         <D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
    )
}

async fn lock(dav: &Dav, path: &str, scope: &str, depth: &str) -> (StatusCode, Option<String>) {
    let r = dav
        .send(
            "LOCK",
            path,
            &[("depth", depth), ("timeout", "Second-600")],
            lockinfo(scope),
        )
        .await;
    let token = r
        .header("lock-token")
        .map(|t| t.trim_matches(['<', '>']).to_owned());
    (r.status, token)
}

#[tokio::test]
async fn exclusive_lock_guards_writes() {
    let dav = Dav::new();
    dav.put("/dav/f.txt", "v1").await;
    let (status, token) = lock(&dav, "/dav/f.txt", "exclusive", "0").await;
    assert_eq!(status, StatusCode::OK);
    let token = token.expect("Lock-Token");
    assert!(token.starts_with("opaquelocktoken:"));

    assert_eq!(dav.put("/dav/f.txt", "v2").await.status, StatusCode::LOCKED);
    let del = dav.send("DELETE", "/dav/f.txt", &[], Bytes::new()).await;
    assert_eq!(del.status, StatusCode::LOCKED);
    assert!(del.text().contains("lock-token-submitted"));
    let mv = dav
        .send(
            "MOVE",
            "/dav/f.txt",
            &[("destination", "/dav/g.txt")],
            Bytes::new(),
        )
        .await;
    assert_eq!(mv.status, StatusCode::LOCKED);
    assert_eq!(
        lock(&dav, "/dav/f.txt", "shared", "0").await.0,
        StatusCode::LOCKED
    );

    let with_token = format!("(<{token}>)");
    let r = dav
        .send("PUT", "/dav/f.txt", &[("if", &with_token)], "v2")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let tagged = format!("<http://localhost/dav/f.txt> (<{token}>)");
    let r = dav
        .send("PUT", "/dav/f.txt", &[("if", &tagged)], "v3")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = dav
        .send(
            "PUT",
            "/dav/f.txt",
            &[("if", "(<opaquelocktoken:bogus>)")],
            "v4",
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let wrong = format!("(<{token}x>) (Not <DAV:no-lock>)");
    let r = dav.send("PUT", "/dav/f.txt", &[("if", &wrong)], "v4").await;
    assert_eq!(r.status, StatusCode::LOCKED);

    let disc = dav
        .propfind(
            "/dav/f.txt",
            "0",
            "<propfind xmlns='DAV:'><prop><lockdiscovery/></prop></propfind>",
        )
        .await;
    assert!(disc.text().contains(&token) && disc.text().contains("<D:owner>tester</D:owner>"));

    let refresh = dav
        .send(
            "LOCK",
            "/dav/f.txt",
            &[("if", &with_token), ("timeout", "Second-30")],
            Bytes::new(),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::OK);
    assert!(refresh.text().contains("Second-30"));

    let bad = dav
        .send(
            "UNLOCK",
            "/dav/f.txt",
            &[("lock-token", "<opaquelocktoken:bogus>")],
            Bytes::new(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::CONFLICT);
    let angle = format!("<{token}>");
    let r = dav
        .send(
            "UNLOCK",
            "/dav/f.txt",
            &[("lock-token", &angle)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        dav.put("/dav/f.txt", "free").await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn shared_locks_coexist() {
    let dav = Dav::new();
    dav.put("/dav/s.txt", "x").await;
    let (s1, t1) = lock(&dav, "/dav/s.txt", "shared", "0").await;
    let (s2, t2) = lock(&dav, "/dav/s.txt", "shared", "0").await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_ne!(t1, t2);
    assert_eq!(
        lock(&dav, "/dav/s.txt", "exclusive", "0").await.0,
        StatusCode::LOCKED
    );
    let cond = format!("(<{}>)", t2.expect("token"));
    assert_eq!(
        dav.send("PUT", "/dav/s.txt", &[("if", &cond)], "y")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn collection_lock_covers_members_and_creation() {
    let dav = Dav::new();
    dav.mkcol("/dav/c").await;
    let (status, token) = lock(&dav, "/dav/c/", "exclusive", "infinity").await;
    assert_eq!(status, StatusCode::OK);
    let token = token.expect("token");
    assert_eq!(
        dav.put("/dav/c/new.txt", "x").await.status,
        StatusCode::LOCKED
    );
    assert_eq!(dav.mkcol("/dav/c/sub").await.status, StatusCode::LOCKED);
    let cond = format!("</dav/c/> (<{token}>)");
    assert_eq!(
        dav.send("PUT", "/dav/c/new.txt", &[("if", &cond)], "x")
            .await
            .status,
        StatusCode::CREATED
    );
    let disc = dav
        .propfind(
            "/dav/c/",
            "0",
            "<propfind xmlns='DAV:'><prop><lockdiscovery/></prop></propfind>",
        )
        .await;
    assert!(
        disc.text().contains("<D:lockroot><D:href>/dav/c/</D:href>"),
        "{}",
        disc.text()
    );
    // Indirect refresh through a member.
    let direct = format!("(<{token}>)");
    let r = dav
        .send("LOCK", "/dav/c/new.txt", &[("if", &direct)], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // COPY onto a locked destination needs the token; COPY from it does not.
    dav.put("/dav/other.txt", "o").await;
    let onto = [("destination", "/dav/c/new.txt")];
    assert_eq!(
        dav.send("COPY", "/dav/other.txt", &onto, Bytes::new())
            .await
            .status,
        StatusCode::LOCKED
    );
    let from = [("destination", "/dav/copied.txt")];
    assert_eq!(
        dav.send("COPY", "/dav/c/new.txt", &from, Bytes::new())
            .await
            .status,
        StatusCode::CREATED
    );
    // Locks don't follow copies.
    assert_eq!(
        dav.put("/dav/copied.txt", "free").await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn lock_on_unmapped_url_creates_empty_file() {
    let dav = Dav::new();
    let (status, token) = lock(&dav, "/dav/unmapped", "exclusive", "0").await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(token.is_some());
    let r = dav.get("/dav/unmapped").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(
        lock(&dav, "/dav/nodir/x", "exclusive", "0").await.0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn malformed_lock_requests() {
    let dav = Dav::new();
    dav.put("/dav/m.txt", "x").await;
    let r = dav
        .send("LOCK", "/dav/m.txt", &[], "<lockinfo xmlns='DAV:'>")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav.send("LOCK", "/dav/m.txt", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav
        .send(
            "LOCK",
            "/dav/m.txt",
            &[("depth", "1")],
            lockinfo("exclusive"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav
        .send("PUT", "/dav/m.txt", &[("if", "(<unterminated")], "y")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav.send("UNLOCK", "/dav/m.txt", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
