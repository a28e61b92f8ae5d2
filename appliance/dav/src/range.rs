//! The `Range` request header (RFC 9110 §14.2), single byte ranges only.

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range (absent, malformed, several ranges): send the whole body with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// Nothing of the representation matches: 416.
    Unsatisfiable,
}

/// Interprets `Range` against a body of `len` bytes. Malformed headers are ignored, as RFC 9110
/// allows; several ranges are answered with the full body (also allowed).
pub(crate) fn parse(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.map(str::trim).and_then(|h| h.strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = number(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.map_or(len - 1, |end| end.min(len - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn parses_single_ranges() {
        assert_eq!(parse(Some("bytes=0-4"), 10), Partial { start: 0, end: 4 });
        assert_eq!(parse(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=8-100"), 10), Partial { start: 8, end: 9 });
        assert_eq!(parse(Some(" bytes=1-1 "), 10), Partial { start: 1, end: 1 });
    }

    #[test]
    fn refuses_unsatisfiable() {
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn ignores_what_it_does_not_serve() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse(Some("items=0-1"), 10), Full);
        assert_eq!(parse(Some("bytes=5-1"), 10), Full);
        assert_eq!(parse(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse(Some("bytes=-"), 10), Full);
        assert_eq!(parse(Some("bytes=+1-2"), 10), Full);
        assert_eq!(parse(Some("bytes=99999999999999999999999-"), 10), Full);
    }
}
