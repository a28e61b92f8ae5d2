//! App passwords end to end, in memory: an App over a temporary store, called with requests as
//! the server would hand them over. Which doors an app password opens (WebDAV, OCS) and which
//! it does not (the web pages' sign-in), and what revokes it (the owner's reset, the account's
//! removal, the device list) and what does not (the user's own password change, guesses at
//! the account from elsewhere).

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use percloud_web::{App, ListenerKind};
use serde_json::{Value, json};

mod common;

use common::{PASSWORD, Pieces, TestBox};

struct Client {
    app: App,
    peer: SocketAddr,
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Client {
    fn new(app: &App, peer: &str) -> Client {
        Client {
            app: app.clone(),
            peer: peer.parse().expect("addr"),
            cookie: None,
            csrf: None,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "box.local");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(cookie) = &self.cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = &self.csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        let request = builder
            .body(Pieces::whole(body.to_owned()))
            .expect("request");
        let response = self
            .app
            .respond(request, self.peer, ListenerKind::Tls)
            .await;
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            let pair = set
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair");
            self.cookie = Some(pair.to_owned());
        }
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Answer { status, body }
    }

    async fn json(&mut self, method: &str, uri: &str, value: Value) -> Answer {
        self.send(
            method,
            uri,
            &[("content-type", "application/json")],
            &value.to_string(),
        )
        .await
    }

    async fn sign_in(&mut self, route: &str, name: &str, password: &str) -> Answer {
        let answer = self
            .json("POST", route, json!({"name": name, "password": password}))
            .await;
        if answer.status == StatusCode::OK {
            self.csrf = answer.json()["csrf"].as_str().map(str::to_owned);
        }
        answer
    }

    /// `GET /dav/` depth 0 with Basic credentials: the status.
    async fn dav(&mut self, name: &str, password: &str) -> StatusCode {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        self.send(
            "PROPFIND",
            "/dav/",
            &[("authorization", &format!("Basic {basic}")), ("depth", "0")],
            "",
        )
        .await
        .status
    }

    async fn new_app_password(&mut self, name: &str) -> (u64, String) {
        let made = self
            .json("POST", "/api/app-passwords", json!({"name": name}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED);
        let made = made.json();
        (
            made["id"].as_u64().expect("id"),
            made["password"].as_str().expect("password").to_owned(),
        )
    }
}

/// Owner alice (signed in) and user bob (signed in), each in their own browser.
async fn two_users(b: &TestBox) -> (Client, Client) {
    let mut alice = Client::new(&b.app, "192.168.1.10:5000");
    assert_eq!(
        alice.sign_in("/api/claim", "alice", PASSWORD).await.status,
        StatusCode::OK
    );
    let created = alice
        .json(
            "POST",
            "/api/admin/users",
            json!({"name": "bob", "password": PASSWORD, "quota": null}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let mut bob = Client::new(&b.app, "192.168.1.11:5000");
    assert_eq!(
        bob.sign_in("/api/login", "bob", PASSWORD).await.status,
        StatusCode::OK
    );
    (alice, bob)
}

#[tokio::test]
async fn an_app_password_opens_webdav_but_not_the_web_pages() {
    let b = TestBox::new();
    let (mut alice, mut bob) = two_users(&b).await;
    let (_, pw) = alice.new_app_password("laptop").await;
    let mut device = Client::new(&b.app, "192.168.1.20:5000");
    assert_eq!(device.dav("alice", &pw).await, StatusCode::MULTI_STATUS);
    // Only with its own account's name.
    assert_eq!(device.dav("bob", &pw).await, StatusCode::UNAUTHORIZED);
    // Not a web session, nor a password confirmation.
    let mut other = Client::new(&b.app, "192.168.1.21:5000");
    assert_eq!(
        other.sign_in("/api/login", "alice", &pw).await.status,
        StatusCode::UNAUTHORIZED
    );
    let change = alice
        .json(
            "POST",
            "/api/password",
            json!({"current": pw, "new": "another long password"}),
        )
        .await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    // Another user cannot see or revoke it.
    let list = bob.send("GET", "/api/app-passwords", &[], "").await;
    assert_eq!(list.json(), json!([]));
    let listed = alice
        .send("GET", "/api/app-passwords", &[], "")
        .await
        .json();
    let id = listed[0]["id"].as_u64().expect("id");
    let theirs = bob
        .send("DELETE", &format!("/api/app-passwords/{id}"), &[], "")
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(device.dav("alice", &pw).await, StatusCode::MULTI_STATUS);
    // An empty name is refused; CSRF is required.
    let nameless = alice
        .json("POST", "/api/app-passwords", json!({"name": " "}))
        .await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    alice.csrf = None;
    let forged = alice
        .json("POST", "/api/app-passwords", json!({"name": "x"}))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn own_password_change_keeps_devices_an_owner_reset_and_removal_revoke_them() {
    let b = TestBox::new();
    let (mut alice, mut bob) = two_users(&b).await;
    let (_, alice_pw) = alice.new_app_password("phone").await;
    let (_, bob_pw) = bob.new_app_password("phone").await;
    let mut device = Client::new(&b.app, "192.168.1.20:5000");

    let changed = alice
        .json(
            "POST",
            "/api/password",
            json!({"current": PASSWORD, "new": "a brand new password"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        device.dav("alice", &alice_pw).await,
        StatusCode::MULTI_STATUS
    );

    let reset = alice
        .json(
            "POST",
            "/api/admin/users/bob/password",
            json!({"password": "reset by the owner"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(device.dav("bob", &bob_pw).await, StatusCode::UNAUTHORIZED);

    // A removed and recreated account does not inherit the old one's devices.
    let (_, bob_pw) = {
        let mut bob = Client::new(&b.app, "192.168.1.11:5000");
        bob.sign_in("/api/login", "bob", "reset by the owner").await;
        bob.new_app_password("tablet").await
    };
    assert_eq!(device.dav("bob", &bob_pw).await, StatusCode::MULTI_STATUS);
    let removed = alice.send("DELETE", "/api/admin/users/bob", &[], "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let recreated = alice
        .json(
            "POST",
            "/api/admin/users",
            json!({"name": "bob", "password": PASSWORD, "quota": null}),
        )
        .await;
    assert_eq!(recreated.status, StatusCode::CREATED);
    assert_eq!(device.dav("bob", &bob_pw).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guesses_at_the_account_do_not_stall_its_devices() {
    let b = TestBox::new();
    let (mut alice, _bob) = two_users(&b).await;
    let (id, pw) = alice.new_app_password("phone").await;
    // Wrong passwords for alice from many addresses lock the account name for guesses…
    for i in 0..12 {
        let mut guesser = Client::new(&b.app, &format!("203.0.113.{i}:4000"));
        let status = guesser.dav("alice", "not the password").await;
        assert!(
            matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{status}"
        );
    }
    let mut guesser = Client::new(&b.app, "203.0.113.99:4000");
    assert_eq!(
        guesser.dav("alice", "still not it").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // …while her device, with its app password, goes on.
    let mut device = Client::new(&b.app, "192.168.1.20:5000");
    assert_eq!(device.dav("alice", &pw).await, StatusCode::MULTI_STATUS);
    // Revoked from the list: the very next request fails.
    let revoked = alice
        .send("DELETE", &format!("/api/app-passwords/{id}"), &[], "")
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_ne!(device.dav("alice", &pw).await, StatusCode::MULTI_STATUS);
}

#[tokio::test]
async fn a_revoked_device_retrying_does_not_lock_its_owner_out() {
    let b = TestBox::new();
    let (mut alice, _bob) = two_users(&b).await;
    let (id, pw) = alice.new_app_password("old phone").await;
    let revoked = alice
        .send("DELETE", &format!("/api/app-passwords/{id}"), &[], "")
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    // The phone keeps trying its stale password: its own address gets throttled…
    let mut phone = Client::new(&b.app, "192.168.1.30:5000");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(phone.dav("alice", &pw).await);
    }
    assert!(statuses.iter().all(|s| *s != StatusCode::MULTI_STATUS));
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // …but the account is not: alice signs in from her laptop at once.
    let mut laptop = Client::new(&b.app, "192.168.1.31:5000");
    assert_eq!(
        laptop.sign_in("/api/login", "alice", PASSWORD).await.status,
        StatusCode::OK
    );
}
