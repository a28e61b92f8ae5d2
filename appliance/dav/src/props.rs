//! Properties: the live ones we compute from store entries and locks, rendering of property
//! elements, and the 207 Multi-Status body.

use std::time::Instant;

use http::{Response, StatusCode, header};
use percloud_store::{Entry, PropName, StorePath};

use crate::body::{DavBody, full_body};
use crate::dates::{rfc1123_into, rfc3339_into};
use crate::href::Mount;
use crate::locks::Lock;
use crate::status::status_line;
use crate::xml::{DAV, escape_attr, escape_into, escape_text};

/// A live property: one we compute, all in the DAV: namespace. A request's names are matched
/// to these once, not once per entry listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveProp {
    ResourceType,
    ContentLength,
    LastModified,
    CreationDate,
    Etag,
    ContentType,
    DisplayName,
    SupportedLock,
    LockDiscovery,
}

impl LiveProp {
    /// All of them, in the order `allprop` lists them.
    pub const ALL: [LiveProp; 9] = [
        LiveProp::ResourceType,
        LiveProp::ContentLength,
        LiveProp::LastModified,
        LiveProp::CreationDate,
        LiveProp::Etag,
        LiveProp::ContentType,
        LiveProp::DisplayName,
        LiveProp::SupportedLock,
        LiveProp::LockDiscovery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LiveProp::ResourceType => "resourcetype",
            LiveProp::ContentLength => "getcontentlength",
            LiveProp::LastModified => "getlastmodified",
            LiveProp::CreationDate => "creationdate",
            LiveProp::Etag => "getetag",
            LiveProp::ContentType => "getcontenttype",
            LiveProp::DisplayName => "displayname",
            LiveProp::SupportedLock => "supportedlock",
            LiveProp::LockDiscovery => "lockdiscovery",
        }
    }

    /// The live property called `name`, if it is one.
    pub fn of(name: &PropName) -> Option<LiveProp> {
        if name.namespace != DAV {
            return None;
        }
        LiveProp::ALL.into_iter().find(|p| p.name() == name.name)
    }

    /// Whether it has a value for `entry` (folders have no length or type).
    fn applies_to(self, entry: &Entry) -> bool {
        !(entry.is_dir() && matches!(self, LiveProp::ContentLength | LiveProp::ContentType))
    }
}

/// Whether `name` is one of our live (hence protected) properties.
pub(crate) fn is_live(name: &PropName) -> bool {
    LiveProp::of(name).is_some()
}

/// A `DAV:` property name (tests build requests with it).
#[cfg(test)]
pub(crate) fn dav(name: &str) -> PropName {
    PropName {
        namespace: DAV.to_owned(),
        name: name.to_owned(),
    }
}

/// `<name>inner</name>` in the right namespace; an empty element when `inner` is `None`.
pub(crate) fn prop_element(name: &PropName, inner: Option<&str>) -> String {
    let (open, tag) = if name.namespace == DAV {
        (format!("D:{}", name.name), format!("D:{}", name.name))
    } else if name.namespace.is_empty() {
        (format!("{} xmlns=\"\"", name.name), name.name.clone())
    } else {
        (
            format!(
                "P:{} xmlns:P=\"{}\"",
                name.name,
                escape_attr(&name.namespace)
            ),
            format!("P:{}", name.name),
        )
    };
    match inner {
        Some(inner) if !inner.is_empty() => format!("<{open}>{inner}</{tag}>"),
        _ => format!("<{open}/>"),
    }
}

/// The live properties of one resource, written straight into a response body.
pub(crate) struct Live<'a> {
    pub path: &'a StorePath,
    pub entry: &'a Entry,
    /// The locks covering `path`.
    pub locks: &'a [Lock],
    pub mount: &'a Mount,
}

impl Live<'_> {
    /// Appends the element of live property `prop` (`<D:name>value</D:name>`, or
    /// `<D:name/>` when the value is empty); `false`, writing nothing, when it does not apply
    /// (content length of a folder).
    pub fn write(&self, out: &mut String, prop: LiveProp) -> bool {
        let entry = self.entry;
        if !prop.applies_to(entry) {
            return false;
        }
        let name = prop.name();
        out.push_str("<D:");
        out.push_str(name);
        out.push('>');
        let value_at = out.len();
        match prop {
            LiveProp::ResourceType => {
                if entry.is_dir() {
                    out.push_str("<D:collection/>");
                }
            }
            LiveProp::ContentLength => {
                out.push_str(itoa::Buffer::new().format(entry.size));
            }
            LiveProp::LastModified => rfc1123_into(out, entry.mtime),
            LiveProp::CreationDate => rfc3339_into(out, entry.created),
            LiveProp::Etag => {
                out.push('"');
                escape_into(out, &entry.etag);
                out.push('"');
            }
            LiveProp::ContentType => out.push_str(content_type(&entry.name)),
            LiveProp::DisplayName => escape_into(out, &entry.name),
            LiveProp::SupportedLock => out.push_str(SUPPORTED_LOCK),
            // A lock rooted above this resource is on a collection.
            LiveProp::LockDiscovery => {
                for l in self.locks {
                    let root_is_dir = l.root != *self.path || entry.is_dir();
                    out.push_str(&activelock(l, root_is_dir, self.mount));
                }
            }
        }
        if out.len() == value_at {
            out.truncate(value_at - 1);
            out.push_str("/>");
        } else {
            out.push_str("</D:");
            out.push_str(name);
            out.push('>');
        }
        true
    }
}

/// The live properties that apply to `entry`.
pub(crate) fn live_props(entry: &Entry) -> impl Iterator<Item = LiveProp> + '_ {
    LiveProp::ALL.into_iter().filter(|p| p.applies_to(entry))
}

const SUPPORTED_LOCK: &str = "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>\
    <D:locktype><D:write/></D:locktype></D:lockentry>\
    <D:lockentry><D:lockscope><D:shared/></D:lockscope>\
    <D:locktype><D:write/></D:locktype></D:lockentry>";

/// One `DAV:activelock` element; `root_is_dir` gives the lock root's href its trailing slash.
pub(crate) fn activelock(lock: &Lock, root_is_dir: bool, mount: &Mount) -> String {
    // Rounded up, so a fresh lock reports the timeout it was granted.
    let left = lock.expires.saturating_duration_since(Instant::now());
    let remaining = (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1);
    let owner = lock
        .owner
        .as_deref()
        .map(|o| format!("<D:owner>{o}</D:owner>"))
        .unwrap_or_default();
    format!(
        "<D:activelock><D:locktype><D:write/></D:locktype>\
         <D:lockscope><D:{scope}/></D:lockscope><D:depth>{depth}</D:depth>{owner}\
         <D:timeout>Second-{remaining}</D:timeout>\
         <D:locktoken><D:href>{token}</D:href></D:locktoken>\
         <D:lockroot><D:href>{root}</D:href></D:lockroot></D:activelock>",
        scope = if lock.shared { "shared" } else { "exclusive" },
        depth = if lock.deep { "infinity" } else { "0" },
        token = escape_text(&lock.token),
        root = escape_text(&mount.href(&lock.root, root_is_dir)),
    )
}

/// A Content-Type guessed from the file name's extension.
pub fn content_type(name: &str) -> &'static str {
    // Lowered on the stack: no extension we know is longer than four letters.
    let mut lower = [0u8; 4];
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) if ext.len() <= lower.len() => {
            let lower = &mut lower[..ext.len()];
            lower.copy_from_slice(ext.as_bytes());
            lower.make_ascii_lowercase();
            &*lower
        }
        _ => &[],
    };
    match ext {
        b"txt" | b"md" | b"log" | b"csv" => "text/plain; charset=utf-8",
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css",
        b"js" => "text/javascript",
        b"json" => "application/json",
        b"xml" => "application/xml",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"png" => "image/png",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"svg" => "image/svg+xml",
        b"heic" => "image/heic",
        b"mp3" => "audio/mpeg",
        b"ogg" => "audio/ogg",
        b"flac" => "audio/flac",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mov" => "video/quicktime",
        b"doc" => "application/msword",
        b"docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        b"odt" => "application/vnd.oasis.opendocument.text",
        _ => "application/octet-stream",
    }
}

/// Builds a `DAV:multistatus` document.
#[derive(Debug)]
pub(crate) struct MultiStatus {
    body: String,
    /// Where the current response's 200 propstat starts.
    found_at: usize,
}

/// The `oc:` and `nc:` prefixes are declared once here for `crate::ocprops`.
const MULTISTATUS_START: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus \
    xmlns:D=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">";
const FOUND_START: &str = "<D:propstat><D:prop>";
const FOUND_END: &str = "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>";

impl MultiStatus {
    pub fn new() -> Self {
        MultiStatus {
            body: MULTISTATUS_START.to_owned(),
            found_at: 0,
        }
    }

    /// A document with room for `bytes` of responses.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut body = String::with_capacity(MULTISTATUS_START.len() + 64 + bytes);
        body.push_str(MULTISTATUS_START);
        MultiStatus { body, found_at: 0 }
    }

    /// Starts a response and its 200 propstat: the caller appends property elements to the
    /// returned body, then calls [`MultiStatus::end_found`], any [`MultiStatus::propstat`]
    /// and [`MultiStatus::end_response`].
    pub fn begin_response(&mut self, href: &str) -> &mut String {
        self.body.push_str("<D:response><D:href>");
        escape_into(&mut self.body, href);
        self.body.push_str("</D:href>");
        self.found_at = self.body.len();
        self.body.push_str(FOUND_START);
        &mut self.body
    }

    /// Closes the 200 propstat, or drops it when no property was written.
    pub fn end_found(&mut self) {
        if self.body.len() == self.found_at + FOUND_START.len() {
            self.body.truncate(self.found_at);
        } else {
            self.body.push_str(FOUND_END);
        }
    }

    /// One propstat of rendered property elements (none: nothing).
    pub fn propstat(&mut self, status: StatusCode, props: &[String]) {
        if props.is_empty() {
            return;
        }
        self.body.push_str("<D:propstat><D:prop>");
        for prop in props {
            self.body.push_str(prop);
        }
        self.body.push_str("</D:prop><D:status>");
        self.body.push_str(&status_line(status));
        self.body.push_str("</D:status></D:propstat>");
    }

    pub fn end_response(&mut self) {
        self.body.push_str("</D:response>\n");
    }

    /// A response with one propstat per non-empty group of rendered property elements.
    pub fn propstats(&mut self, href: &str, groups: &[(StatusCode, Vec<String>)]) {
        self.body.push_str(&format!(
            "<D:response><D:href>{}</D:href>",
            escape_text(href)
        ));
        for (status, props) in groups.iter().filter(|(_, p)| !p.is_empty()) {
            self.body.push_str("<D:propstat><D:prop>");
            for prop in props {
                self.body.push_str(prop);
            }
            self.body.push_str(&format!(
                "</D:prop><D:status>{}</D:status></D:propstat>",
                status_line(*status)
            ));
        }
        self.body.push_str("</D:response>\n");
    }

    /// How many bytes have been written and not yet taken.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Takes what has been written so far, to send it: call between responses.
    pub fn take_written(&mut self) -> String {
        let room = self.body.capacity();
        std::mem::replace(&mut self.body, String::with_capacity(room))
    }

    /// Closes the document: the rest of its text.
    pub fn finish(mut self) -> String {
        self.body.push_str("</D:multistatus>\n");
        self.body
    }

    pub fn into_response(self) -> Response<DavBody> {
        multistatus_response(full_body(self.finish()))
    }
}

/// A 207 Multi-Status response with `body`.
pub(crate) fn multistatus_response(body: DavBody) -> Response<DavBody> {
    xml_body_response(StatusCode::MULTI_STATUS, body)
}

/// A response with an XML body.
pub(crate) fn xml_response(status: StatusCode, body: String) -> Response<DavBody> {
    xml_body_response(status, full_body(body))
}

fn xml_body_response(status: StatusCode, body: DavBody) -> Response<DavBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_property_elements() {
        assert_eq!(
            prop_element(&dav("getetag"), Some("\"x\"")),
            "<D:getetag>\"x\"</D:getetag>"
        );
        let dead = PropName {
            namespace: "urn:a&b".into(),
            name: "p".into(),
        };
        assert_eq!(prop_element(&dead, None), "<P:p xmlns:P=\"urn:a&amp;b\"/>");
        let nons = PropName {
            namespace: String::new(),
            name: "q".into(),
        };
        assert_eq!(prop_element(&nons, Some("v")), "<q xmlns=\"\">v</q>");
        assert!(is_live(&dav("lockdiscovery")) && !is_live(&dav("foo")));
    }

    #[test]
    fn guesses_content_types() {
        assert_eq!(content_type("a.JPG"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("Report.DocX"), content_type("report.docx"));
        assert_eq!(content_type("archive.tar.gz"), "application/gzip");
        assert_eq!(content_type("long.extension"), "application/octet-stream");
        assert_eq!(content_type("dot."), "application/octet-stream");
    }
}
