//! Small request headers: Depth, Overwrite, Timeout, X-OC-Mtime, and entity-tag lists.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::status::DavError;

/// The `Depth` header (RFC 4918 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    Zero,
    One,
    Infinity,
}

/// Parses `Depth`; `None` when absent (each method has its own default).
pub(crate) fn depth(headers: &HeaderMap) -> Result<Option<Depth>, DavError> {
    let Some(value) = headers.get("depth") else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("").trim();
    match value {
        "0" => Ok(Some(Depth::Zero)),
        "1" => Ok(Some(Depth::One)),
        v if v.eq_ignore_ascii_case("infinity") => Ok(Some(Depth::Infinity)),
        _ => Err(DavError::bad_request(format!("invalid Depth {value:?}"))),
    }
}

/// Parses `Overwrite` (RFC 4918 §10.6): `T` (the default) or `F`.
pub(crate) fn overwrite(headers: &HeaderMap) -> Result<bool, DavError> {
    let Some(value) = headers.get("overwrite") else {
        return Ok(true);
    };
    match value.to_str().unwrap_or("").trim() {
        v if v.eq_ignore_ascii_case("t") => Ok(true),
        v if v.eq_ignore_ascii_case("f") => Ok(false),
        v => Err(DavError::bad_request(format!("invalid Overwrite {v:?}"))),
    }
}

/// Longest lock we grant; clients asking for more (or `Infinite`) get this.
pub(crate) const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Parses `Timeout` (RFC 4918 §10.7): the first usable of `Second-N` / `Infinite`, capped at
/// [`MAX_LOCK_TIMEOUT`]; absent or unusable gives the cap.
pub(crate) fn timeout(headers: &HeaderMap) -> Duration {
    let value = headers
        .get("timeout")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for item in value.split(',').map(str::trim) {
        if item.eq_ignore_ascii_case("infinite") {
            return MAX_LOCK_TIMEOUT;
        }
        let seconds = item
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("second-"))
            .and_then(|_| item[7..].parse::<u64>().ok());
        if let Some(seconds) = seconds {
            return Duration::from_secs(seconds.max(1)).min(MAX_LOCK_TIMEOUT);
        }
    }
    MAX_LOCK_TIMEOUT
}

/// `X-OC-Mtime: <unix seconds>` as rclone and Nextcloud clients send it; fractions are
/// dropped, garbage is ignored.
pub fn oc_mtime(headers: &HeaderMap) -> Option<SystemTime> {
    unix_mtime(headers.get("x-oc-mtime")?.to_str().ok()?)
}

/// A modification time in unix seconds as the clients send it (`X-OC-Mtime`, and the
/// Nextcloud bulk upload's `X-File-Mtime`); fractions are dropped, garbage is `None`.
pub fn unix_mtime(value: &str) -> Option<SystemTime> {
    let whole = value.trim().split('.').next()?;
    let seconds: u64 = whole.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// An entity tag from a header: its opaque part (no quotes) and whether it is weak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityTag {
    pub weak: bool,
    pub opaque: String,
}

impl EntityTag {
    /// Parses one `"x"`, `W/"x"`; an unquoted tag is accepted as is (lenient clients).
    pub fn parse(text: &str) -> Option<EntityTag> {
        let text = text.trim();
        let (weak, rest) = match text.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let opaque = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(rest);
        if opaque.is_empty() || opaque.contains('"') {
            return None;
        }
        Some(EntityTag {
            weak,
            opaque: opaque.to_owned(),
        })
    }

    /// Strong comparison against a resource's (strong, unquoted) etag.
    pub fn strong_eq(&self, current: &str) -> bool {
        !self.weak && self.opaque == current
    }

    pub fn weak_eq(&self, current: &str) -> bool {
        self.opaque == current
    }
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EtagList {
    Any,
    Tags(Vec<EntityTag>),
}

/// Parses an entity-tag list header; `None` when absent.
pub(crate) fn etag_list(headers: &HeaderMap, name: &str) -> Option<EtagList> {
    let mut tags = Vec::new();
    let mut any = false;
    let mut present = false;
    for value in headers.get_all(name) {
        present = true;
        let value = value.to_str().unwrap_or("");
        for item in split_quoted(value) {
            if item == "*" {
                any = true;
            } else if let Some(tag) = EntityTag::parse(item) {
                tags.push(tag);
            }
        }
    }
    if !present {
        None
    } else if any {
        Some(EtagList::Any)
    } else {
        Some(EtagList::Tags(tags))
    }
}

/// Splits on commas outside double quotes, trimming items and dropping empty ones.
fn split_quoted(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items.retain(|s| !s.is_empty());
    items
}

/// An HTTP date header, `None` when absent or unparsable (which RFC 7232 says to ignore).
pub(crate) fn http_date(headers: &HeaderMap, name: &str) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn parses_depth() {
        assert_eq!(depth(&HeaderMap::new()).expect("absent"), None);
        assert_eq!(depth(&with("depth", "0")).expect("0"), Some(Depth::Zero));
        assert_eq!(depth(&with("depth", "1")).expect("1"), Some(Depth::One));
        assert_eq!(
            depth(&with("depth", "Infinity")).expect("inf"),
            Some(Depth::Infinity)
        );
        assert!(depth(&with("depth", "2")).is_err());
        assert!(depth(&with("depth", "")).is_err());
    }

    #[test]
    fn parses_overwrite() {
        assert!(overwrite(&HeaderMap::new()).expect("default"));
        assert!(!overwrite(&with("overwrite", "F")).expect("F"));
        assert!(overwrite(&with("overwrite", "t")).expect("t"));
        assert!(overwrite(&with("overwrite", "yes")).is_err());
    }

    #[test]
    fn parses_timeout() {
        assert_eq!(
            timeout(&with("timeout", "Second-60")),
            Duration::from_secs(60)
        );
        assert_eq!(
            timeout(&with("timeout", "Infinite, Second-60")),
            MAX_LOCK_TIMEOUT
        );
        assert_eq!(
            timeout(&with("timeout", "Second-999999999999")),
            MAX_LOCK_TIMEOUT
        );
        assert_eq!(
            timeout(&with("timeout", "bogus, second-10")),
            Duration::from_secs(10)
        );
        assert_eq!(timeout(&with("timeout", "Second-")), MAX_LOCK_TIMEOUT);
        assert_eq!(timeout(&HeaderMap::new()), MAX_LOCK_TIMEOUT);
    }

    #[test]
    fn parses_oc_mtime() {
        let t = oc_mtime(&with("x-oc-mtime", "1700000000")).expect("mtime");
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(oc_mtime(&with("x-oc-mtime", "1700000000.5")).is_some());
        assert!(oc_mtime(&with("x-oc-mtime", "soon")).is_none());
        assert!(oc_mtime(&with("x-oc-mtime", "-5")).is_none());
    }

    #[test]
    fn parses_etag_lists() {
        let list = etag_list(&with("if-match", "\"a,b\", W/\"c\" , d"), "if-match");
        let Some(EtagList::Tags(tags)) = list else {
            panic!("expected tags, got {list:?}");
        };
        assert_eq!(tags.len(), 3);
        assert!(tags[0].strong_eq("a,b"));
        assert!(!tags[1].strong_eq("c") && tags[1].weak_eq("c"));
        assert!(tags[2].strong_eq("d"));
        assert_eq!(
            etag_list(&with("if-match", "*"), "if-match"),
            Some(EtagList::Any)
        );
        assert_eq!(etag_list(&HeaderMap::new(), "if-match"), None);
    }
}
