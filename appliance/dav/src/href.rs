//! Request paths and hrefs: strict percent-decoding of URLs into [`StorePath`]s under the mount
//! prefix, and percent-encoding of store paths back into hrefs.

use http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use percloud_store::{PathError, StorePath};

use crate::status::DavError;

/// Bytes left as they are in an href segment: RFC 3986 unreserved plus a few sub-delims that
/// are harmless in paths and in XML. Everything else (`#`, `?`, `%`, `&`, `+`, space, non-ASCII)
/// is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Why a URL path could not become a store path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HrefError {
    #[error("path is outside {prefix}")]
    OutsidePrefix { prefix: String },
    #[error("bad percent-escape in {segment:?}")]
    BadEscape { segment: String },
    #[error("path is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("unusable Destination or resource URL {0:?}")]
    BadUrl(String),
}

impl HrefError {
    /// The status for the request URI (outside the mount is 404, malformed 400).
    pub fn into_request_error(self) -> DavError {
        let status = match self {
            HrefError::OutsidePrefix { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        DavError::new(status, self.to_string())
    }

    /// The status for a Destination header (another server or mount is 502).
    pub fn into_destination_error(self) -> DavError {
        let status = match self {
            HrefError::OutsidePrefix { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        };
        DavError::new(status, format!("Destination: {self}"))
    }
}

/// Where a user's tree is mounted in URL space.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// Without a trailing slash; empty when mounted at `/`.
    prefix: String,
}

impl Mount {
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Mount {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The store path a request URI path (no query) names.
    pub fn resolve(&self, uri_path: &str) -> Result<StorePath, HrefError> {
        let rest = uri_path
            .strip_prefix(self.prefix.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .ok_or_else(|| HrefError::OutsidePrefix {
                prefix: self.prefix.clone(),
            })?;
        let mut segments = Vec::new();
        for raw in rest.split('/').filter(|s| !s.is_empty()) {
            segments.push(decode_segment(raw)?);
        }
        Ok(StorePath::from_segments(segments)?)
    }

    /// The store path an absolute URL or absolute path (Destination, If tags) names.
    pub fn resolve_url(&self, url: &str) -> Result<StorePath, HrefError> {
        self.resolve(url_path(url)?)
    }

    /// The href of `path`: an absolute, percent-encoded path; folders end with `/`.
    pub fn href(&self, path: &StorePath, is_dir: bool) -> String {
        // Sized for a path without escapes: a PROPFIND makes one href per entry.
        let mut href = String::with_capacity(self.prefix.len() + path.byte_len() + 1);
        href.push_str(&self.prefix);
        for segment in path.segments() {
            href.push('/');
            href.extend(utf8_percent_encode(segment, SEGMENT));
        }
        if is_dir || path.is_root() {
            href.push('/');
        }
        href
    }
}

/// The path part of an absolute URL (`http://host/a/b`) or an absolute path, without query or
/// fragment.
pub(crate) fn url_path(url: &str) -> Result<&str, HrefError> {
    let url = url.trim();
    let path = if url.starts_with('/') {
        url
    } else if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(HrefError::BadUrl(url.to_owned()));
        }
        match rest.find('/') {
            Some(at) => &rest[at..],
            None => "/",
        }
    } else {
        return Err(HrefError::BadUrl(url.to_owned()));
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Ok(&path[..end])
}

/// The path part of a `Destination` (an absolute URL or path), without query or fragment;
/// `None` when malformed.
pub fn destination_path(url: &str) -> Option<&str> {
    url_path(url).ok()
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`) and checks the result is UTF-8.
pub(crate) fn decode_segment(raw: &str) -> Result<String, HrefError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16)
                    .ok()
                    .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            let byte = hex.ok_or_else(|| HrefError::BadEscape {
                segment: raw.to_owned(),
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| HrefError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount() -> Mount {
        Mount::new("/dav")
    }

    #[test]
    fn decodes_strictly() {
        assert_eq!(decode_segment("a%20b+c").as_deref(), Ok("a b+c"));
        assert_eq!(decode_segment("%C3%A9t%c3%a9").as_deref(), Ok("été"));
        assert!(matches!(
            decode_segment("a%2"),
            Err(HrefError::BadEscape { .. })
        ));
        assert!(matches!(
            decode_segment("a%zz"),
            Err(HrefError::BadEscape { .. })
        ));
        assert!(matches!(
            decode_segment("a%+1"),
            Err(HrefError::BadEscape { .. })
        ));
        assert_eq!(decode_segment("%FF"), Err(HrefError::NotUtf8));
    }

    #[test]
    fn resolves_under_the_prefix() {
        let m = mount();
        assert!(m.resolve("/dav").expect("root").is_root());
        assert!(m.resolve("/dav/").expect("root").is_root());
        let p = m.resolve("/dav/a/b%20c/").expect("path");
        assert_eq!(p.segments(), ["a", "b c"]);
        assert!(matches!(
            m.resolve("/davx/a"),
            Err(HrefError::OutsidePrefix { .. })
        ));
        assert!(matches!(
            m.resolve("/other"),
            Err(HrefError::OutsidePrefix { .. })
        ));
    }

    #[test]
    fn refuses_hostile_paths() {
        let m = mount();
        for bad in [
            "/dav/a/%2e%2e/b",
            "/dav/..",
            "/dav/a%2Fb",
            "/dav/a%00b",
            "/dav/a%5Cb",
            "/dav/%0a",
        ] {
            assert!(
                matches!(m.resolve(bad), Err(HrefError::InvalidPath(_))),
                "{bad} should be refused"
            );
            assert_eq!(
                m.resolve(bad).expect_err("bad").into_request_error().status,
                StatusCode::BAD_REQUEST
            );
        }
        let long = format!("/dav/{}", "x".repeat(300));
        assert!(m.resolve(&long).is_err());
    }

    #[test]
    fn hrefs_round_trip() {
        let m = mount();
        let names = ["#1 100% ?.jpg", "été", "a+b&c", "日本", "x y", "tab;semi"];
        let path = StorePath::from_segments(names).expect("valid");
        let href = m.href(&path, false);
        assert!(!href.contains(' ') && !href.contains('#') && !href.contains('?'));
        assert!(!href.contains('&') && !href.contains('+'));
        assert_eq!(m.resolve(&href).expect("round trip"), path);
        assert_eq!(m.href(&StorePath::root(), true), "/dav/");
        let dir = StorePath::parse("d").expect("valid");
        assert_eq!(m.href(&dir, true), "/dav/d/");
        assert_eq!(Mount::new("").href(&dir, false), "/d");
    }

    #[test]
    fn parses_destination_urls() {
        let m = mount();
        let p = m
            .resolve_url("http://host:8080/dav/x%20y?q#f")
            .expect("url");
        assert_eq!(p.segments(), ["x y"]);
        assert_eq!(m.resolve_url("/dav/z").expect("path").segments(), ["z"]);
        assert!(m.resolve_url("https://host").is_err());
        assert!(matches!(m.resolve_url("dav/x"), Err(HrefError::BadUrl(_))));
        let other = m
            .resolve_url("http://host/elsewhere/x")
            .expect_err("outside");
        assert_eq!(
            other.into_destination_error().status,
            StatusCode::BAD_GATEWAY
        );
    }
}
