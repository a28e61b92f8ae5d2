//! A resumable (tus) upload through the web pages' API survives a cut connection: the first
//! PATCH of a 200 MiB file (20 MiB under PERCLOUD_QUICK) is cut mid-body by closing the TCP
//! connection, HEAD tells how much the daemon kept, the rest is sent from there, and the
//! stored file's hash matches what was meant to be uploaded.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use percloud_system_tests::{
    Daemon, PASSWORD, pick, random_bytes, request_raw, temp_dir, wait_until,
};
use rand::SeedableRng;

/// A signed-in browser session: the cookie header and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn claim(addr: SocketAddr) -> Session {
    let body = format!(r#"{{"name":"owner","password":"{PASSWORD}"}}"#);
    let response = request_raw(
        addr,
        "POST",
        "/api/claim",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("POST /api/claim");
    assert_eq!(response.status, 200, "claim\n{response}");
    let set_cookie = response.header("set-cookie").expect("a session cookie");
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let state: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON state");
    let csrf = state["csrf"].as_str().expect("a CSRF token").to_owned();
    Session { cookie, csrf }
}

fn offset_of(addr: SocketAddr, session: &Session, location: &str) -> u64 {
    let response = request_raw(
        addr,
        "HEAD",
        location,
        &[("Cookie", &session.cookie), ("Tus-Resumable", "1.0.0")],
        b"",
    )
    .expect("HEAD upload");
    assert_eq!(response.status, 200, "HEAD {location}\n{response}");
    response
        .header("upload-offset")
        .and_then(|v| v.parse().ok())
        .expect("Upload-Offset")
}

#[test]
fn a_cut_upload_resumes_from_the_servers_offset() {
    let size: usize = pick(200, 20) * 1024 * 1024;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e5);
    let content = random_bytes(&mut rng, size);
    let data = temp_dir("resume");
    let daemon = Daemon::start(data.path());
    let addr = daemon.addr;
    let session = claim(addr);

    let metadata = format!(
        "path {}",
        base64::engine::general_purpose::STANDARD.encode("/big.bin")
    );
    let length = size.to_string();
    let created = request_raw(
        addr,
        "POST",
        "/api/tus/",
        &[
            ("Cookie", &session.cookie),
            ("X-CSRF-Token", &session.csrf),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &length),
            ("Upload-Metadata", &metadata),
        ],
        b"",
    )
    .expect("POST /api/tus/");
    assert_eq!(created.status, 201, "create\n{created}");
    let location = created.header("location").expect("Location").to_owned();

    // Send the head and about 40% of the body, then cut the connection.
    let sent = size * 2 / 5;
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nContent-Length: {size}\r\n\r\n",
        session.cookie, session.csrf
    );
    {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        stream.write_all(head.as_bytes()).expect("write head");
        for piece in content[..sent].chunks(256 * 1024) {
            stream.write_all(piece).expect("write body");
        }
        stream.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(500));
        stream.shutdown(Shutdown::Both).expect("cut");
    }

    // The daemon keeps what arrived once it notices the cut: wait for the offset to settle.
    let mut last = u64::MAX;
    let settled = wait_until(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(200));
        let now = offset_of(addr, &session, &location);
        let stable = now == last && now > 0;
        last = now;
        stable
    });
    assert!(
        settled,
        "the offset never settled (last {last})\n{}",
        daemon.log()
    );
    let offset = last;
    println!("cut after sending {sent} bytes; the daemon kept {offset}");
    assert!(offset <= sent as u64, "kept more than was sent");
    assert!(offset > 0, "kept nothing");

    // Resume from the daemon's offset (retrying while the cut writer may still hold it).
    let start = usize::try_from(offset).expect("offset fits");
    let offset_text = offset.to_string();
    let mut finished = None;
    for _ in 0..50 {
        let response = request_raw(
            addr,
            "PATCH",
            &location,
            &[
                ("Cookie", &session.cookie),
                ("X-CSRF-Token", &session.csrf),
                ("Tus-Resumable", "1.0.0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Upload-Offset", &offset_text),
            ],
            &content[start..],
        )
        .expect("PATCH the rest");
        if response.status == 409 {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        finished = Some(response);
        break;
    }
    let finished = finished.expect("the resumed PATCH was accepted");
    assert_eq!(finished.status, 204, "resume\n{finished}");
    assert_eq!(finished.header("upload-offset"), Some(length.as_str()));
    assert!(finished.header("x-percloud-etag").is_some(), "{finished}");

    let stored = request_raw(
        addr,
        "GET",
        "/api/file?path=%2Fbig.bin",
        &[("Cookie", &session.cookie)],
        b"",
    )
    .expect("GET the file");
    assert_eq!(stored.status, 200);
    assert_eq!(
        blake3::hash(&stored.body),
        blake3::hash(&content),
        "the stored file differs from the upload"
    );
}
