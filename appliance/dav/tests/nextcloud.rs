//! What the Nextcloud and ownCloud sync clients rely on, against a real store: the `oc:`
//! properties, `OC-Checksum` verified and kept, `X-OC-Mtime`, `OC-FileId`, 412 on a stale
//! `If-Match` (the client then keeps both sides), another mount of the same tree.

mod common;

use bytes::Bytes;
use common::Dav;
use http::StatusCode;

const PROPS: &str = r#"<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">
<d:prop><d:resourcetype/><d:getlastmodified/><d:getcontentlength/><d:getetag/>
<oc:id/><oc:fileid/><oc:permissions/><oc:size/><oc:checksums/><oc:data-fingerprint/>
<oc:share-types/><nc:has-preview/><oc:downloadURL/></d:prop></d:propfind>"#;

// SHA1("hello world")
const HELLO_SHA1: &str = "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed";

#[tokio::test]
async fn checksums_are_verified_kept_and_reported() {
    let dav = Dav::new();
    let good = format!("SHA1:{HELLO_SHA1}");
    let r = dav
        .send(
            "PUT",
            "/dav/a.txt",
            &[("oc-checksum", &good), ("x-oc-mtime", "1700000000")],
            "hello world",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-oc-mtime"), Some("accepted"));
    let etag = r.header("etag").expect("etag").to_owned();
    assert_eq!(r.header("oc-etag"), Some(etag.as_str()));
    let file_id = r.header("oc-fileid").expect("file id").to_owned();
    assert!(file_id.len() >= 20 && file_id[..8].bytes().all(|b| b.is_ascii_digit()));

    // A body that does not match its checksum stores nothing: the old content stays.
    let bad = format!("SHA1:{}", "0".repeat(40));
    let r = dav
        .send("PUT", "/dav/a.txt", &[("oc-checksum", &bad)], "damaged!!!!")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = dav
        .send("PUT", "/dav/new.txt", &[("oc-checksum", &bad)], "damaged")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let got = dav.get("/dav/a.txt").await;
    assert_eq!(got.text(), "hello world");
    assert_eq!(got.header("oc-checksum"), Some(good.as_str()));
    assert_eq!(dav.get("/dav/new.txt").await.status, StatusCode::NOT_FOUND);
    // Also when the body streams (no Content-Length, large).
    let big = Bytes::from(vec![7u8; 600 * 1024]);
    let r = dav
        .send("PUT", "/dav/big.bin", &[("oc-checksum", &bad)], big)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(dav.get("/dav/big.bin").await.status, StatusCode::NOT_FOUND);

    let r = dav
        .send("PROPFIND", "/dav/", &[("depth", "1")], PROPS)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    let xml = r.text();
    assert!(
        xml.contains(&format!("<oc:checksum>SHA1:{HELLO_SHA1}</oc:checksum>")),
        "{xml}"
    );
    assert!(xml.contains(&format!("<oc:id>{file_id}</oc:id>")), "{xml}");
    assert!(xml.contains("<oc:permissions>RGDNVW</oc:permissions>"));
    assert!(xml.contains("<oc:permissions>RGDNVCK</oc:permissions>"));
    assert!(xml.contains(&format!("<D:getetag>{etag}</D:getetag>")));
    assert!(xml.contains("Tue, 14 Nov 2023 22:13:20 GMT"), "{xml}");
    // The root's oc:size is everything beneath it.
    assert!(xml.contains("<oc:size>11</oc:size>"));
    // Asked for and unknown: reported missing, not an error.
    assert!(xml.contains("HTTP/1.1 404 Not Found"));
}

#[tokio::test]
async fn folder_size_counts_everything_beneath() {
    let dav = Dav::new();
    dav.send("MKCOL", "/dav/d", &[], Bytes::new()).await;
    dav.send("MKCOL", "/dav/d/e", &[], Bytes::new()).await;
    dav.put("/dav/d/e/f", "12345").await;
    dav.put("/dav/d/g", "123").await;
    let r = dav
        .send("PROPFIND", "/dav/d/", &[("depth", "0")], PROPS)
        .await;
    assert!(r.text().contains("<oc:size>8</oc:size>"), "{}", r.text());
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_nothing_is_lost() {
    let dav = Dav::new();
    let first = dav.put("/dav/c.txt", "device one").await;
    let stale = first.header("etag").expect("etag").to_owned();
    let second = dav
        .send("PUT", "/dav/c.txt", &[("if-match", &stale)], "device two")
        .await;
    assert_eq!(second.status, StatusCode::NO_CONTENT);
    let r = dav
        .send("PUT", "/dav/c.txt", &[("if-match", &stale)], "device three")
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(dav.get("/dav/c.txt").await.text(), "device two");
    let path = percloud_store::StorePath::parse("/c.txt").expect("path");
    assert_eq!(
        dav.store.versions(dav.user, &path).expect("versions").len(),
        2
    );
}

#[tokio::test]
async fn another_mount_serves_the_same_tree() {
    let dav = Dav::new();
    dav.put("/dav/a+b&c.txt", "x").await;
    let nc = dav.handler.mounted_at("/remote.php/dav/files/alice");
    let req = http::Request::builder()
        .method("PROPFIND")
        .uri("/remote.php/dav/files/alice/")
        .header("depth", "1")
        .body(http_body_util::Full::new(Bytes::from_static(
            PROPS.as_bytes(),
        )))
        .expect("request");
    let r = dav.finish(nc.handle(dav.user, req).await).await;
    let xml = r.text();
    assert!(
        xml.contains("<D:href>/remote.php/dav/files/alice/a%2Bb%26c.txt</D:href>"),
        "{xml}"
    );
    // MOVE with a Destination that is a path, with a literal '+'.
    let req = http::Request::builder()
        .method("MOVE")
        .uri("/remote.php/dav/files/alice/a+b&c.txt")
        .header("destination", "/remote.php/dav/files/alice/d+e.txt")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let r = dav.finish(nc.handle(dav.user, req).await).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(dav.get("/dav/d+e.txt").await.text(), "x");
}
