//! The web pages' JSON API end to end, in memory: an App over a temporary store, called with
//! requests as the server would hand them over.

use std::io::Read;
use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use percloud_web::{App, ListenerKind};
use serde_json::{Value, json};

mod common;

use common::{PASSWORD, Pieces, TestBox};

/// A body in one piece.
fn body(bytes: impl Into<Bytes>) -> Pieces {
    Pieces::whole(bytes)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A browser: keeps its cookies and CSRF token.
#[derive(Clone)]
struct Browser {
    app: App,
    peer: SocketAddr,
    cookies: Vec<(String, String)>,
    csrf: Option<String>,
}

impl Browser {
    fn new(b: &TestBox) -> Self {
        Browser {
            app: b.app.clone(),
            peer: "127.0.0.1:40000".parse().expect("addr"),
            cookies: Vec::new(),
            csrf: None,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Pieces,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "box");
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            builder = builder.header(header::COOKIE, cookie.join("; "));
        }
        let request = builder.body(body).expect("request");
        // Off the machine itself, only TLS is served in full.
        let kind = if self.peer.ip().is_loopback() {
            ListenerKind::Plain
        } else {
            ListenerKind::Tls
        };
        let response = self.app.respond(request, self.peer, kind).await;
        for value in response.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii");
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("cookie pair");
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A JSON request with the CSRF header when signed in.
    async fn call(&mut self, method: &str, uri: &str, value: Option<Value>) -> Answer {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut headers = vec![("content-type", "application/json")];
        if self.csrf.is_some() {
            headers.push(("x-csrf-token", csrf.as_str()));
        }
        let bytes = value.map(|v| v.to_string()).unwrap_or_default();
        self.send(method, uri, &headers, body(bytes)).await
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send("GET", uri, &[], body(Bytes::new())).await
    }

    async fn sign_in(&mut self, route: &str, name: &str) -> Answer {
        let answer = self
            .call(
                "POST",
                route,
                Some(json!({"name": name, "password": PASSWORD})),
            )
            .await;
        if answer.status == StatusCode::OK {
            self.csrf = answer.json()["csrf"].as_str().map(str::to_owned);
        }
        answer
    }
}

/// A claimed box with owner alice (signed in) and user bob (signed in).
async fn two_users() -> (TestBox, Browser, Browser) {
    let b = TestBox::new();
    let mut alice = Browser::new(&b);
    assert_eq!(
        alice.sign_in("/api/claim", "alice").await.status,
        StatusCode::OK
    );
    let created = alice
        .call(
            "POST",
            "/api/admin/users",
            Some(json!({"name": "bob", "password": PASSWORD, "quota": null})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let mut bob = Browser::new(&b);
    assert_eq!(
        bob.sign_in("/api/login", "bob").await.status,
        StatusCode::OK
    );
    (b, alice, bob)
}

async fn upload(browser: &mut Browser, path: &str, content: &[u8]) -> Answer {
    let create = tus_create(browser, path, content.len() as u64).await;
    let location = create.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    tus_patch(browser, &location, 0, body(content.to_vec())).await
}

async fn tus_create(browser: &mut Browser, path: &str, len: u64) -> Answer {
    let csrf = browser.csrf.clone().unwrap_or_default();
    let meta = format!(
        "path {},mtime {}",
        base64::engine::general_purpose::STANDARD.encode(path),
        base64::engine::general_purpose::STANDARD.encode("1700000000")
    );
    let len = len.to_string();
    let answer = browser
        .send(
            "POST",
            "/api/tus/",
            &[
                ("tus-resumable", "1.0.0"),
                ("x-csrf-token", &csrf),
                ("upload-length", &len),
                ("upload-metadata", &meta),
            ],
            body(Bytes::new()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.json());
    answer
}

async fn tus_patch(browser: &mut Browser, location: &str, offset: u64, content: Pieces) -> Answer {
    let csrf = browser.csrf.clone().unwrap_or_default();
    let offset = offset.to_string();
    browser
        .send(
            "PATCH",
            location,
            &[
                ("tus-resumable", "1.0.0"),
                ("x-csrf-token", &csrf),
                ("content-type", "application/offset+octet-stream"),
                ("upload-offset", &offset),
            ],
            content,
        )
        .await
}

fn q(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn claim_login_logout_and_csrf() {
    let b = TestBox::new();
    let mut browser = Browser::new(&b);
    let state = browser.get("/api/state").await.json();
    assert_eq!(state["claimed"], false);
    assert_eq!(state["claim_allowed"], true);
    assert_eq!(state["user"], Value::Null);

    // Claim needs JSON (a cross-site form cannot send it).
    let form = browser
        .send(
            "POST",
            "/api/claim",
            &[("content-type", "application/x-www-form-urlencoded")],
            body("name=a"),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let claimed = browser.sign_in("/api/claim", "alice").await;
    assert_eq!(claimed.status, StatusCode::OK);
    let cookie = claimed.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain loopback connection: {cookie}"
    );
    assert_eq!(claimed.json()["user"]["owner"], true);
    let mut other = Browser::new(&b);
    assert_eq!(
        other.sign_in("/api/claim", "mallory").await.status,
        StatusCode::CONFLICT
    );

    // CSRF: a state change without the token is refused, with it accepted.
    let csrf = browser.csrf.take();
    let refused = browser
        .call("POST", "/api/mkdir", Some(json!({"path": "/a"})))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    browser.csrf = Some("wrong".into());
    let refused = browser
        .call("POST", "/api/mkdir", Some(json!({"path": "/a"})))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    browser.csrf = csrf;
    let made = browser
        .call("POST", "/api/mkdir", Some(json!({"path": "/a"})))
        .await;
    assert_eq!(made.status, StatusCode::CREATED);

    let sessions = browser.get("/api/sessions").await.json();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));
    assert_eq!(sessions[0]["current"], true);

    assert_eq!(
        browser.call("POST", "/api/logout", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        browser.get("/api/list?path=%2F").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Wrong passwords: 401, then slowed down with 429 and Retry-After.
    let mut guesser = Browser::new(&b);
    for _ in 0..5 {
        let wrong = guesser
            .call(
                "POST",
                "/api/login",
                Some(json!({"name": "alice", "password": "nope-nope-nope"})),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let _ = guesser
        .call(
            "POST",
            "/api/login",
            Some(json!({"name": "alice", "password": "nope-nope-nope"})),
        )
        .await;
    let slowed = guesser.sign_in("/api/login", "alice").await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(slowed.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn claim_is_refused_from_a_public_address() {
    let b = TestBox::new();
    let mut browser = Browser::new(&b);
    browser.peer = "8.8.8.8:5000".parse().expect("addr");
    let request = Request::builder()
        .method("POST")
        .uri("/api/claim")
        .header("content-type", "application/json")
        .body(body(
            json!({"name": "eve", "password": PASSWORD}).to_string(),
        ))
        .expect("request");
    let answer = b
        .app
        .respond(request, browser.peer, ListenerKind::Tls)
        .await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let request = Request::builder()
        .uri("/api/state")
        .body(body(Bytes::new()))
        .expect("request");
    let answer = b
        .app
        .respond(request, browser.peer, ListenerKind::Tls)
        .await;
    let state: Value =
        serde_json::from_slice(&answer.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    assert_eq!(state["claim_allowed"], false);
    // From the LAN over TLS it works, and the cookie is Secure.
    let request = Request::builder()
        .method("POST")
        .uri("/api/claim")
        .header("content-type", "application/json")
        .body(body(
            json!({"name": "alice", "password": PASSWORD}).to_string(),
        ))
        .expect("request");
    let answer = b
        .app
        .respond(
            request,
            "192.168.1.9:5000".parse().expect("addr"),
            ListenerKind::Tls,
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        answer.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Secure")
    );
}

#[tokio::test]
async fn files_trash_and_versions() {
    let (_b, mut alice, _bob) = two_users().await;
    assert_eq!(
        alice
            .call("POST", "/api/mkdir", Some(json!({"path": "/Photos"})))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(&mut alice, "/Photos/cat.jpg", b"one").await.status,
        StatusCode::NO_CONTENT
    );
    let second = upload(&mut alice, "/Photos/cat.jpg", b"two!").await;
    assert!(second.headers.contains_key("x-percloud-etag"));

    let list = alice
        .get(&format!("/api/list?path={}", q("/Photos")))
        .await
        .json();
    assert_eq!(list["entry"]["kind"], "dir");
    assert_eq!(list["children"][0]["path"], "/Photos/cat.jpg");
    assert_eq!(list["children"][0]["mime"], "image/jpeg");
    assert_eq!(list["children"][0]["thumb"], true);
    assert_eq!(list["children"][0]["size"], 4);
    assert_eq!(list["children"][0]["mtime"], 1_700_000_000);

    let file = alice
        .get(&format!("/api/file?path={}", q("/Photos/cat.jpg")))
        .await;
    assert_eq!(&file.body[..], b"two!");
    assert!(
        file.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("inline")
    );
    let ranged = alice
        .send(
            "GET",
            &format!("/api/file?path={}&download=1", q("/Photos/cat.jpg")),
            &[("range", "bytes=1-2")],
            body(Bytes::new()),
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.body[..], b"wo");
    assert!(
        ranged.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );

    // Hostile paths are 400.
    assert_eq!(
        alice.get("/api/list?path=%2F..%2Fetc").await.status,
        StatusCode::BAD_REQUEST
    );

    let moved = alice
        .call(
            "POST",
            "/api/move",
            Some(json!({"from": "/Photos/cat.jpg", "to": "/Photos/kitty.jpg"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.json()["path"], "/Photos/kitty.jpg");
    let copied = alice
        .call(
            "POST",
            "/api/copy",
            Some(json!({"from": "/Photos/kitty.jpg", "to": "/copy.jpg"})),
        )
        .await;
    assert_eq!(copied.status, StatusCode::CREATED);
    let clash = alice
        .call(
            "POST",
            "/api/move",
            Some(json!({"from": "/copy.jpg", "to": "/Photos/kitty.jpg"})),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);

    let found = alice.get("/api/search?q=KITTY").await.json();
    assert_eq!(found["results"][0]["path"], "/Photos/kitty.jpg");

    let versions = alice
        .get(&format!("/api/versions?path={}", q("/Photos/kitty.jpg")))
        .await
        .json();
    let versions = versions["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["current"], true);
    let old = versions[1]["version"].as_u64().expect("version");
    let old_body = alice
        .get(&format!(
            "/api/versions/file?path={}&version={old}",
            q("/Photos/kitty.jpg")
        ))
        .await;
    assert_eq!(&old_body.body[..], b"one");
    let restored = alice
        .call(
            "POST",
            "/api/versions/restore",
            Some(json!({"path": "/Photos/kitty.jpg", "version": old})),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK);
    assert_eq!(
        &alice
            .get(&format!("/api/file?path={}", q("/Photos/kitty.jpg")))
            .await
            .body[..],
        b"one"
    );

    assert_eq!(
        alice
            .call(
                "POST",
                "/api/delete",
                Some(json!({"paths": ["/Photos/kitty.jpg"]}))
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice
            .get(&format!("/api/file?path={}", q("/Photos/kitty.jpg")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let trash = alice.get("/api/trash").await.json();
    assert_eq!(trash["items"][0]["original_path"], "/Photos/kitty.jpg");
    let id = trash["items"][0]["id"].as_u64().expect("id");
    let back = alice
        .call("POST", &format!("/api/trash/{id}/restore"), None)
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.json());
    assert_eq!(back.json()["path"], "/Photos/kitty.jpg");
    assert_eq!(
        alice
            .call("POST", "/api/delete", Some(json!({"paths": ["/copy.jpg"]})))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.call("POST", "/api/trash/empty", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(alice.get("/api/trash").await.json()["items"], json!([]));

    let usage = alice.get("/api/usage").await.json();
    assert_eq!(usage["used"], 3);
    assert_eq!(usage["quota"], Value::Null);
    let thumb = alice
        .get(&format!(
            "/api/thumb?path={}&size=256",
            q("/Photos/kitty.jpg")
        ))
        .await;
    assert!(
        matches!(
            thumb.status,
            StatusCode::ACCEPTED | StatusCode::UNSUPPORTED_MEDIA_TYPE
        ),
        "{}",
        thumb.status
    );
}

#[tokio::test]
async fn another_users_files_and_shares_are_unreachable() {
    let (_b, mut alice, mut bob) = two_users().await;
    upload(&mut alice, "/secret.txt", b"alice only").await;
    let share = alice
        .call(
            "POST",
            "/api/shares",
            Some(json!({"path": "/secret.txt", "mode": "read", "password": null, "expires": null})),
        )
        .await;
    assert_eq!(share.status, StatusCode::CREATED);
    let id = share.json()["id"].as_u64().expect("id");

    assert_eq!(
        bob.get(&format!("/api/file?path={}", q("/secret.txt")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(bob.get("/api/shares").await.json()["shares"], json!([]));
    assert_eq!(
        bob.call("DELETE", &format!("/api/shares/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.get("/api/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.call(
            "PUT",
            "/api/admin/retention",
            Some(json!({"keep_versions": 1, "keep_days": 1, "trash_days": 1}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let bob_sessions = bob.get("/api/sessions").await.json();
    assert_eq!(bob_sessions.as_array().map(Vec::len), Some(1));
    let alice_session = alice.get("/api/sessions").await.json()[0]["id"]
        .as_u64()
        .expect("id");
    assert_eq!(
        bob.call("DELETE", &format!("/api/sessions/{alice_session}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Alice's link still works.
    assert_eq!(alice.get("/api/shares").await.json()["shares"][0]["id"], id);
}

#[tokio::test]
async fn resumable_upload_survives_a_broken_patch() {
    let (_b, mut alice, _bob) = two_users().await;
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let create = tus_create(&mut alice, "/big.bin", content.len() as u64).await;
    let location = create.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(create.headers.contains_key("upload-expires"));

    // The first PATCH breaks off after 1.25 MB.
    let cut = Pieces {
        pieces: content[..1_250_000]
            .chunks(100_000)
            .map(Bytes::copy_from_slice)
            .collect(),
        breaks: true,
    };
    let _ = tus_patch(&mut alice, &location, 0, cut).await;
    let head = alice
        .send(
            "HEAD",
            &location,
            &[("tus-resumable", "1.0.0")],
            body(Bytes::new()),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers[header::CACHE_CONTROL], "no-store");
    let offset: u64 = head.headers["upload-offset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert_eq!(offset, 1_250_000, "what arrived is kept");
    assert_eq!(head.headers["upload-length"], "3000000");

    // A wrong offset is 409; the right one finishes the file.
    let wrong = tus_patch(&mut alice, &location, 5, body(Bytes::from_static(b"x"))).await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    let rest = tus_patch(
        &mut alice,
        &location,
        offset,
        body(content[offset as usize..].to_vec()),
    )
    .await;
    assert_eq!(rest.status, StatusCode::NO_CONTENT);
    assert_eq!(rest.headers["upload-offset"], "3000000");
    assert!(rest.headers.contains_key("x-percloud-etag"));
    let stored = alice
        .get(&format!("/api/file?path={}", q("/big.bin")))
        .await;
    assert_eq!(blake3::hash(&stored.body), blake3::hash(&content));
    assert_eq!(
        alice
            .send(
                "HEAD",
                &location,
                &[("tus-resumable", "1.0.0")],
                body(Bytes::new())
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Termination, version check, missing folder.
    let create = tus_create(&mut alice, "/gone.bin", 10).await;
    let location = create.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    let csrf = alice.csrf.clone().unwrap_or_default();
    let deleted = alice
        .send(
            "DELETE",
            &location,
            &[("tus-resumable", "1.0.0"), ("x-csrf-token", &csrf)],
            body(Bytes::new()),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let no_version = alice.send("HEAD", &location, &[], body(Bytes::new())).await;
    assert_eq!(no_version.status, StatusCode::PRECONDITION_FAILED);
    let options = alice
        .send("OPTIONS", "/api/tus/", &[], body(Bytes::new()))
        .await;
    assert_eq!(
        options.headers["tus-extension"],
        "creation,termination,expiration"
    );
    let meta = format!(
        "path {}",
        base64::engine::general_purpose::STANDARD.encode("/nope/a.bin")
    );
    let missing = alice
        .send(
            "POST",
            "/api/tus/",
            &[
                ("tus-resumable", "1.0.0"),
                ("x-csrf-token", &csrf),
                ("upload-length", "3"),
                ("upload-metadata", &meta),
            ],
            body(Bytes::new()),
        )
        .await;
    assert_eq!(missing.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn folder_zip_lists_everything() {
    let (_b, mut alice, _bob) = two_users().await;
    alice
        .call("POST", "/api/mkdir", Some(json!({"path": "/Trip"})))
        .await;
    alice
        .call("POST", "/api/mkdir", Some(json!({"path": "/Trip/day 1"})))
        .await;
    alice
        .call("POST", "/api/mkdir", Some(json!({"path": "/Trip/empty"})))
        .await;
    upload(&mut alice, "/Trip/a.txt", b"hello").await;
    upload(&mut alice, "/Trip/day 1/été.jpg", &vec![7u8; 200_000]).await;
    let zip = alice.get(&format!("/api/zip?path={}", q("/Trip"))).await;
    assert_eq!(zip.status, StatusCode::OK);
    assert_eq!(zip.headers[header::CONTENT_TYPE], "application/zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.body.to_vec())).expect("a zip");
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .expect("names");
    names.sort();
    assert_eq!(names, ["a.txt", "day 1/été.jpg", "empty/"]);
    let mut text = String::new();
    archive
        .by_name("a.txt")
        .expect("a.txt")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "hello");
    let mut photo = Vec::new();
    archive
        .by_name("day 1/été.jpg")
        .expect("photo")
        .read_to_end(&mut photo)
        .expect("read");
    assert_eq!(photo, vec![7u8; 200_000]);
    assert_eq!(
        alice
            .get(&format!("/api/zip?path={}", q("/Trip/a.txt")))
            .await
            .status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn share_links() {
    let (b, mut alice, _bob) = two_users().await;
    alice
        .call("POST", "/api/mkdir", Some(json!({"path": "/Shared"})))
        .await;
    alice
        .call("POST", "/api/mkdir", Some(json!({"path": "/Drop"})))
        .await;
    upload(&mut alice, "/Shared/photo.jpg", b"jpeg bytes").await;
    upload(&mut alice, "/private.txt", b"not shared").await;

    let made = alice
        .call("POST", "/api/shares", Some(json!({"path": "/Shared", "mode": "read", "password": "open sesame", "expires": null})))
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let url = made.json()["url"].as_str().expect("url").to_owned();
    let token = url.strip_prefix("/s/").expect("/s/ url").to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(
        alice.get("/api/shares").await.json()["shares"][0]["url"],
        url.as_str()
    );

    let mut stranger = Browser::new(&b);
    stranger.peer = "192.168.1.50:6000".parse().expect("addr");
    let info = stranger.get(&format!("/api/public/{token}")).await.json();
    assert_eq!(info["needs_password"], true);
    assert_eq!(info["kind"], "dir");
    assert_eq!(
        stranger
            .get(&format!("/api/public/{token}/list?path=%2F"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = stranger
        .send(
            "POST",
            &format!("/api/public/{token}/unlock"),
            &[("content-type", "application/json")],
            body(json!({"password": "guess"}).to_string()),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = stranger
        .send(
            "POST",
            &format!("/api/public/{token}/unlock"),
            &[("content-type", "application/json")],
            body(json!({"password": "open sesame"}).to_string()),
        )
        .await;
    assert_eq!(right.status, StatusCode::NO_CONTENT);
    let list = stranger
        .get(&format!("/api/public/{token}/list?path=%2F"))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["children"][0]["path"], "/photo.jpg");
    let file = stranger
        .get(&format!(
            "/api/public/{token}/file?path=%2Fphoto.jpg&download=1"
        ))
        .await;
    assert_eq!(&file.body[..], b"jpeg bytes");
    // Never outside the shared folder.
    assert_eq!(
        stranger
            .get(&format!(
                "/api/public/{token}/file?path=%2F..%2Fprivate.txt"
            ))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        stranger
            .get(&format!("/api/public/{token}/file?path=%2Fprivate.txt"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stranger
            .get(&format!("/api/public/{token}/zip"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        stranger
            .get(&format!("/api/public/{token}/upload"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Wrong passwords from one address are slowed down.
    let mut guesser = Browser::new(&b);
    guesser.peer = "192.168.1.51:6000".parse().expect("addr");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let answer = guesser
            .send(
                "POST",
                &format!("/api/public/{token}/unlock"),
                &[("content-type", "application/json")],
                body(json!({"password": "guess"}).to_string()),
            )
            .await;
        statuses.push(answer.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // Upload-only: accepts files (renaming on clashes), shows nothing.
    let drop = alice
        .call(
            "POST",
            "/api/shares",
            Some(json!({"path": "/Drop", "mode": "upload"})),
        )
        .await;
    let drop_token = drop.json()["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("/s/")
        .to_owned();
    for expected in ["report.pdf", "report (2).pdf"] {
        let put = stranger
            .send(
                "PUT",
                &format!("/api/public/{drop_token}/upload?name=report.pdf"),
                &[],
                body("pdf"),
            )
            .await;
        assert_eq!(put.status, StatusCode::CREATED);
        assert_eq!(put.json()["name"], expected);
    }
    assert_eq!(
        stranger
            .get(&format!("/api/public/{drop_token}/list?path=%2F"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stranger
            .get(&format!("/api/public/{drop_token}/file?path=%2Freport.pdf"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stranger
            .get(&format!("/api/public/{drop_token}/zip"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stranger
            .send(
                "PUT",
                &format!("/api/public/{token}/upload?name=x"),
                &[],
                body("x")
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stranger
            .send(
                "PUT",
                &format!("/api/public/{drop_token}/upload?name=..%2Fx"),
                &[],
                body("x")
            )
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Expired, revoked and unknown links: the same 404.
    let expired = alice
        .call(
            "POST",
            "/api/shares",
            Some(json!({"path": "/Shared", "mode": "read", "expires": 1000})),
        )
        .await;
    let expired_token = expired.json()["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("/s/")
        .to_owned();
    let id = made.json()["id"].as_u64().expect("id");
    assert_eq!(
        alice
            .call("DELETE", &format!("/api/shares/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let unknown = "A".repeat(43);
    let mut bodies = Vec::new();
    for dead in [&expired_token, &token, &unknown] {
        let answer = stranger.get(&format!("/api/public/{dead}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        bodies.push(answer.body);
        assert_eq!(
            stranger
                .get(&format!("/api/public/{dead}/file?path=%2Fphoto.jpg"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn admin_is_for_the_owner() {
    let (_b, mut alice, mut bob) = two_users().await;
    let users = alice.get("/api/admin/users").await.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(users["users"][0]["owner"], true);
    assert_eq!(
        alice
            .call(
                "POST",
                "/api/admin/users/bob/quota",
                Some(json!({"quota": 1000}))
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(bob.get("/api/usage").await.json()["quota"], 1000);
    // A reset ends bob's sessions.
    assert_eq!(
        alice
            .call(
                "POST",
                "/api/admin/users/bob/password",
                Some(json!({"password": "another-long-one"}))
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(bob.get("/api/usage").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        alice
            .call("DELETE", "/api/admin/users/alice", None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        alice
            .call("DELETE", "/api/admin/users/bob", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        alice
            .call(
                "PUT",
                "/api/admin/retention",
                Some(json!({"keep_versions": 3, "keep_days": 7, "trash_days": 14}))
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let storage = alice.get("/api/admin/storage").await.json();
    assert_eq!(storage["retention"]["keep_versions"], 3);
    assert!(storage["disk_total"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(
        alice.call("POST", "/api/admin/fsck", None).await.status,
        StatusCode::ACCEPTED
    );
    let mut finished = false;
    for _ in 0..200 {
        let fsck = alice.get("/api/admin/storage").await.json()["fsck"].clone();
        if fsck["running"] == false {
            assert_eq!(fsck["clean"], true, "{fsck}");
            finished = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(finished, "fsck finished");
    let system = alice.get("/api/admin/system").await.json();
    assert_eq!(system["version"], env!("CARGO_PKG_VERSION"));
    assert!(system["logs"].is_array());

    // Password change: the wrong current one is 403.
    assert_eq!(
        alice
            .call(
                "POST",
                "/api/password",
                Some(json!({"current": "nope-nope-nope", "new": "brand-new-password"}))
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice
            .call(
                "POST",
                "/api/password",
                Some(json!({"current": PASSWORD, "new": "brand-new-password"}))
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.get("/api/usage").await.status,
        StatusCode::OK,
        "this session stays"
    );
}

#[tokio::test]
async fn discovery_names_and_the_phone_qr_are_for_the_owner() {
    let b = TestBox::configured(|config, dir| {
        config.https_port = Some(8443);
        config.tls = Some(percloud_web::TlsInfo {
            ca_pem: String::new(),
            ca_fingerprint: "00".into(),
            server_fingerprint: "AB:CD".into(),
        });
        let discovery = percloud_discovery::Discovery::new(percloud_discovery::Settings {
            data: dir.to_owned(),
            hostname: "percloud".into(),
            instance: None,
            enabled: false,
            https_port: 8443,
            plain_http_port: None,
            fingerprint: "AB:CD".into(),
            version: "0.1.0".into(),
        })
        .expect("discovery");
        config.discovery = Some(discovery);
    });
    let mut alice = Browser::new(&b);
    assert_eq!(
        alice.sign_in("/api/claim", "alice").await.status,
        StatusCode::OK
    );
    let created = alice
        .call(
            "POST",
            "/api/admin/users",
            Some(json!({"name": "bob", "password": PASSWORD, "quota": null})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let mut bob = Browser::new(&b);
    assert_eq!(
        bob.sign_in("/api/login", "bob").await.status,
        StatusCode::OK
    );

    let overview = alice.get("/api/discovery").await;
    assert_eq!(overview.status, StatusCode::OK);
    let overview = overview.json();
    assert_eq!(overview["hostname"], "percloud");
    assert_eq!(overview["enabled"], false);
    assert_eq!(overview["devices"], json!([]));
    assert_eq!(
        overview["connect"]["urls"][0],
        "https://percloud.local:8443/"
    );
    assert_eq!(overview["connect"]["fingerprint"], "AB:CD");
    let types: Vec<&str> = overview["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(types, ["_https._tcp", "_webdavs._tcp", "_percloud._tcp"]);
    assert_eq!(
        bob.get("/api/discovery").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.get("/api/admin/phone-qr.svg").await.status,
        StatusCode::FORBIDDEN
    );

    let qr = alice.get("/api/admin/phone-qr.svg").await;
    assert_eq!(qr.status, StatusCode::OK);
    assert_eq!(qr.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(String::from_utf8_lossy(&qr.body).contains("<svg"));
    assert_eq!(
        alice.get("/api/admin/phone-qr.svg?url=99").await.status,
        StatusCode::NOT_FOUND
    );

    let renamed = alice
        .call(
            "PUT",
            "/api/admin/names",
            Some(json!({"instance": "Attic box", "hostname": "attic"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.json());
    assert_eq!(renamed.json()["hostname"], "attic");
    assert_eq!(renamed.json()["instance"], "Attic box");
    assert_eq!(
        alice.get("/api/admin/system").await.json()["hostname"],
        "attic"
    );
    for bad in [
        json!({"instance": "ok", "hostname": "not a name"}),
        json!({"instance": "", "hostname": "attic"}),
        json!({"instance": "ok", "hostname": "attic", "extra": 1}),
    ] {
        let answer = alice.call("PUT", "/api/admin/names", Some(bad)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            answer.json()
        );
    }
    assert_eq!(
        bob.call(
            "PUT",
            "/api/admin/names",
            Some(json!({"instance": "x", "hostname": "x"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}
