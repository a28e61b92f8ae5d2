//! A WebDAV client for one account: the methods tests use, with Basic auth and path segments
//! percent-encoded.

use std::io;
use std::net::SocketAddr;

use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::http::{Response, request_raw};

/// Everything but unreserved characters and a few safe sub-delimiters is encoded in a segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `/dav/` followed by `path`'s `/`-separated segments, each percent-encoded.
pub fn encode_path(path: &str) -> String {
    let encoded: Vec<String> = path
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect();
    format!("/dav/{}", encoded.join("/"))
}

/// The `href`s of a multistatus body, percent-decoded.
pub fn hrefs(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("href>") {
        let tag_start = rest[..at].rfind('<').unwrap_or(0);
        let after = &rest[at + "href>".len()..];
        if !rest[tag_start..].starts_with("</") {
            let text = &after[..after.find('<').unwrap_or(after.len())];
            found.push(
                percent_decode_str(text.trim())
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        rest = after;
    }
    found
}

/// A WebDAV client signed in as one account.
#[derive(Debug, Clone)]
pub struct Dav {
    pub addr: SocketAddr,
    authorization: String,
}

impl Dav {
    pub fn new(addr: SocketAddr, user: &str, password: &str) -> Dav {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Dav {
            addr,
            authorization: format!("Basic {token}"),
        }
    }

    /// The `Authorization` header value, for requests built by hand.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// Any request; `target` is sent exactly as given.
    pub fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut all = vec![("Authorization", self.authorization.as_str())];
        all.extend_from_slice(headers);
        request_raw(self.addr, method, target, &all, body)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> io::Result<Response> {
        self.raw("PUT", &encode_path(path), &[], body)
    }

    pub fn get(&self, path: &str) -> io::Result<Response> {
        self.raw("GET", &encode_path(path), &[], b"")
    }

    pub fn mkcol(&self, path: &str) -> io::Result<Response> {
        self.raw("MKCOL", &encode_path(path), &[], b"")
    }

    pub fn delete(&self, path: &str) -> io::Result<Response> {
        self.raw("DELETE", &encode_path(path), &[], b"")
    }

    /// PROPFIND for all properties at `depth` (`0` or `1`).
    pub fn propfind(&self, path: &str, depth: &str) -> io::Result<Response> {
        self.raw(
            "PROPFIND",
            &encode_path(path),
            &[("Depth", depth), ("Content-Type", "application/xml")],
            br#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
        )
    }

    /// The decoded hrefs a Depth 1 PROPFIND of folder `path` lists; panics unless it is 207.
    pub fn list(&self, path: &str) -> Vec<String> {
        let response = self
            .propfind(path, "1")
            .unwrap_or_else(|e| panic!("PROPFIND {path}: {e}"));
        assert_eq!(
            response.status,
            207,
            "PROPFIND {} Depth 1: expected 207\n{response}",
            encode_path(path)
        );
        let mut hrefs = hrefs(&response.text());
        hrefs.sort();
        hrefs
    }

    /// PUT that must answer 201 or 204.
    pub fn put_ok(&self, path: &str, body: &[u8]) {
        let response = self
            .put(path, body)
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        assert!(
            matches!(response.status, 201 | 204),
            "PUT {} ({} bytes): expected 201/204\n{response}",
            encode_path(path),
            body.len()
        );
    }

    /// MKCOL that must answer 201.
    pub fn mkcol_ok(&self, path: &str) {
        let response = self
            .mkcol(path)
            .unwrap_or_else(|e| panic!("MKCOL {path}: {e}"));
        assert_eq!(
            response.status,
            201,
            "MKCOL {}: expected 201\n{response}",
            encode_path(path)
        );
    }

    /// GET that must answer 200; returns the body.
    pub fn get_ok(&self, path: &str) -> Vec<u8> {
        let response = self.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(
            response.status,
            200,
            "GET {}: expected 200\n{response}",
            encode_path(path)
        );
        response.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_segments() {
        assert_eq!(
            encode_path("a b/été ☃"),
            "/dav/a%20b/%C3%A9t%C3%A9%20%E2%98%83"
        );
        assert_eq!(encode_path("x?#%&+"), "/dav/x%3F%23%25%26%2B");
    }

    #[test]
    fn finds_hrefs() {
        let body = "<D:multistatus><D:response><D:href>/dav/a%20b</D:href></D:response>\
                    <response><href>/dav/</href></response></D:multistatus>";
        assert_eq!(hrefs(body), vec!["/dav/a b", "/dav/"]);
    }
}
