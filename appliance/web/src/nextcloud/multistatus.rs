//! 207 Multi-Status answers of the Nextcloud DAV spaces that are not a file tree (chunked
//! uploads, trash, versions): every resource with all the properties it has, in the
//! `d:`/`oc:`/`nc:` namespaces. The file tree itself is `percloud-dav`'s.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::json::Resp;

/// Bytes left as they are in an href segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `segment` percent-encoded for an href.
pub(super) fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// One property: its qualified name (`d:getetag`) and its XML content, already escaped.
pub(super) type Prop = (&'static str, String);

#[derive(Debug)]
pub(super) struct Listing {
    body: String,
}

impl Listing {
    pub fn new() -> Self {
        Listing {
            body: "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:multistatus xmlns:d=\"DAV:\" \
                   xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">"
                .to_owned(),
        }
    }

    /// A resource at `href` (already encoded) with `props`.
    pub fn add(&mut self, href: &str, props: &[Prop]) {
        let _ = write!(
            self.body,
            "<d:response><d:href>{}</d:href><d:propstat><d:prop>",
            escape(href)
        );
        for (name, value) in props {
            if value.is_empty() {
                let _ = write!(self.body, "<{name}/>");
            } else {
                let _ = write!(self.body, "<{name}>{value}</{name}>");
            }
        }
        self.body
            .push_str("</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>\n");
    }

    pub fn into_response(mut self) -> Resp {
        self.body.push_str("</d:multistatus>\n");
        let mut response = Response::new(percloud_dav::full_body(self.body));
        *response.status_mut() = StatusCode::MULTI_STATUS;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        response
    }
}

/// Text escaped for XML content.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Appends `text` escaped for XML content (the 207 answers here and OCS's XML format).
pub(super) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

/// `getlastmodified`'s value.
pub(super) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t.max(UNIX_EPOCH))
}

/// `d:resourcetype` of a folder.
pub(super) fn collection() -> Prop {
    ("d:resourcetype", "<d:collection/>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_escapes() {
        assert_eq!(encode("a b+c&d#%é"), "a%20b%2Bc%26d%23%25%C3%A9");
        let mut l = Listing::new();
        l.add("/x/a&b", &[("d:getetag", "\"1\"".into()), collection()]);
        let body = l.body;
        assert!(body.contains("<d:href>/x/a&amp;b</d:href>"));
        assert!(body.contains("<d:resourcetype><d:collection/></d:resourcetype>"));
    }
}
