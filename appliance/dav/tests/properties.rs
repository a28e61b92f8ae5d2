//! PROPFIND and PROPPATCH against a real store.

mod common;

use bytes::Bytes;
use common::Dav;
use http::StatusCode;

const NS: &str = "urn:example:props";

#[tokio::test]
async fn propfind_depth_and_hrefs() {
    let dav = Dav::new();
    dav.mkcol("/dav/d%C3%A9j%C3%A0").await;
    dav.put("/dav/d%C3%A9j%C3%A0/a%20%23b%3F%25.txt", "abc")
        .await;
    let r = dav.propfind("/dav/d%C3%A9j%C3%A0/", "1", "").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        r.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    let text = r.text();
    assert!(
        text.contains("<D:href>/dav/d%C3%A9j%C3%A0/</D:href>"),
        "{text}"
    );
    assert!(
        text.contains("<D:href>/dav/d%C3%A9j%C3%A0/a%20%23b%3F%25.txt</D:href>"),
        "{text}"
    );
    assert!(text.contains("<D:collection/>"));
    assert!(text.contains("<D:getcontentlength>3</D:getcontentlength>"));
    assert!(text.contains("<D:getcontenttype>text/plain; charset=utf-8</D:getcontenttype>"));
    assert!(text.contains("<D:supportedlock>"));
    let r = dav.propfind("/dav/d%C3%A9j%C3%A0/", "0", "").await;
    assert!(!r.text().contains("a%20%23b"));
}

#[tokio::test]
async fn propfind_refuses_infinity_and_bad_bodies() {
    let dav = Dav::new();
    let r = dav.send("PROPFIND", "/dav/", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("propfind-finite-depth"));
    let r = dav.propfind("/dav/", "infinity", "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        dav.propfind("/dav/", "0", "<foo>").await.status,
        StatusCode::BAD_REQUEST
    );
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <propfind xmlns=\"DAV:\"><prop>&x;</prop></propfind>";
    assert_eq!(
        dav.propfind("/dav/", "0", xxe).await.status,
        StatusCode::BAD_REQUEST
    );
    let huge = format!(
        "<propfind xmlns=\"DAV:\"><allprop/>{}</propfind>",
        " ".repeat(2 << 20)
    );
    assert_eq!(
        dav.propfind("/dav/", "0", &huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        dav.propfind("/dav/nope", "0", "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn proppatch_round_trip_and_named_propfind() {
    let dav = Dav::new();
    dav.put("/dav/p.txt", "x").await;
    let patch = format!(
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:z=\"{NS}\">\
         <D:set><D:prop><z:color>blue &amp; green</z:color><z:gone>1</z:gone></D:prop></D:set>\
         <D:remove><D:prop><z:gone/></D:prop></D:remove></D:propertyupdate>"
    );
    let r = dav.send("PROPPATCH", "/dav/p.txt", &[], patch).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(r.text().contains("HTTP/1.1 200 OK"));
    let ask = format!(
        "<propfind xmlns=\"DAV:\"><prop><getetag/><color xmlns=\"{NS}\"/><gone xmlns=\"{NS}\"/></prop></propfind>"
    );
    let text = dav.propfind("/dav/p.txt", "0", &ask).await.text();
    assert!(text.contains("blue &amp; green"), "{text}");
    assert!(text.contains("HTTP/1.1 404 Not Found"), "{text}");
    assert!(text.contains("<D:getetag>\""), "{text}");
    let names = dav
        .propfind(
            "/dav/p.txt",
            "0",
            "<propfind xmlns=\"DAV:\"><propname/></propfind>",
        )
        .await;
    assert!(
        names
            .text()
            .contains(":color xmlns:P=\"urn:example:props\"/>"),
        "{}",
        names.text()
    );
}

#[tokio::test]
async fn proppatch_of_protected_property_changes_nothing() {
    let dav = Dav::new();
    dav.put("/dav/q.txt", "x").await;
    let patch = format!(
        "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
         <D:getetag>forged</D:getetag><z:ok xmlns:z=\"{NS}\">v</z:ok></D:prop></D:set></D:propertyupdate>"
    );
    let r = dav.send("PROPPATCH", "/dav/q.txt", &[], patch).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    let text = r.text();
    assert!(
        text.contains("403 Forbidden") && text.contains("424 Failed Dependency"),
        "{text}"
    );
    let ask = format!("<propfind xmlns=\"DAV:\"><prop><ok xmlns=\"{NS}\"/></prop></propfind>");
    assert!(
        dav.propfind("/dav/q.txt", "0", &ask)
            .await
            .text()
            .contains("404 Not Found")
    );
    let r = dav.send("PROPPATCH", "/dav/missing", &[], "<propertyupdate xmlns='DAV:'><set><prop><a xmlns='urn:a'/></prop></set></propertyupdate>").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A folder of more than a few hundred entries answers with a streamed body: every entry is
/// listed once, the document is well-formed, and each response is exactly what a PROPFIND of
/// that entry alone (a whole body) says.
#[tokio::test]
async fn long_listings_stream_the_same_responses() {
    let dav = Dav::new();
    dav.mkcol("/dav/many").await;
    let count = 600;
    for i in 0..count {
        let r = dav.put(&format!("/dav/many/f{i:04}.txt"), "x").await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Streamed: no length known ahead, where a short listing has one.
    for (path, streamed) in [("/dav/many/", true), ("/dav/many/f0000.txt", false)] {
        let req = http::Request::builder()
            .method("PROPFIND")
            .uri(path)
            .header("depth", "1")
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let response = dav.handler.handle(dav.user, req).await;
        let known = http_body::Body::size_hint(response.body()).exact();
        assert_eq!(known.is_none(), streamed, "{path}: {known:?}");
    }
    let listing = dav.propfind("/dav/many/", "1", "").await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    let text = listing.text();
    assert!(
        text.len() > 256 * 1024,
        "{} bytes: too short to stream in chunks",
        text.len()
    );
    let mut reader = quick_xml::Reader::from_str(&text);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert!(text.ends_with("</D:multistatus>\n"));
    assert_eq!(text.matches("<D:response>").count(), count + 1);
    for i in 0..count {
        let path = format!("/dav/many/f{i:04}.txt");
        let alone = dav.propfind(&path, "0", "").await.text();
        let start = alone.find("<D:response>").expect("a response");
        let end = alone.rfind("</D:response>").expect("its end") + "</D:response>".len();
        let response = &alone[start..end];
        assert_eq!(text.matches(response).count(), 1, "{path}: {response}");
    }
}
