//! OPTIONS, GET/HEAD (ranges, conditionals), PUT (streaming, aborted bodies), MKCOL, DELETE,
//! COPY and MOVE against a real store.

mod common;

use std::io;

use bytes::Bytes;
use common::Dav;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;

#[tokio::test]
async fn options_advertises_class_2() {
    let dav = Dav::new();
    let r = dav.send("OPTIONS", "/dav/", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("dav"), Some("1, 2"));
    assert!(
        r.header("allow")
            .is_some_and(|a| a.contains("PROPFIND") && a.contains("LOCK"))
    );
}

#[tokio::test]
async fn put_get_round_trip_with_etag() {
    let dav = Dav::new();
    let r = dav.put("/dav/hello.txt", "hello world").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let etag = r.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let r = dav.get("/dav/hello.txt").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some("11"));
    assert!(r.header("last-modified").is_some());
    let r = dav.put("/dav/hello.txt", "replaced").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let head = dav.send("HEAD", "/dav/hello.txt", &[], Bytes::new()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("8"));
}

#[tokio::test]
async fn ranges() {
    let dav = Dav::new();
    dav.put("/dav/r.bin", "0123456789").await;
    let r = dav
        .send("GET", "/dav/r.bin", &[("range", "bytes=2-4")], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.text(), "234");
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let r = dav
        .send("GET", "/dav/r.bin", &[("range", "bytes=-3")], Bytes::new())
        .await;
    assert_eq!(r.text(), "789");
    let r = dav
        .send("GET", "/dav/r.bin", &[("range", "bytes=7-")], Bytes::new())
        .await;
    assert_eq!(r.text(), "789");
    let r = dav
        .send("GET", "/dav/r.bin", &[("range", "bytes=20-")], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    let r = dav
        .send(
            "GET",
            "/dav/r.bin",
            &[("range", "bytes=0-1,4-5")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "0123456789");
    let stale = [("range", "bytes=0-1"), ("if-range", "\"stale\"")];
    let r = dav.send("GET", "/dav/r.bin", &stale, Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn conditional_requests() {
    let dav = Dav::new();
    let etag = dav
        .put("/dav/c.txt", "v1")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let r = dav
        .send(
            "GET",
            "/dav/c.txt",
            &[("if-none-match", &etag)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = dav
        .send("PUT", "/dav/c.txt", &[("if-match", "\"nope\"")], "v2")
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = dav
        .send("PUT", "/dav/c.txt", &[("if-none-match", "*")], "v2")
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = dav
        .send("PUT", "/dav/c.txt", &[("if-match", &etag)], "v2")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(dav.get("/dav/c.txt").await.text(), "v2");
    let r = dav
        .send("PUT", "/dav/new.txt", &[("if-match", "*")], "x")
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn put_accepts_oc_mtime_and_chunked_bodies() {
    let dav = Dav::new();
    let frames: Vec<Result<Frame<Bytes>, io::Error>> = (0..50)
        .map(|i| Ok(Frame::data(Bytes::from(format!("chunk{i:02};")))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let req = Request::builder()
        .method("PUT")
        .uri("/dav/chunked.txt")
        .header("x-oc-mtime", "1700000000")
        .body(body)
        .expect("request");
    let r = dav.finish(dav.handler.handle(dav.user, req).await).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-oc-mtime"), Some("accepted"));
    let got = dav.get("/dav/chunked.txt").await;
    assert_eq!(got.body.len(), 50 * 8);
    assert_eq!(
        got.header("last-modified"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
}

#[tokio::test]
async fn aborted_upload_keeps_previous_version() {
    let dav = Dav::new();
    dav.put("/dav/keep.txt", "original").await;
    let frames: Vec<Result<Frame<Bytes>, io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"partial"))),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let req = Request::builder()
        .method("PUT")
        .uri("/dav/keep.txt")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .expect("request");
    let r = dav.finish(dav.handler.handle(dav.user, req).await).await;
    assert!(r.status.is_client_error(), "{:?}", r.status);
    assert_eq!(dav.get("/dav/keep.txt").await.text(), "original");

    // A body shorter than its Content-Length is not committed either.
    let r = dav
        .send(
            "PUT",
            "/dav/keep.txt",
            &[("content-length", "100")],
            "short",
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.status);
    assert_eq!(dav.get("/dav/keep.txt").await.text(), "original");
    let r = dav
        .send(
            "PUT",
            "/dav/fresh.txt",
            &[("content-length", "100")],
            "short",
        )
        .await;
    assert!(r.status.is_client_error());
    assert_eq!(
        dav.get("/dav/fresh.txt").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn put_refusals() {
    let dav = Dav::new();
    assert_eq!(
        dav.put("/dav/missing/x.txt", "x").await.status,
        StatusCode::CONFLICT
    );
    dav.mkcol("/dav/dir").await;
    assert_eq!(
        dav.put("/dav/dir", "x").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    dav.put("/dav/file", "x").await;
    assert_eq!(
        dav.put("/dav/file/x", "x").await.status,
        StatusCode::CONFLICT
    );
    let r = dav
        .send("PUT", "/dav/p", &[("content-range", "bytes 0-1/2")], "ab")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mkcol_and_delete() {
    let dav = Dav::new();
    assert_eq!(dav.mkcol("/dav/a").await.status, StatusCode::CREATED);
    assert_eq!(
        dav.mkcol("/dav/a").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(dav.mkcol("/dav/x/y").await.status, StatusCode::CONFLICT);
    let r = dav.send("MKCOL", "/dav/b", &[], "<x/>").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    dav.put("/dav/a/f.txt", "f").await;
    let r = dav.get("/dav/a/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("f.txt"));
    assert_eq!(
        dav.send("DELETE", "/dav/a", &[], Bytes::new()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(dav.get("/dav/a/f.txt").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        dav.send("DELETE", "/dav/a", &[], Bytes::new()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dav.send("DELETE", "/dav/", &[], Bytes::new()).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn copy_and_move() {
    let dav = Dav::new();
    dav.put("/dav/src.txt", "data").await;
    let to = |dest: &'static str| [("destination", dest)];
    let r = dav
        .send(
            "COPY",
            "/dav/src.txt",
            &to("http://localhost/dav/copy.txt"),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = dav
        .send("COPY", "/dav/src.txt", &to("/dav/copy.txt"), Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let no = [("destination", "/dav/copy.txt"), ("overwrite", "F")];
    assert_eq!(
        dav.send("COPY", "/dav/src.txt", &no, Bytes::new())
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    let r = dav
        .send("COPY", "/dav/src.txt", &to("/dav/src.txt"), Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = dav
        .send("COPY", "/dav/src.txt", &to("/dav/nodir/x"), Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = dav
        .send(
            "COPY",
            "/dav/src.txt",
            &to("http://other/elsewhere/x"),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let r = dav
        .send(
            "MOVE",
            "/dav/src.txt",
            &to("/dav/moved%20%23.txt"),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(dav.get("/dav/src.txt").await.status, StatusCode::NOT_FOUND);
    assert_eq!(dav.get("/dav/moved%20%23.txt").await.text(), "data");

    dav.mkcol("/dav/coll").await;
    dav.put("/dav/coll/m.txt", "m").await;
    let shallow = [("destination", "/dav/shallow"), ("depth", "0")];
    assert_eq!(
        dav.send("COPY", "/dav/coll", &shallow, Bytes::new())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        dav.get("/dav/shallow/m.txt").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        dav.send("COPY", "/dav/coll", &to("/dav/deep"), Bytes::new())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(dav.get("/dav/deep/m.txt").await.text(), "m");
    let into = dav
        .send("MOVE", "/dav/coll", &to("/dav/coll/inner"), Bytes::new())
        .await;
    assert_eq!(into.status, StatusCode::FORBIDDEN);
    let bad_depth = [("destination", "/dav/z"), ("depth", "0")];
    assert_eq!(
        dav.send("MOVE", "/dav/coll", &bad_depth, Bytes::new())
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn over_quota_is_507_and_keeps_the_previous_version() {
    let dav = Dav::new();
    dav.put("/dav/q.bin", "small").await;
    dav.store.set_quota("alice", Some(1024)).expect("quota");
    let big = vec![b'x'; 64 * 1024];
    let len = big.len().to_string();
    let r = dav
        .send(
            "PUT",
            "/dav/q.bin",
            &[("content-length", &len)],
            big.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    // Unknown length: the store notices while writing.
    let frames: Vec<Result<Frame<Bytes>, io::Error>> = (0..64)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 1024]))))
        .collect();
    let req = Request::builder()
        .method("PUT")
        .uri("/dav/q.bin")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .expect("request");
    let r = dav.finish(dav.handler.handle(dav.user, req).await).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(dav.get("/dav/q.bin").await.text(), "small");
}
