//! Hostile and broken clients: each request gets a clear 4xx (or 507) and changes nothing.
//! "Nothing" is checked with a PROPFIND of the root and fsck afterwards.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use percloud_system_tests::{
    Daemon, Dav, PASSWORD, Response, add_user, encode_path, fsck_clean, percloud, random_bytes,
    request_raw, temp_dir,
};
use rand::SeedableRng;

const BOB_PASSWORD: &str = "bobs-own-long-password-99";

/// A daemon with alice (holding `/dav/a/keep.txt`) and bob.
struct World {
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = temp_dir("hostile");
        let data = dir.path().join("data");
        add_user(&data, "alice", PASSWORD);
        add_user(&data, "bob", BOB_PASSWORD);
        let daemon = Daemon::start(&data);
        let alice = daemon.dav("alice", PASSWORD);
        alice.mkcol_ok("a");
        alice.put_ok("a/keep.txt", b"keep me");
        World { daemon, _dir: dir }
    }

    fn alice(&self) -> Dav {
        self.daemon.dav("alice", PASSWORD)
    }

    /// Alice's root lists exactly `/dav/`, `/dav/a/` (and whatever `also` names), and
    /// fsck through the daemon is clean.
    fn unchanged(&self, also: &[&str]) {
        let mut listed: Vec<String> = self
            .alice()
            .list("")
            .iter()
            .map(|h| strip_origin(h).trim_end_matches('/').to_owned())
            .collect();
        listed.sort();
        let mut expected = vec!["/dav".to_owned(), "/dav/a".to_owned()];
        expected.extend(also.iter().map(|p| format!("/dav/{p}")));
        expected.sort();
        assert_eq!(listed, expected, "alice's root changed");
        assert_eq!(self.alice().get_ok("a/keep.txt"), b"keep me");
        fsck_clean(self.daemon.data(), "after hostile requests");
    }
}

/// `http://host:port/dav/x` → `/dav/x`.
fn strip_origin(href: &str) -> String {
    match href
        .strip_prefix("http://")
        .or_else(|| href.strip_prefix("https://"))
    {
        Some(rest) => rest
            .find('/')
            .map_or("/".to_owned(), |i| rest[i..].to_owned()),
        None => href.to_owned(),
    }
}

/// Formats one finding for the failure list.
fn finding(what: &str, result: &std::io::Result<Response>) -> String {
    match result {
        Ok(response) => format!("{what}: got\n{response}"),
        Err(e) => format!("{what}: no answer: {e}"),
    }
}

fn is_4xx(result: &std::io::Result<Response>) -> bool {
    result
        .as_ref()
        .is_ok_and(|r| (400..500).contains(&r.status))
}

#[test]
fn malicious_paths_are_refused_and_write_nothing() {
    let world = World::new();
    let alice = world.alice();
    let long_name = "n".repeat(300);
    let long_path = vec!["p".repeat(99); 50].join("/");
    let targets = [
        "/dav/a/../b".to_owned(),
        "/dav/a/../../b".to_owned(),
        "/dav/%2e%2e/b".to_owned(),
        "/dav/a/%2e%2e/b".to_owned(),
        "/dav/a/%2E%2e%2fb".to_owned(),
        "/dav/a/..%2fb".to_owned(),
        "/dav/a/..%2F..%2Fb".to_owned(),
        "/dav/%2e%2e/bob/x".to_owned(),
        "/dav/../dav/b".to_owned(),
        "/dav/a%2Fb".to_owned(),
        "/dav/a/x%2fy".to_owned(),
        "/dav/nul%00name".to_owned(),
        "/dav/bad%ff%fe".to_owned(),
        "/dav/bad%c3".to_owned(),
        "/dav/.".to_owned(),
        format!("/dav/{long_name}"),
        format!("/dav/{long_path}"),
    ];
    let mut failures = Vec::new();
    for target in &targets {
        for (method, body) in [("PUT", &b"evil"[..]), ("MKCOL", &b""[..])] {
            let result = alice.raw(method, target, &[], body);
            if !is_4xx(&result) {
                failures.push(finding(
                    &format!("{method} {target} (expected 4xx)"),
                    &result,
                ));
            }
        }
        let result = alice.raw("GET", target, &[], b"");
        if !is_4xx(&result) {
            failures.push(finding(&format!("GET {target} (expected 4xx)"), &result));
        }
    }
    for (method, target) in [("MOVE", "/dav/a/keep.txt"), ("COPY", "/dav/a/keep.txt")] {
        for destination in [
            "/dav/../outside",
            "/dav/%2e%2e/bob/x",
            "/dav/a%2Fz",
            "/dav/x%00y",
        ] {
            let destination = format!("http://{}{destination}", world.daemon.addr);
            let result = alice.raw(method, target, &[("Destination", &destination)], b"");
            if !is_4xx(&result) {
                failures.push(finding(
                    &format!("{method} {target} to {destination} (expected 4xx)"),
                    &result,
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} malicious paths were not refused:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    world.unchanged(&[]);
}

#[test]
fn hostile_xml_is_refused() {
    let world = World::new();
    let alice = world.alice();
    let xml = [("Content-Type", "application/xml"), ("Depth", "0")];
    let mut failures = Vec::new();

    let malformed =
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:propfind>"#;
    let result = alice.raw("PROPFIND", "/dav/", &xml, malformed);
    if !is_4xx(&result) {
        failures.push(finding(
            "PROPFIND with malformed XML (expected 400)",
            &result,
        ));
    }

    let xxe_propfind = br#"<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>&xxe;</D:prop></D:propfind>"#;
    let result = alice.raw("PROPFIND", "/dav/", &xml, xxe_propfind);
    if !is_4xx(&result) || result.as_ref().is_ok_and(|r| r.text().contains("root:")) {
        failures.push(finding(
            "PROPFIND with a DOCTYPE and an external entity (expected 4xx)",
            &result,
        ));
    }

    let xxe_proppatch = br#"<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:leak>&xxe;</Z:leak></D:prop></D:set></D:propertyupdate>"#;
    let result = alice.raw("PROPPATCH", "/dav/a/keep.txt", &xml, xxe_proppatch);
    if !is_4xx(&result) {
        failures.push(finding(
            "PROPPATCH with a DOCTYPE and an external entity (expected 4xx)",
            &result,
        ));
    }
    let leak = alice.raw(
        "PROPFIND",
        "/dav/a/keep.txt",
        &xml,
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x"><D:prop><Z:leak/></D:prop></D:propfind>"#,
    );
    if leak.as_ref().is_ok_and(|r| r.text().contains("root:")) {
        failures.push(finding(
            "the XXE PROPPATCH stored /etc/passwd in a property",
            &leak,
        ));
    }

    let billion_laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>&lol3;</D:prop></D:propfind>"#;
    let result = alice.raw("PROPFIND", "/dav/", &xml, billion_laughs);
    if !is_4xx(&result) {
        failures.push(finding(
            "PROPFIND with internal entities (billion laughs; expected 4xx)",
            &result,
        ));
    }

    let mut huge = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>"#.to_vec();
    while huge.len() < 2 << 20 {
        huge.extend_from_slice(b"<D:getetag/><D:displayname/>");
    }
    huge.extend_from_slice(b"</D:prop></D:propfind>");
    let result = alice.raw("PROPFIND", "/dav/", &xml, &huge);
    if !is_4xx(&result) {
        failures.push(finding(
            "PROPFIND with a 2 MiB body (expected 413 or 400)",
            &result,
        ));
    }

    assert!(
        failures.is_empty(),
        "hostile XML was not refused:\n\n{}",
        failures.join("\n\n")
    );
    world.unchanged(&[]);
}

#[test]
fn oversized_headers_are_refused() {
    let world = World::new();
    let big = "x".repeat(100 << 10);
    let result = world
        .alice()
        .raw("PROPFIND", "/dav/", &[("Depth", "0"), ("X-Big", &big)], b"");
    match &result {
        Ok(response) => assert!(
            response.status == 431,
            "a 100 KiB header: expected 431 (or the connection closed)\n{response}"
        ),
        Err(e) => println!("a 100 KiB header: connection closed ({e})"),
    }
    let health = request_raw(world.daemon.addr, "GET", "/healthz", &[], b"").expect("GET /healthz");
    assert_eq!(
        health.status, 200,
        "the daemon is unwell after a 100 KiB header\n{health}"
    );
    world.unchanged(&[]);
}

#[test]
fn an_interrupted_put_keeps_the_previous_version() {
    let world = World::new();
    let alice = world.alice();
    alice.put_ok("a/doc.txt", b"version 1");
    for path in ["a/doc.txt", "a/new.txt"] {
        let mut stream = TcpStream::connect(world.daemon.addr).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let auth = alice.authorization();
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            encode_path(path),
            world.daemon.addr,
            1 << 20
        );
        stream.write_all(head.as_bytes()).expect("writing the head");
        stream
            .write_all(&[b'X'; 300 << 10])
            .expect("writing part of the body");
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        alice.get_ok("a/doc.txt"),
        b"version 1",
        "a PUT cut short replaced the previous version"
    );
    let new = alice.get("a/new.txt").expect("GET");
    assert_eq!(new.status, 404, "a PUT cut short created a file\n{new}");
    let listed = alice.list("a");
    assert_eq!(
        listed.len(),
        3,
        "a PUT cut short left something in /dav/a/: {listed:?}"
    );
    world.unchanged(&[]);
}

#[test]
fn sign_in_is_required_and_throttled() {
    let world = World::new();
    let anonymous = request_raw(
        world.daemon.addr,
        "PROPFIND",
        "/dav/",
        &[("Depth", "0")],
        b"",
    )
    .expect("PROPFIND without credentials");
    assert_eq!(
        anonymous.status, 401,
        "PROPFIND /dav/ without credentials\n{anonymous}"
    );
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("basic")),
        "401 without a WWW-Authenticate: Basic challenge\n{anonymous}"
    );
    let anonymous_put =
        request_raw(world.daemon.addr, "PUT", "/dav/x.txt", &[], b"hi").expect("PUT");
    assert_eq!(
        anonymous_put.status, 401,
        "PUT without credentials\n{anonymous_put}"
    );

    let wrong = world.daemon.dav("alice", "not-the-password");
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..20 {
        let response = wrong
            .propfind("", "0")
            .expect("PROPFIND with a wrong password");
        statuses.push(response.status);
        if response.status == 429 {
            throttled = Some(response);
            break;
        }
        assert_eq!(response.status, 401, "a wrong password\n{response}");
    }
    let Some(throttled) = throttled else {
        panic!("20 wrong passwords in a row were never throttled (429): {statuses:?}");
    };
    assert!(statuses.len() <= 11, "throttling came late: {statuses:?}");
    let retry = throttled
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok());
    let Some(retry) = retry.filter(|s| (1..=60).contains(s)) else {
        panic!("429 without a Retry-After of 1 to 60 seconds\n{throttled}");
    };
    // Throttling is per address and temporary: after the wait, the right password works.
    std::thread::sleep(Duration::from_secs(retry));
    let after = world
        .alice()
        .propfind("", "0")
        .expect("PROPFIND after the wait");
    assert_eq!(
        after.status, 207,
        "alice cannot sign in {retry} s after a 429 with Retry-After: {retry}\n{after}"
    );
    world.unchanged(&[]);
}

#[test]
fn users_cannot_reach_each_other() {
    let world = World::new();
    let alice = world.alice();
    let bob = world.daemon.dav("bob", BOB_PASSWORD);
    alice.put_ok("secret.txt", b"alice's secret");
    let mut failures = Vec::new();
    for target in [
        "/dav/secret.txt",
        "/dav/a/keep.txt",
        "/dav/alice/secret.txt",
        "/dav/%2e%2e/alice/secret.txt",
        "/dav/../alice/secret.txt",
    ] {
        let result = bob.raw("GET", target, &[], b"");
        if !is_4xx(&result)
            || result
                .as_ref()
                .is_ok_and(|r| r.text().contains("alice's secret"))
        {
            failures.push(finding(
                &format!("bob: GET {target} (expected 404)"),
                &result,
            ));
        }
    }
    let listed = bob.list("");
    if listed
        .iter()
        .any(|h| h.contains("secret") || h.contains("/a/"))
    {
        failures.push(format!(
            "bob's PROPFIND /dav/ lists alice's files: {listed:?}"
        ));
    }
    bob.put_ok("secret.txt", b"bob's own");
    let copy = bob.raw(
        "COPY",
        "/dav/secret.txt",
        &[(
            "Destination",
            &format!("http://{}/dav/../alice/x", world.daemon.addr),
        )],
        b"",
    );
    if !is_4xx(&copy) {
        failures.push(finding(
            "bob: COPY to /dav/../alice/x (expected 4xx)",
            &copy,
        ));
    }
    assert_eq!(
        alice.get_ok("secret.txt"),
        b"alice's secret",
        "bob's PUT changed alice's file"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    world.unchanged(&["secret.txt"]);
}

#[test]
fn quota_exceeded_is_507_and_keeps_the_previous_version() {
    let dir = temp_dir("quota");
    let data = dir.path().join("data");
    let ran = percloud(
        &[
            "user",
            "add",
            "quoted",
            "--quota",
            "1M",
            "--data",
            data.to_str().expect("UTF-8"),
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    ran.expect_success("percloud user add --quota 1M");
    let daemon = Daemon::start(&data);
    let dav = daemon.dav("quoted", PASSWORD);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let v1 = random_bytes(&mut rng, 100 << 10);
    dav.put_ok("file.bin", &v1);
    for (path, len) in [
        ("file.bin", 2 << 20),
        ("other.bin", 2 << 20),
        ("other.bin", (1 << 20) - (50 << 10)),
    ] {
        let response = dav
            .put(path, &random_bytes(&mut rng, len))
            .expect("PUT over quota");
        assert_eq!(
            response.status, 507,
            "PUT {path} of {len} bytes over a 1 MiB quota (100 KiB used)\n{response}"
        );
    }
    assert!(
        dav.get_ok("file.bin") == v1,
        "a refused PUT changed the previous version"
    );
    let other = dav.get("other.bin").expect("GET");
    assert_eq!(other.status, 404, "a refused PUT created a file\n{other}");
    fsck_clean(&data, "after quota refusals");
}

/// A tmpfs mounted for the test, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = temp_dir("tmpfs");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_is_507_and_keeps_the_previous_version() {
    if !is_root() {
        assert!(
            std::env::var_os("PERCLOUD_NO_ROOT_TESTS").is_some(),
            "the full-disk test mounts a tmpfs and needs root; set PERCLOUD_NO_ROOT_TESTS=1 to skip it"
        );
        return;
    }
    let tmpfs = Tmpfs::mount("64m");
    let data = tmpfs.path().join("data");
    add_user(&data, "full", PASSWORD);
    let daemon = Daemon::start(&data);
    let dav = daemon.dav("full", PASSWORD);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let v1 = random_bytes(&mut rng, 200 << 10);
    dav.put_ok("file.bin", &v1);

    let filler = tmpfs.path().join("filler");
    {
        let mut file = std::fs::File::create(&filler).expect("creating the filler");
        let block = vec![0xA5u8; 1 << 20];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&block[..4096]).is_ok() {}
    }
    let v2 = random_bytes(&mut rng, 4 << 20);
    let response = dav.put("file.bin", &v2).expect("PUT on a full disk");
    assert_eq!(
        response.status, 507,
        "PUT of 4 MiB on a full disk\n{response}"
    );
    let response = dav.put("new.bin", &v2).expect("PUT on a full disk");
    assert_eq!(
        response.status, 507,
        "PUT of a new 4 MiB file on a full disk\n{response}"
    );
    assert!(
        dav.get_ok("file.bin") == v1,
        "a PUT on a full disk changed the previous version"
    );

    std::fs::remove_file(&filler).expect("removing the filler");
    let gone = dav.get("new.bin").expect("GET");
    assert_eq!(gone.status, 404, "a refused PUT created a file\n{gone}");
    dav.put_ok("file.bin", &v2);
    assert!(
        dav.get_ok("file.bin") == v2,
        "after space came back, the upload does not read back"
    );
    fsck_clean(&data, "after the disk was full");
    drop(daemon);
}
