//! HTTP conditional requests (RFC 9110 §13): If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since and If-Range, evaluated against the resource as it is now.

use http::{HeaderMap, StatusCode};
use percloud_store::Entry;

use crate::dates::whole_seconds;
use crate::headers::{EntityTag, EtagList, etag_list, http_date};
use crate::status::DavError;

/// What the preconditions say to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Proceed,
    /// 304 (GET and HEAD only).
    NotModified,
    /// 412.
    Failed,
}

/// Evaluates the preconditions in RFC 9110's order. `safe` is true for GET and HEAD;
/// `current` is the resource, `None` when it does not exist.
pub(crate) fn evaluate(headers: &HeaderMap, safe: bool, current: Option<&Entry>) -> Verdict {
    if let Some(list) = etag_list(headers, "if-match") {
        let ok = match (&list, current) {
            (_, None) => false,
            (EtagList::Any, Some(_)) => true,
            (EtagList::Tags(tags), Some(entry)) => tags.iter().any(|t| t.strong_eq(&entry.etag)),
        };
        if !ok {
            return Verdict::Failed;
        }
    } else if let (Some(since), Some(entry)) = (http_date(headers, "if-unmodified-since"), current)
        && whole_seconds(entry.mtime) > whole_seconds(since)
    {
        return Verdict::Failed;
    }
    let refused = || {
        if safe {
            Verdict::NotModified
        } else {
            Verdict::Failed
        }
    };
    if let Some(list) = etag_list(headers, "if-none-match") {
        let matched = match (&list, current) {
            (_, None) => false,
            (EtagList::Any, Some(_)) => true,
            (EtagList::Tags(tags), Some(entry)) => tags.iter().any(|t| t.weak_eq(&entry.etag)),
        };
        if matched {
            return refused();
        }
    } else if safe
        && let (Some(since), Some(entry)) = (http_date(headers, "if-modified-since"), current)
        && whole_seconds(entry.mtime) <= whole_seconds(since)
    {
        return Verdict::NotModified;
    }
    Verdict::Proceed
}

/// For state-changing methods: 412 unless the request's conditions hold for `current`.
pub(crate) fn require(headers: &HeaderMap, current: Option<&Entry>) -> Result<(), DavError> {
    match evaluate(headers, false, current) {
        Verdict::Proceed => Ok(()),
        _ => Err(DavError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition failed",
        )),
    }
}

/// Whether a `Range` may be honoured given `If-Range` (absent: yes).
pub(crate) fn if_range_allows(headers: &HeaderMap, entry: &Entry) -> bool {
    let Some(value) = headers.get("if-range").and_then(|v| v.to_str().ok()) else {
        return headers.get("if-range").is_none();
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return EntityTag::parse(value).is_some_and(|tag| tag.strong_eq(&entry.etag));
    }
    httpdate::parse_http_date(value)
        .is_ok_and(|date| whole_seconds(date) == whole_seconds(entry.mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use percloud_store::EntryKind;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry() -> Entry {
        Entry {
            id: 1,
            name: "f".into(),
            kind: EntryKind::File,
            size: 3,
            mtime: UNIX_EPOCH + Duration::from_secs(1_000_000),
            created: UNIX_EPOCH,
            etag: "abc".into(),
            content_hash: None,
            version: Some(1),
            checksum: None,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn if_match() {
        let e = entry();
        let ok = headers(&[("if-match", "\"abc\"")]);
        assert_eq!(evaluate(&ok, false, Some(&e)), Verdict::Proceed);
        let bad = headers(&[("if-match", "\"zzz\"")]);
        assert_eq!(evaluate(&bad, false, Some(&e)), Verdict::Failed);
        let any = headers(&[("if-match", "*")]);
        assert_eq!(evaluate(&any, false, None), Verdict::Failed);
        let weak = headers(&[("if-match", "W/\"abc\"")]);
        assert_eq!(evaluate(&weak, false, Some(&e)), Verdict::Failed);
    }

    #[test]
    fn if_none_match() {
        let e = entry();
        let h = headers(&[("if-none-match", "\"abc\"")]);
        assert_eq!(evaluate(&h, true, Some(&e)), Verdict::NotModified);
        assert_eq!(evaluate(&h, false, Some(&e)), Verdict::Failed);
        let any = headers(&[("if-none-match", "*")]);
        assert_eq!(evaluate(&any, false, None), Verdict::Proceed);
        assert_eq!(evaluate(&any, false, Some(&e)), Verdict::Failed);
    }

    #[test]
    fn dates() {
        let e = entry();
        let same = httpdate::fmt_http_date(e.mtime);
        let h = headers(&[("if-modified-since", &same)]);
        assert_eq!(evaluate(&h, true, Some(&e)), Verdict::NotModified);
        assert_eq!(evaluate(&h, false, Some(&e)), Verdict::Proceed);
        let old = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(10));
        let h = headers(&[("if-unmodified-since", &old)]);
        assert_eq!(evaluate(&h, false, Some(&e)), Verdict::Failed);
        let h = headers(&[("if-modified-since", &old)]);
        assert_eq!(evaluate(&h, true, Some(&e)), Verdict::Proceed);
    }

    #[test]
    fn if_range() {
        let e = entry();
        assert!(if_range_allows(&HeaderMap::new(), &e));
        assert!(if_range_allows(&headers(&[("if-range", "\"abc\"")]), &e));
        assert!(!if_range_allows(&headers(&[("if-range", "\"x\"")]), &e));
        let date = httpdate::fmt_http_date(e.mtime);
        assert!(if_range_allows(&headers(&[("if-range", &date)]), &e));
    }
}
