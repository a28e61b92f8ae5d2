//! Hostile paths and headers get a clear 4xx and write nothing.

mod common;

use bytes::Bytes;
use common::Dav;
use http::StatusCode;

#[tokio::test]
async fn hostile_paths_are_refused() {
    let dav = Dav::new();
    for path in [
        "/dav/%2e%2e/x",
        "/dav/a/..",
        "/dav/a%2Fb",
        "/dav/a%5Cb",
        "/dav/nul%00",
        "/dav/%FF%FE",
        "/dav/bad%zz",
        "/dav/trunc%4",
        "/dav/ctl%0D%0A",
    ] {
        let r = dav.put(path, "x").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "PUT {path}");
        let r = dav.mkcol(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "MKCOL {path}");
    }
    let long = format!("/dav/{}", "n".repeat(300));
    assert_eq!(dav.put(&long, "x").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dav.put("/elsewhere/x", "x").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(dav.put("/davx", "x").await.status, StatusCode::NOT_FOUND);
    let listing = dav.propfind("/dav/", "1", "").await.text();
    assert_eq!(listing.matches("<D:response>").count(), 1, "{listing}");
}

#[tokio::test]
async fn plus_is_not_space_and_names_round_trip() {
    let dav = Dav::new();
    assert_eq!(
        dav.put("/dav/a+b.txt", "plus").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        dav.get("/dav/a%20b.txt").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(dav.get("/dav/a%2Bb.txt").await.text(), "plus");
    let listing = dav.propfind("/dav/", "1", "").await.text();
    assert!(listing.contains("/dav/a%2Bb.txt"), "{listing}");
}

#[tokio::test]
async fn hostile_destinations_and_headers() {
    let dav = Dav::new();
    dav.put("/dav/f", "x").await;
    for (dest, status) in [
        ("/dav/%2e%2e/escape", StatusCode::BAD_REQUEST),
        ("http://host/etc/passwd", StatusCode::BAD_GATEWAY),
        ("relative/path", StatusCode::BAD_REQUEST),
        ("/dav/a%2Fb", StatusCode::BAD_REQUEST),
    ] {
        let r = dav
            .send("MOVE", "/dav/f", &[("destination", dest)], Bytes::new())
            .await;
        assert_eq!(r.status, status, "{dest}");
    }
    assert_eq!(dav.get("/dav/f").await.text(), "x");
    let r = dav.send("COPY", "/dav/f", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav
        .send(
            "COPY",
            "/dav/f",
            &[("destination", "/dav/g"), ("overwrite", "maybe")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav
        .send("PROPFIND", "/dav/f", &[("depth", "2")], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = dav.send("BREW", "/dav/f", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = dav
        .send(
            "PROPPATCH",
            "/dav/f",
            &[],
            "<!DOCTYPE a [<!ENTITY b 'c'>]><propertyupdate xmlns='DAV:'/>",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A client chooses a file's modification time: one far in the future (here the year 12,675)
/// is stored as the latest time the store can hold, and the file still downloads and lists,
/// with the same valid HTTP date in both.
#[tokio::test]
async fn far_future_modification_times_still_list_and_download() {
    let dav = Dav::new();
    let req = http::Request::builder()
        .method("PUT")
        .uri("/dav/future.txt")
        .header("x-oc-mtime", "337900000000")
        .body(http_body_util::Full::new(Bytes::from_static(b"x")))
        .expect("request");
    let r = dav.finish(dav.handler.handle(dav.user, req).await).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let got = dav.get("/dav/future.txt").await;
    assert_eq!(got.status, StatusCode::OK);
    let date = got
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();
    let when = httpdate::parse_http_date(&date).expect("an HTTP date");
    assert!(when > std::time::UNIX_EPOCH + std::time::Duration::from_secs(17_000_000_000));
    let listing = dav.propfind("/dav/", "1", "").await.text();
    assert!(
        listing.contains(&format!("<D:getlastmodified>{date}</D:getlastmodified>")),
        "{listing}"
    );
}
