//! The sync half of the Nextcloud protocol end to end, in memory: status and capabilities,
//! the user's files under `/remote.php/dav/files/<user>/`, chunking v2 (order, resends, a
//! broken chunk, checksum at assembly, expiry), the trash and versions DAV spaces.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use percloud_web::ListenerKind;

mod common;

use common::{PASSWORD, Pieces, TestBox};

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A box with two accounts, alice and bob; requests go as alice.
fn new_box() -> TestBox {
    let b = TestBox::new();
    let hash = percloud_accounts::hash_password(PASSWORD).expect("hash");
    b.store.create_user("alice", &hash, None).expect("alice");
    b.store.create_user("bob", &hash, None).expect("bob");
    b
}

/// Requests as alice with her password.
trait AsAlice {
    async fn send_body(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Pieces,
    ) -> Reply;
    async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply;
}

impl AsAlice for TestBox {
    async fn send_body(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Pieces,
    ) -> Reply {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "box.local")
            .header("authorization", format!("Basic {auth}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(body).expect("request");
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let response = self.app.respond(req, peer, ListenerKind::Plain).await;
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }

    async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send_body(method, uri, headers, Pieces::whole(body.to_vec()))
            .await
    }
}

const FILES: &str = "/remote.php/dav/files/alice";
const UPLOADS: &str = "/remote.php/dav/uploads/alice";

fn sha1_hex(data: &[u8]) -> String {
    let mut sha = percloud_dav::Sha1::default();
    sha.update(data);
    sha.hex()
}

#[tokio::test]
async fn status_capabilities_and_user() {
    let b = new_box();
    let r = b.send("GET", "/status.php", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("\"installed\":true"), "{}", r.text());
    let r = b
        .send(
            "GET",
            "/ocs/v1.php/cloud/capabilities?format=json",
            &[],
            b"",
        )
        .await;
    let caps: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(caps["ocs"]["meta"]["statuscode"], 100);
    assert_eq!(
        caps["ocs"]["data"]["capabilities"]["dav"]["chunking"],
        "1.0"
    );
    let r = b
        .send("GET", "/ocs/v2.php/cloud/capabilities", &[], b"")
        .await;
    assert!(
        r.text().contains("<statuscode>200</statuscode>"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("<chunking>1.0</chunking>"));
    let r = b
        .send("GET", "/ocs/v2.php/cloud/user?format=json", &[], b"")
        .await;
    let user: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(user["ocs"]["data"]["id"], "alice");
    let r = b
        .send("GET", "/ocs/v2.php/cloud/nothing-here", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn files_are_the_users_own_tree() {
    let b = new_box();
    let r = b.send("PUT", &format!("{FILES}/a+b.txt"), &[], b"x").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(!r.header("oc-fileid").is_empty());
    let r = b.send("GET", "/dav/a+b.txt", &[], b"").await;
    assert_eq!(r.text(), "x");
    let r = b.send("GET", "/remote.php/webdav/a+b.txt", &[], b"").await;
    assert_eq!(r.text(), "x");
    let r = b
        .send(
            "PROPFIND",
            "/remote.php/dav/files/bob/",
            &[("depth", "1")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn chunked_upload_in_order_resumable_and_checked() {
    let b = new_box();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let total = data.len().to_string();
    let r = b
        .send(
            "MKCOL",
            &format!("{UPLOADS}/77"),
            &[("oc-total-length", &total)],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = b.send("MKCOL", &format!("{UPLOADS}/77"), &[], b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Chunks of odd sizes; the second arrives in pieces.
    let cuts = [0, 1_000_003, 2_500_000, data.len()];
    let r = b
        .send(
            "PUT",
            &format!("{UPLOADS}/77/0000000000000000"),
            &[],
            &data[..cuts[1]],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // A chunk whose connection breaks is not recorded.
    let broken = Pieces {
        pieces: VecDeque::from([Bytes::copy_from_slice(&data[cuts[1]..cuts[1] + 1000])]),
        breaks: true,
    };
    let r = b
        .send_body(
            "PUT",
            &format!("{UPLOADS}/77/0000000000000001"),
            &[],
            broken,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let listing = b
        .send(
            "PROPFIND",
            &format!("{UPLOADS}/77/"),
            &[("depth", "1")],
            b"",
        )
        .await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    let xml = listing.text();
    assert!(xml.contains("/77/0000000000000000</d:href>"), "{xml}");
    assert!(!xml.contains("0000000000000001"), "{xml}");
    assert!(xml.contains("<d:getcontentlength>1000003</d:getcontentlength>"));

    let second = Pieces {
        pieces: data[cuts[1]..cuts[2]]
            .chunks(65_536)
            .map(Bytes::copy_from_slice)
            .collect(),
        breaks: false,
    };
    let len = (cuts[2] - cuts[1]).to_string();
    let r = b
        .send_body(
            "PUT",
            &format!("{UPLOADS}/77/0000000000000001"),
            &[
                ("content-length", &len),
                ("oc-chunk-offset", &cuts[1].to_string()),
            ],
            second,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // Sent again (its answer was lost): accepted, not appended twice.
    let r = b
        .send(
            "PUT",
            &format!("{UPLOADS}/77/0000000000000001"),
            &[("content-length", &len)],
            &data[cuts[1]..cuts[2]],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Assembling an incomplete upload is refused.
    let dest = format!("http://box.local{FILES}/big.bin");
    let r = b
        .send(
            "MOVE",
            &format!("{UPLOADS}/77/.file"),
            &[("destination", &dest)],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = b
        .send(
            "PUT",
            &format!("{UPLOADS}/77/0000000000000002"),
            &[],
            &data[cuts[2]..],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let good = format!("SHA1:{}", sha1_hex(&data));
    let r = b
        .send(
            "MOVE",
            &format!("{UPLOADS}/77/.file"),
            &[
                ("destination", &dest),
                ("oc-checksum", &good),
                ("x-oc-mtime", "1600000000"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.header("etag").starts_with('"'));
    assert!(!r.header("oc-fileid").is_empty());
    assert_eq!(r.header("x-oc-mtime"), "accepted");
    let got = b.send("GET", &format!("{FILES}/big.bin"), &[], b"").await;
    assert!(got.body == data);
    let props = b
        .send(
            "PROPFIND",
            &format!("{FILES}/big.bin"),
            &[("depth", "0")],
            br#"<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:checksums/><d:getlastmodified/></d:prop></d:propfind>"#,
        )
        .await;
    assert!(props.text().contains(&good), "{}", props.text());
    assert!(props.text().contains("13 Sep 2020"), "{}", props.text());
    // The upload is gone once assembled.
    let r = b
        .send("PROPFIND", &format!("{UPLOADS}/77/"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chunks_out_of_order_and_deleted_are_merged_in_file_order() {
    let b = new_box();
    let parts: Vec<Vec<u8>> = (0..4u8)
        .map(|i| (0..700_000u32).map(|j| (j % 253) as u8 ^ i).collect())
        .collect();
    let total: usize = parts.iter().map(Vec::len).sum();
    b.send(
        "MKCOL",
        &format!("{UPLOADS}/88"),
        &[("oc-total-length", &total.to_string())],
        b"",
    )
    .await;
    let b = &b;
    let put = |i: usize, body: Vec<u8>| async move {
        let uri = format!("{UPLOADS}/88/{i:016}");
        b.send("PUT", &uri, &[], &body).await.status
    };
    // 2 first (its offset is past a gap), then 0 and 1 (parked), then 3 in the run: deleted
    // and sent again (parked).
    let r = b
        .send(
            "PUT",
            &format!("{UPLOADS}/88/{:016}", 2),
            &[("oc-chunk-offset", "1400000")],
            &parts[2],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(put(0, parts[0].clone()).await, StatusCode::CREATED);
    assert_eq!(put(1, parts[1].clone()).await, StatusCode::CREATED);
    assert_eq!(put(3, b"wrong bytes".to_vec()).await, StatusCode::CREATED);
    let r = b
        .send("DELETE", &format!("{UPLOADS}/88/{:016}", 3), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // An offset that overlaps the chunks before it: the client and the box disagree.
    let r = b
        .send(
            "PUT",
            &format!("{UPLOADS}/88/{:016}", 3),
            &[("oc-chunk-offset", "700000")],
            &parts[3],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(put(3, parts[3].clone()).await, StatusCode::CREATED);
    let xml = b
        .send(
            "PROPFIND",
            &format!("{UPLOADS}/88/"),
            &[("depth", "1")],
            b"",
        )
        .await
        .text();
    let listed: Vec<&str> = xml
        .split("<d:href>")
        .skip(2)
        .map(|s| &s[..s.find('<').unwrap_or(0)])
        .collect();
    assert_eq!(listed.len(), 4, "{xml}");
    assert!(listed[0].ends_with("/0000000000000000") && listed[3].ends_with("/0000000000000003"));

    let whole: Vec<u8> = parts.concat();
    let good = format!("SHA1:{}", sha1_hex(&whole));
    let dest = format!("{FILES}/merged.bin");
    let r = b
        .send(
            "MOVE",
            &format!("{UPLOADS}/88/.file"),
            &[("destination", &dest), ("oc-checksum", &good)],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(b.send("GET", &dest, &[], b"").await.body == whole);
    // Nothing staged is left behind: the run and the parked chunks are gone.
    let alice = b.store.user("alice").expect("user").expect("alice").id;
    assert!(b.store.staged_uploads(alice).expect("staged").is_empty());
}

#[tokio::test]
async fn a_checksum_mismatch_at_assembly_stores_nothing() {
    let b = new_box();
    b.send("PUT", &format!("{FILES}/keep.txt"), &[], b"old")
        .await;
    b.send("MKCOL", &format!("{UPLOADS}/9"), &[], b"").await;
    b.send(
        "PUT",
        &format!("{UPLOADS}/9/0000000000000000"),
        &[],
        b"new content",
    )
    .await;
    let wrong = format!("SHA1:{}", sha1_hex(b"other content"));
    let dest = format!("{FILES}/keep.txt");
    let r = b
        .send(
            "MOVE",
            &format!("{UPLOADS}/9/.file"),
            &[("destination", &dest), ("oc-checksum", &wrong)],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.send("GET", &dest, &[], b"").await.text(), "old");
    // A stale If-Match on the assembly is 412 and leaves both sides.
    b.send("MKCOL", &format!("{UPLOADS}/10"), &[], b"").await;
    b.send(
        "PUT",
        &format!("{UPLOADS}/10/0000000000000000"),
        &[],
        b"newer",
    )
    .await;
    let r = b
        .send(
            "MOVE",
            &format!("{UPLOADS}/10/.file"),
            &[("destination", &dest), ("if-match", "\"stale\"")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(b.send("GET", &dest, &[], b"").await.text(), "old");
    let r = b
        .send("PROPFIND", &format!("{UPLOADS}/10/"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "the upload is kept");
}

#[tokio::test]
async fn idle_uploads_expire() {
    let b = new_box();
    b.send("MKCOL", &format!("{UPLOADS}/5"), &[], b"").await;
    b.send("PUT", &format!("{UPLOADS}/5/0000000000000000"), &[], b"abc")
        .await;
    assert_eq!(
        b.store
            .expire_staged(SystemTime::now() - Duration::from_secs(3600))
            .expect("expire"),
        0
    );
    let r = b.send("PROPFIND", &format!("{UPLOADS}/5/"), &[], b"").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    // What the maintenance worker does: uploads idle for 24 hours go.
    let later = SystemTime::now() + Duration::from_secs(25 * 3600);
    let cutoff = later - Duration::from_secs(24 * 3600);
    assert_eq!(b.store.expire_staged(cutoff).expect("expire"), 1);
    let r = b.send("PROPFIND", &format!("{UPLOADS}/5/"), &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn trash_and_versions_spaces() {
    let b = new_box();
    b.send("MKCOL", &format!("{FILES}/d"), &[], b"").await;
    b.send("PUT", &format!("{FILES}/d/n.txt"), &[], b"one")
        .await;
    let r = b
        .send("PUT", &format!("{FILES}/d/n.txt"), &[], b"two")
        .await;
    let file_id: u64 = r.header("oc-fileid")[..8].parse().expect("id");

    let vs = format!("/remote.php/dav/versions/alice/versions/{file_id}");
    let listing = b.send("PROPFIND", &vs, &[("depth", "1")], b"").await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    let xml = listing.text();
    let hrefs: Vec<&str> = xml
        .split("<d:href>")
        .skip(2)
        .map(|s| &s[..s.find('<').unwrap_or(0)])
        .collect();
    assert_eq!(hrefs.len(), 1, "one earlier version: {xml}");
    let old = b.send("GET", hrefs[0], &[], b"").await;
    assert_eq!(old.text(), "one");
    let r = b
        .send(
            "MOVE",
            hrefs[0],
            &[(
                "destination",
                "/remote.php/dav/versions/alice/restore/target",
            )],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        b.send("GET", &format!("{FILES}/d/n.txt"), &[], b"")
            .await
            .text(),
        "one"
    );

    let r = b
        .send("DELETE", &format!("{FILES}/d/n.txt"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let trash = "/remote.php/dav/trashbin/alice/trash";
    let listing = b.send("PROPFIND", trash, &[("depth", "1")], b"").await;
    let xml = listing.text();
    assert!(
        xml.contains("<nc:trashbin-filename>n.txt</nc:trashbin-filename>"),
        "{xml}"
    );
    assert!(xml.contains("<nc:trashbin-original-location>d/n.txt</nc:trashbin-original-location>"));
    assert!(xml.contains("<nc:trashbin-deletion-time>"));
    let item = xml
        .split("<d:href>")
        .nth(2)
        .map(|s| s[..s.find('<').unwrap_or(0)].to_owned())
        .expect("an item");
    let restore_to = format!(
        "/remote.php/dav/trashbin/alice/restore/{}",
        item.rsplit('/').next().unwrap_or("")
    );
    let r = b
        .send("MOVE", &item, &[("destination", &restore_to)], b"")
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        b.send("GET", &format!("{FILES}/d/n.txt"), &[], b"")
            .await
            .text(),
        "one"
    );

    b.send("DELETE", &format!("{FILES}/d"), &[], b"").await;
    let xml = b
        .send("PROPFIND", trash, &[("depth", "1")], b"")
        .await
        .text();
    let item = xml
        .split("<d:href>")
        .nth(2)
        .map(|s| s[..s.find('<').unwrap_or(0)].to_owned())
        .expect("an item");
    let r = b.send("DELETE", &item, &[], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let alice = b.store.user("alice").expect("user").expect("alice").id;
    assert!(b.store.trash(alice).expect("trash").is_empty());
}
