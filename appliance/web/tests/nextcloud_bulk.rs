//! The Nextcloud bulk upload (`POST /remote.php/dav/bulk`) in memory: a good batch, one bad
//! checksum among good files, hostile paths, a truncated body, an oversize part and part
//! headers that never end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use percloud_store::StorePath;
use percloud_web::ListenerKind;
use serde_json::Value;

mod common;

use common::{PASSWORD, Pieces, TestBox};

const BOUNDARY: &str = "boundary_0123456789abcdef";

/// One part as the desktop client writes it.
struct File<'a> {
    path: &'a str,
    data: Vec<u8>,
    /// Replaces the right MD5 when set.
    md5: Option<String>,
    mtime: u64,
}

impl<'a> File<'a> {
    fn new(path: &'a str, data: &[u8]) -> Self {
        File {
            path,
            data: data.to_vec(),
            md5: None,
            mtime: 1_600_000_000,
        }
    }
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn body(files: &[File<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in files {
        let md5 = f.md5.clone().unwrap_or_else(|| md5_hex(&f.data));
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
                 X-File-MD5: {md5}\r\nX-File-Mtime: {}\r\nX-File-Path: {}\r\n\r\n",
                f.data.len(),
                f.mtime,
                f.path
            )
            .as_bytes(),
        );
        out.extend_from_slice(&f.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

struct Reply {
    status: StatusCode,
    json: Value,
}

async fn post(b: &TestBox, body: Pieces) -> Reply {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let req = Request::builder()
        .method("POST")
        .uri("/remote.php/dav/bulk")
        .header("host", "box.local")
        .header("authorization", format!("Basic {auth}"))
        .header(
            "content-type",
            format!("multipart/related; boundary={BOUNDARY}"),
        )
        .body(body)
        .expect("request");
    let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
    let response = b.app.respond(req, peer, ListenerKind::Plain).await;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, json }
}

fn new_box() -> (TestBox, u64) {
    let b = TestBox::new();
    let hash = percloud_accounts::hash_password(PASSWORD).expect("hash");
    let id = b.store.create_user("alice", &hash, None).expect("alice").id;
    (b, id)
}

fn p(s: &str) -> StorePath {
    StorePath::parse(s).expect("path")
}

fn read(b: &TestBox, user: u64, path: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    b.store
        .open_file(user, &p(path))
        .expect("open")
        .read_to_end(&mut out)
        .expect("read");
    out
}

#[tokio::test]
async fn a_batch_is_stored_with_mtimes_and_answered_per_path() {
    let (b, user) = new_box();
    b.store.mkdir(user, &p("/Docs")).expect("mkdir");
    let names: Vec<String> = (0..50).map(|i| format!("/Docs/n {i} +&#%é.txt")).collect();
    let files: Vec<File<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| File {
            mtime: 1_500_000_000 + i as u64,
            ..File::new(n, format!("content {i}").as_bytes())
        })
        .chain([File::new("/empty", b"")])
        .collect();
    let r = post(&b, Pieces::whole(body(&files))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let answer = r.json.as_object().expect("object");
    assert_eq!(answer.len(), 51);
    for (i, n) in names.iter().enumerate() {
        let entry = &answer[n.as_str()];
        assert_eq!(entry["error"], false, "{entry}");
        let stat = b.store.stat(user, &p(n)).expect("stored");
        assert_eq!(entry["etag"], format!("\"{}\"", stat.etag));
        assert_eq!(entry["OC-ETag"], entry["etag"]);
        assert!(
            entry["OC-FileID"]
                .as_str()
                .expect("id")
                .starts_with(&format!("{:08}", stat.id))
        );
        assert_eq!(entry["X-OC-MTime"], "accepted");
        assert_eq!(
            stat.mtime,
            UNIX_EPOCH + Duration::from_secs(1_500_000_000 + i as u64)
        );
        assert_eq!(read(&b, user, n), format!("content {i}").as_bytes());
    }
    assert_eq!(answer["/empty"]["error"], false);
    assert_eq!(read(&b, user, "/empty"), b"");
    // The checksum is kept (and reported as oc:checksums).
    let versions = b.store.versions(user, &p(&names[0])).expect("versions");
    assert_eq!(
        versions[0].checksum.as_deref(),
        Some(format!("MD5:{}", md5_hex(b"content 0")).as_str())
    );
}

#[tokio::test]
async fn a_request_larger_than_a_run_is_stored_in_runs_and_committed_whole() {
    let (b, user) = new_box();
    // 6 MiB in all: more than one run handed to the store, arriving in 64 KiB pieces.
    let names: Vec<String> = (0..60).map(|i| format!("/f{i}")).collect();
    let datas: Vec<Vec<u8>> = (0..60u32)
        .map(|i| {
            (0..100 * 1024u32)
                .map(|j| (i * 7 + j * 13 % 251) as u8)
                .collect()
        })
        .collect();
    let files: Vec<File<'_>> = names
        .iter()
        .zip(&datas)
        .map(|(n, d)| File::new(n, d))
        .collect();
    let whole = body(&files);
    let pieces = Pieces {
        pieces: whole.chunks(64 << 10).map(Bytes::copy_from_slice).collect(),
        breaks: false,
    };
    let r = post(&b, pieces).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for (n, d) in names.iter().zip(&datas) {
        assert_eq!(r.json[n.as_str()]["error"], false, "{n}");
        assert_eq!(&read(&b, user, n), d, "{n}");
    }
}

#[tokio::test]
async fn a_bad_checksum_or_hostile_path_fails_that_file_only() {
    let (b, user) = new_box();
    let mut bad = File::new("/bad.txt", b"what arrived");
    bad.md5 = Some(md5_hex(b"what was meant"));
    let mut garbage = File::new("/garbage.txt", b"x");
    garbage.md5 = Some("not-hex".to_owned());
    let files = [
        File::new("/good1.txt", b"one"),
        bad,
        File::new("/../escape.txt", b"up"),
        File::new("/a/../../etc/passwd", b"up"),
        File::new("/no/parent.txt", b"orphan"),
        File::new("/", b"root"),
        garbage,
        File::new("/good2.txt", b"two"),
    ];
    let mut raw = body(&files);
    // A path that is not UTF-8 (Latin-1 "é").
    let latin1 = format!(
        "--{BOUNDARY}\r\nContent-Length: 1\r\nX-File-MD5: {}\r\nX-File-Path: /caf",
        md5_hex(b"x")
    );
    let mut part = latin1.into_bytes();
    part.extend_from_slice(b"\xe9.txt\r\n\r\nx\r\n");
    raw.splice(0..0, part);
    let r = post(&b, Pieces::whole(raw)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let a = &r.json;
    assert_eq!(a["/caf\u{fffd}.txt"]["error"], true, "{a}");
    assert_eq!(a["/good1.txt"]["error"], false);
    assert_eq!(a["/good2.txt"]["error"], false);
    for key in [
        "/bad.txt",
        "/../escape.txt",
        "/a/../../etc/passwd",
        "/no/parent.txt",
        "/",
        "/garbage.txt",
    ] {
        assert_eq!(a[key]["error"], true, "{key}: {}", a[key]);
        assert!(!a[key]["message"].as_str().unwrap_or("").is_empty());
    }
    assert!(
        a["/bad.txt"]["message"]
            .as_str()
            .expect("msg")
            .contains("mismatch")
    );
    assert_eq!(read(&b, user, "/good1.txt"), b"one");
    assert_eq!(read(&b, user, "/good2.txt"), b"two");
    let names: Vec<String> = b
        .store
        .list(user, &p("/"))
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["good1.txt", "good2.txt"]);
    assert_eq!(b.store.stats().expect("stats").logical_bytes, 6);
}

#[tokio::test]
async fn a_truncated_body_stores_nothing() {
    let (b, user) = new_box();
    let files = [File::new("/a.txt", b"aaaa"), File::new("/b.txt", b"bbbb")];
    let whole = body(&files);
    // Cut inside the second part: the first is complete, but the request is not.
    let cut = whole.len() - 20;
    let r = post(&b, Pieces::whole(whole[..cut].to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    // A connection that breaks off mid-body.
    let broken = Pieces {
        pieces: VecDeque::from([Bytes::copy_from_slice(&whole[..cut])]),
        breaks: true,
    };
    let r = post(&b, broken).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(b.store.list(user, &p("/")).expect("list").is_empty());
}

#[tokio::test]
async fn an_oversize_part_is_refused_and_nothing_stored() {
    let (b, user) = new_box();
    let big = vec![7u8; 16 * 1024 * 1024 + 1];
    let files = [File::new("/small.txt", b"s"), File::new("/big.bin", &big)];
    let whole = body(&files);
    let pieces = Pieces {
        pieces: whole
            .chunks(256 << 10)
            .map(Bytes::copy_from_slice)
            .collect(),
        breaks: false,
    };
    let r = post(&b, pieces).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    assert!(
        r.json["error"]
            .as_str()
            .expect("message")
            .contains("a file over")
    );
    assert!(b.store.list(user, &p("/")).expect("list").is_empty());
}

#[tokio::test]
async fn part_headers_that_never_end_are_cut_off() {
    let (b, user) = new_box();
    let mut whole = body(&[File::new("/first.txt", b"1")]);
    // Drop the closing boundary, then a part whose header block runs on for 8 MiB, sent in
    // 64 KiB pieces as a network would: the parser may not buffer it all.
    whole.truncate(whole.len() - format!("--{BOUNDARY}--\r\n").len());
    whole.extend_from_slice(format!("--{BOUNDARY}\r\nX-File-Path: /x\r\nX-Pad: ").as_bytes());
    whole.extend(std::iter::repeat_n(b'a', 8 << 20));
    let pieces = Pieces {
        pieces: whole.chunks(64 << 10).map(Bytes::copy_from_slice).collect(),
        breaks: false,
    };
    let r = post(&b, pieces).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    assert!(
        r.json["error"]
            .as_str()
            .expect("message")
            .contains("headers")
    );
    assert!(b.store.list(user, &p("/")).expect("list").is_empty());
}

#[tokio::test]
async fn wrong_method_content_type_and_no_credentials_are_refused() {
    let (b, _) = new_box();
    let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
    let req = Request::builder()
        .method("POST")
        .uri("/remote.php/dav/bulk")
        .header(
            "content-type",
            format!("multipart/related; boundary={BOUNDARY}"),
        )
        .body(Pieces::whole(body(&[File::new("/x", b"x")])))
        .expect("request");
    let r = b.app.respond(req, peer, ListenerKind::Plain).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let req = Request::builder()
        .method("POST")
        .uri("/remote.php/dav/bulk")
        .header("authorization", format!("Basic {auth}"))
        .header("content-type", "application/json")
        .body(Pieces::whole(b"{}".to_vec()))
        .expect("request");
    let r = b.app.respond(req, peer, ListenerKind::Plain).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .method("GET")
        .uri("/remote.php/dav/bulk")
        .header("authorization", format!("Basic {auth}"))
        .body(Pieces::whole(Vec::new()))
        .expect("request");
    let r = b.app.respond(req, peer, ListenerKind::Plain).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}
