//! The account side of the Nextcloud protocol against the real binary, spoken as the apps
//! speak it: Login Flow v2 (start, sign in and grant in the browser's way, poll), the app
//! password on WebDAV, its revocation, the desktop client's password exchange and sign-out;
//! then public links through the OCS share API and a download through the resulting link.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use percloud_system_tests::{
    Daemon, PASSWORD, Ran, Response, add_user, request_raw, run_bounded, temp_dir,
};
use serde_json::{Value, json};

const DESKTOP_UA: &str = "Mozilla/5.0 (Linux) mirall/3.7.3 (Nextcloud, debian-6.1.0-13-amd64 ClientArchitecture: x86_64 OsArchitecture: x86_64)";

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_raw(addr, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

fn json_of(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("not JSON ({e}):\n{response}"))
}

/// A browser with the session cookie and CSRF token of a signed-in user.
struct Browser {
    addr: SocketAddr,
    cookie: String,
    csrf: String,
}

impl Browser {
    /// Signs in through the web pages' JSON API, as the sign-in page does.
    fn sign_in(addr: SocketAddr, user: &str, password: &str) -> Browser {
        let body = json!({"name": user, "password": password}).to_string();
        let response = send(
            addr,
            "POST",
            "/api/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(response.status, 200, "sign-in\n{response}");
        let set_cookie = response.header("set-cookie").expect("a session cookie");
        let cookie = set_cookie.split(';').next().expect("pair").to_owned();
        let csrf = json_of(&response)["csrf"]
            .as_str()
            .expect("a CSRF token")
            .to_owned();
        Browser { addr, cookie, csrf }
    }

    fn call(&self, method: &str, target: &str, body: Option<&Value>, csrf: bool) -> Response {
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if csrf {
            headers.push(("X-CSRF-Token", self.csrf.as_str()));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        send(self.addr, method, target, &headers, body.as_bytes())
    }
}

/// The path of an absolute URL the box handed out (`http://host:port/path` → `/path`).
fn path_of(url: &str, addr: SocketAddr) -> String {
    let prefix = format!("http://{addr}");
    url.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} does not start with {prefix}"))
        .to_owned()
}

fn poll(addr: SocketAddr, endpoint: &str, token: &str) -> Response {
    send(
        addr,
        "POST",
        endpoint,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("User-Agent", DESKTOP_UA),
        ],
        format!("token={token}").as_bytes(),
    )
}

/// One `nextcloudcmd` run as alice with `password`, syncing `home`/sync, bounded in time.
fn nextcloudcmd(addr: SocketAddr, password: &str, home: &Path) -> Ran {
    let local = home.join("sync");
    std::fs::create_dir_all(&local).expect("sync folder");
    let mut command = Command::new("nextcloudcmd");
    command
        .args(["--non-interactive", "-u", "alice", "-p", password])
        .arg(&local)
        .arg(format!("http://{addr}"))
        .env("HOME", home);
    run_bounded(command, None, Duration::from_secs(120))
}

fn dav_status(addr: SocketAddr, auth: &str, method: &str, path: &str, body: &[u8]) -> u16 {
    send(addr, method, path, &[("Authorization", auth)], body).status
}

#[test]
fn login_flow_v2_issues_an_app_password_that_works_until_revoked() {
    let data = temp_dir("nc-login");
    add_user(data.path(), "alice", PASSWORD);
    let daemon = Daemon::start(data.path());
    let addr = daemon.addr;

    // The device starts a flow.
    let started = send(
        addr,
        "POST",
        "/index.php/login/v2",
        &[("User-Agent", DESKTOP_UA)],
        b"",
    );
    assert_eq!(started.status, 200, "{started}");
    let started = json_of(&started);
    let poll_token = started["poll"]["token"].as_str().expect("poll token");
    let endpoint = path_of(
        started["poll"]["endpoint"].as_str().expect("endpoint"),
        addr,
    );
    assert_eq!(endpoint, "/index.php/login/v2/poll");
    let login = path_of(started["login"].as_str().expect("login URL"), addr);
    let login_token = login
        .strip_prefix("/index.php/login/v2/flow/")
        .expect("login URL path");
    assert!(poll_token.len() >= 43 && login_token.len() >= 43);
    assert_ne!(poll_token, login_token);

    // Nothing to collect before the grant, nor with the wrong token.
    assert_eq!(poll(addr, &endpoint, poll_token).status, 404);
    assert_eq!(poll(addr, &endpoint, login_token).status, 404);

    // The browser opens the login URL: the web app's page.
    let page = send(addr, "GET", &login, &[], b"");
    assert_eq!(page.status, 200, "{page}");
    assert!(page.text().contains("/assets/app.js"), "{page}");
    for malformed in [
        "/index.php/login/v2/flow/short",
        "/index.php/login/v2/flow/",
    ] {
        assert_eq!(send(addr, "GET", malformed, &[], b"").status, 404);
    }
    // Unsigned, the flow API is closed.
    let anonymous = send(
        addr,
        "POST",
        &format!("/api/login-flow/{login_token}/grant"),
        &[],
        b"",
    );
    assert_eq!(anonymous.status, 401, "{anonymous}");

    // The user signs in as the page does, sees the device and grants (CSRF required).
    let browser = Browser::sign_in(addr, "alice", PASSWORD);
    let pending = browser.call(
        "GET",
        &format!("/api/login-flow/{login_token}"),
        None,
        false,
    );
    assert_eq!(pending.status, 200, "{pending}");
    assert_eq!(
        json_of(&pending)["device"],
        "Nextcloud desktop client (Linux)"
    );
    assert_eq!(json_of(&pending)["address"], "127.0.0.1");
    let grant = format!("/api/login-flow/{login_token}/grant");
    assert_eq!(browser.call("POST", &grant, None, false).status, 403);
    assert_eq!(poll(addr, &endpoint, poll_token).status, 404);
    let granted = browser.call("POST", &grant, None, true);
    assert_eq!(granted.status, 204, "{granted}");

    // The device collects its app password, once.
    let collected = poll(addr, &endpoint, poll_token);
    assert_eq!(collected.status, 200, "{collected}");
    let collected = json_of(&collected);
    assert_eq!(collected["server"], format!("http://{addr}"));
    assert_eq!(collected["loginName"], "alice");
    let app_password = collected["appPassword"]
        .as_str()
        .expect("app password")
        .to_owned();
    assert_ne!(app_password, PASSWORD);
    assert_eq!(poll(addr, &endpoint, poll_token).status, 404, "only once");

    // The app password works for WebDAV…
    let device = basic("alice", &app_password);
    assert_eq!(
        dav_status(addr, &device, "PUT", "/dav/from-phone.txt", b"hello"),
        201
    );
    let got = send(
        addr,
        "GET",
        "/dav/from-phone.txt",
        &[("Authorization", &device)],
        b"",
    );
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
    // …on the Nextcloud apps' own WebDAV root too…
    let propfind = |auth: &str| {
        send(
            addr,
            "PROPFIND",
            "/remote.php/dav/files/alice/",
            &[("Authorization", auth), ("Depth", "0")],
            b"",
        )
        .status
    };
    assert_eq!(propfind(&device), 207);
    // …and Debian's real Nextcloud client syncs with it.
    let client_home = temp_dir("nc-login-client");
    nextcloudcmd(addr, &app_password, client_home.path())
        .expect_success("nextcloudcmd with the app password");
    let local = std::fs::read(client_home.path().join("sync/from-phone.txt")).expect("synced");
    assert_eq!(local, b"hello");
    // …but not for another account's name, nor to sign in to the web pages.
    assert_eq!(
        dav_status(addr, &basic("bob", &app_password), "GET", "/dav/", b""),
        401
    );
    let web = send(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        json!({"name": "alice", "password": app_password})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(web.status, 401, "an app password opens no browser session");
    // Nor to buy another app password.
    let exchange = |auth: &str, ocs_header: bool| {
        let mut headers = vec![("Authorization", auth), ("User-Agent", DESKTOP_UA)];
        if ocs_header {
            headers.push(("OCS-APIREQUEST", "true"));
        }
        send(
            addr,
            "GET",
            "/ocs/v2.php/core/getapppassword?format=json",
            &headers,
            b"",
        )
    };
    assert_eq!(exchange(&device, true).status, 403);

    // The device is listed with its name and last use; the owner revokes it.
    let list = browser.call("GET", "/api/app-passwords", None, false);
    assert_eq!(list.status, 200, "{list}");
    let list = json_of(&list);
    let entry = &list.as_array().expect("a list")[0];
    assert_eq!(entry["name"], "Nextcloud desktop client (Linux)");
    assert!(entry["last_used"].as_u64().is_some(), "{list}");
    assert!(entry["created"].as_u64().is_some(), "{list}");
    let id = entry["id"].as_u64().expect("id");
    let revoke = format!("/api/app-passwords/{id}");
    assert_eq!(browser.call("DELETE", &revoke, None, false).status, 403);
    assert_eq!(browser.call("DELETE", &revoke, None, true).status, 204);
    assert_eq!(
        dav_status(addr, &device, "GET", "/dav/from-phone.txt", b""),
        401,
        "a revoked app password stops at once"
    );
    assert_eq!(propfind(&device), 401);
    let refused = nextcloudcmd(addr, &app_password, client_home.path());
    assert_ne!(
        refused.code,
        Some(0),
        "the real client is refused too\n{refused}"
    );
    assert_eq!(browser.call("DELETE", &revoke, None, true).status, 404);

    // The desktop client's upgrade path: the account password buys an app password…
    let account = basic("alice", PASSWORD);
    assert_eq!(
        exchange(&account, false).status,
        412,
        "OCS-APIREQUEST needed"
    );
    let bought = exchange(&account, true);
    assert_eq!(bought.status, 200, "{bought}");
    let bought = json_of(&bought);
    assert_eq!(bought["ocs"]["meta"]["statuscode"], 200);
    let second = bought["ocs"]["data"]["apppassword"]
        .as_str()
        .expect("apppassword")
        .to_owned();
    let second = basic("alice", &second);
    assert_eq!(
        dav_status(addr, &second, "GET", "/dav/from-phone.txt", b""),
        200
    );
    // …and the device signs out by deleting its own.
    let signed_out = send(
        addr,
        "DELETE",
        "/ocs/v2.php/core/apppassword",
        &[("Authorization", &second), ("OCS-APIREQUEST", "true")],
        b"",
    );
    assert_eq!(signed_out.status, 200, "{signed_out}");
    assert_eq!(
        dav_status(addr, &second, "GET", "/dav/from-phone.txt", b""),
        401
    );
    // The account password was never touched.
    assert_eq!(
        dav_status(addr, &account, "GET", "/dav/from-phone.txt", b""),
        200
    );
    let list = json_of(&browser.call("GET", "/api/app-passwords", None, false));
    assert_eq!(list, json!([]));
}

#[test]
fn unknown_flows_are_404_and_a_flow_can_be_refused() {
    let data = temp_dir("nc-login-deny");
    add_user(data.path(), "alice", PASSWORD);
    let daemon = Daemon::start(data.path());
    let addr = daemon.addr;
    let browser = Browser::sign_in(addr, "alice", PASSWORD);
    let bogus = "A".repeat(43);
    assert_eq!(poll(addr, "/index.php/login/v2/poll", &bogus).status, 404);
    assert_eq!(poll(addr, "/index.php/login/v2/poll", "").status, 404);
    let grant = format!("/api/login-flow/{bogus}/grant");
    assert_eq!(browser.call("POST", &grant, None, true).status, 404);

    let started = json_of(&send(addr, "POST", "/index.php/login/v2", &[], b""));
    let poll_token = started["poll"]["token"].as_str().expect("poll token");
    let login = path_of(started["login"].as_str().expect("login"), addr);
    let token = login.rsplit('/').next().expect("token");
    let deny = browser.call("DELETE", &format!("/api/login-flow/{token}"), None, true);
    assert_eq!(deny.status, 204, "{deny}");
    assert_eq!(
        poll(addr, "/index.php/login/v2/poll", poll_token).status,
        404
    );
    let late = browser.call(
        "POST",
        &format!("/api/login-flow/{token}/grant"),
        None,
        true,
    );
    assert_eq!(late.status, 404, "a refused flow cannot be granted");
}

/// An OCS request with Basic auth; `form` as the body of POST and PUT.
fn ocs(addr: SocketAddr, auth: &str, method: &str, target: &str, form: &str) -> Response {
    let mut headers = vec![("Authorization", auth), ("OCS-APIREQUEST", "true")];
    if !form.is_empty() {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    send(addr, method, target, &headers, form.as_bytes())
}

const SHARES: &str = "/ocs/v2.php/apps/files_sharing/api/v1/shares";

#[test]
fn ocs_share_links_are_the_boxs_links() {
    let data = temp_dir("nc-shares");
    add_user(data.path(), "alice", PASSWORD);
    let daemon = Daemon::start(data.path());
    let addr = daemon.addr;
    let auth = basic("alice", PASSWORD);
    assert_eq!(
        dav_status(addr, &auth, "MKCOL", "/dav/Holiday%20photos", b""),
        201
    );
    assert_eq!(
        dav_status(addr, &auth, "PUT", "/dav/Holiday%20photos/a+b.txt", b"sea"),
        201
    );
    assert_eq!(
        dav_status(addr, &auth, "PUT", "/dav/report.txt", b"numbers"),
        201
    );

    // A change without the header every client sends (a cross-site form cannot) is refused.
    let forged = send(
        addr,
        "POST",
        SHARES,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"path=/report.txt&shareType=3",
    );
    assert_eq!(forged.status, 412, "{forged}");
    // Not signed in: 401, as for WebDAV.
    assert_eq!(send(addr, "GET", SHARES, &[], b"").status, 401);
    // No links yet, in both formats.
    let empty = ocs(addr, &auth, "GET", &format!("{SHARES}?format=json"), "");
    assert_eq!(empty.status, 200, "{empty}");
    assert_eq!(json_of(&empty)["ocs"]["data"], json!([]));
    let xml = ocs(addr, &auth, "GET", SHARES, "");
    assert!(xml.text().contains("<statuscode>200</statuscode>"), "{xml}");

    // A password-protected link to a file, expiring in the future.
    let created = ocs(
        addr,
        &auth,
        "POST",
        &format!("{SHARES}?format=json"),
        "path=%2Freport.txt&shareType=3&password=open+sesame&expireDate=2099-12-31",
    );
    assert_eq!(created.status, 200, "{created}");
    let share = json_of(&created)["ocs"]["data"].clone();
    assert_eq!(share["share_type"], 3);
    assert_eq!(share["path"], "/report.txt");
    assert_eq!(share["item_type"], "file");
    assert_eq!(share["permissions"], 1);
    assert_eq!(share["expiration"], "2099-12-31 00:00:00");
    assert!(share["share_with"].is_string(), "password shown as set");
    let id = share["id"].as_str().expect("id").to_owned();
    let url = share["url"].as_str().expect("url");
    let token = path_of(url, addr)
        .strip_prefix("/s/")
        .expect("our share page")
        .to_owned();
    assert_eq!(share["token"], token.as_str());

    // Listed by path (JSON) and in XML, as a list element.
    let by_path = ocs(
        addr,
        &auth,
        "GET",
        &format!("{SHARES}?format=json&path=%2Freport.txt&reshares=true"),
        "",
    );
    let listed = json_of(&by_path)["ocs"]["data"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{by_path}");
    assert_eq!(listed[0]["id"], id.as_str());
    let xml = ocs(
        addr,
        &auth,
        "GET",
        &format!("{SHARES}?path=/report.txt"),
        "",
    );
    assert!(
        xml.header("content-type")
            .is_some_and(|t| t.contains("xml")),
        "{xml}"
    );
    assert!(xml.text().contains("<element><"), "{xml}");
    assert!(xml.text().contains(&format!("<url>{url}</url>")), "{xml}");

    // The link is the box's: its page answers, and the download needs the password.
    let page = send(addr, "GET", &format!("/s/{token}"), &[], b"");
    assert_eq!(page.status, 200);
    let file = format!("/api/public/{token}/file");
    assert_eq!(send(addr, "GET", &file, &[], b"").status, 401);
    let unlock = send(
        addr,
        "POST",
        &format!("/api/public/{token}/unlock"),
        &[("Content-Type", "application/json")],
        br#"{"password":"open sesame"}"#,
    );
    assert_eq!(unlock.status, 204, "{unlock}");
    let cookie = unlock
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("unlock cookie")
        .to_owned();
    let download = send(addr, "GET", &file, &[("Cookie", &cookie)], b"");
    assert_eq!(
        (download.status, download.text().as_str()),
        (200, "numbers")
    );

    // Updates keep the id and URL: dropping the password opens the link.
    let one = format!("{SHARES}/{id}?format=json");
    let updated = ocs(addr, &auth, "PUT", &one, "password=");
    assert_eq!(updated.status, 200, "{updated}");
    let updated = json_of(&updated)["ocs"]["data"].clone();
    assert_eq!(
        (updated["id"].clone(), updated["url"].clone()),
        (json!(id), json!(url))
    );
    assert!(updated["share_with"].is_null());
    let open = send(addr, "GET", &file, &[], b"");
    assert_eq!((open.status, open.text().as_str()), (200, "numbers"));
    let moved = ocs(addr, &auth, "PUT", &one, "expireDate=2098-01-02");
    assert_eq!(
        json_of(&moved)["ocs"]["data"]["expiration"],
        "2098-01-02 00:00:00"
    );
    let past = ocs(addr, &auth, "PUT", &one, "expireDate=2001-01-01");
    assert_eq!(past.status, 400, "{past}");
    let drop_on_file = ocs(addr, &auth, "PUT", &one, "permissions=4");
    assert_eq!(drop_on_file.status, 400, "upload-only needs a folder");

    // An upload-only folder link ("file drop") through the permissions.
    let dropbox = ocs(
        addr,
        &auth,
        "POST",
        &format!("{SHARES}?format=json"),
        "path=/Holiday+photos&shareType=3&permissions=4",
    );
    assert_eq!(dropbox.status, 200, "{dropbox}");
    let dropbox = json_of(&dropbox)["ocs"]["data"].clone();
    assert_eq!(
        (dropbox["permissions"].clone(), dropbox["item_type"].clone()),
        (json!(4), json!("folder"))
    );
    let subfiles = ocs(
        addr,
        &auth,
        "GET",
        &format!("{SHARES}?format=json&path=/&subfiles=true"),
        "",
    );
    assert_eq!(
        json_of(&subfiles)["ocs"]["data"].as_array().map(Vec::len),
        Some(2),
        "{subfiles}"
    );

    // Other share types and unknown ids are clean OCS errors (HTTP status in v2, 200 in v1).
    let user_share = ocs(
        addr,
        &auth,
        "POST",
        &format!("{SHARES}?format=json"),
        "path=/report.txt&shareType=0&shareWith=bob",
    );
    assert_eq!(user_share.status, 403, "{user_share}");
    assert_eq!(json_of(&user_share)["ocs"]["meta"]["statuscode"], 403);
    let v1 = ocs(
        addr,
        &auth,
        "POST",
        "/ocs/v1.php/apps/files_sharing/api/v1/shares?format=json",
        "path=/report.txt&shareType=4",
    );
    assert_eq!(v1.status, 200);
    assert_eq!(json_of(&v1)["ocs"]["meta"]["statuscode"], 403);
    let missing = ocs(addr, &auth, "POST", SHARES, "path=/nope.txt&shareType=3");
    assert_eq!(missing.status, 404, "{missing}");
    assert_eq!(
        ocs(addr, &auth, "GET", &format!("{SHARES}/99999"), "").status,
        404
    );

    // Deleting ends the link.
    let deleted = ocs(addr, &auth, "DELETE", &one, "");
    assert_eq!(deleted.status, 200, "{deleted}");
    assert_eq!(send(addr, "GET", &file, &[], b"").status, 404);
    assert_eq!(ocs(addr, &auth, "GET", &one, "").status, 404);
    assert_eq!(ocs(addr, &auth, "DELETE", &one, "").status, 404);
}

/// A valid 1×1 PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

#[test]
fn previews_come_from_the_thumbnails() {
    let data = temp_dir("nc-preview");
    add_user(data.path(), "alice", PASSWORD);
    let daemon = Daemon::start(data.path());
    let addr = daemon.addr;
    let auth = basic("alice", PASSWORD);
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .expect("png");
    assert_eq!(dav_status(addr, &auth, "PUT", "/dav/dot+1.png", &png), 201);
    assert_eq!(
        dav_status(addr, &auth, "PUT", "/dav/not-an-image.png", b"text"),
        201
    );
    assert_eq!(dav_status(addr, &auth, "PUT", "/dav/notes.txt", b"x"), 201);
    let is_jpeg = |r: &Response| {
        r.status == 200
            && r.header("content-type") == Some("image/jpeg")
            && r.body.starts_with(&[0xff, 0xd8])
    };

    // By path (the iOS app's way; `+` stays a plus) …
    let by_path = send(
        addr,
        "GET",
        "/index.php/core/preview.png?file=/dot+1.png&x=32&y=32&a=1",
        &[("Authorization", &auth)],
        b"",
    );
    assert!(is_jpeg(&by_path), "{by_path}");
    // … and by file id (the Android app's way), with the id the web API reports.
    let browser = Browser::sign_in(addr, "alice", PASSWORD);
    let listing = json_of(&browser.call("GET", "/api/list?path=%2F", None, false));
    let id = listing["children"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["name"] == "dot+1.png"))
        .and_then(|e| e["id"].as_u64())
        .expect("the file's id");
    let by_id = send(
        addr,
        "GET",
        &format!("/index.php/core/preview?fileId={id}&x=1024&y=768&a=1&mode=cover"),
        &[("Authorization", &auth)],
        b"",
    );
    assert!(is_jpeg(&by_id), "{by_id}");

    // What cannot have a preview is 404; no credentials, 401.
    for target in [
        "/core/preview.png?file=/notes.txt",
        "/core/preview.png?file=/not-an-image.png&x=64",
        "/core/preview.png?file=/missing.png",
        "/index.php/core/preview?fileId=999999",
    ] {
        let r = send(addr, "GET", target, &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 404, "{target}\n{r}");
    }
    let anonymous = send(addr, "GET", "/core/preview.png?file=/dot+1.png", &[], b"");
    assert_eq!(anonymous.status, 401);
}
