//! Security headers every response carries, merged with what a handler already set.

use http::{HeaderMap, HeaderValue, header};

/// No framing anywhere.
const FRAME_ANCESTORS: &str = "frame-ancestors 'none'";
/// One year, the usual HSTS lifetime; sent only with a publicly trusted certificate.
const HSTS: &str = "max-age=31536000";

/// Adds `nosniff`, `no-referrer` and `frame-ancestors 'none'` (appended to an existing
/// Content-Security-Policy that lacks it), and HSTS when `hsts` is true.
pub(crate) fn apply(headers: &mut HeaderMap, hsts: bool) {
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    let csp = match headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        None => Some(FRAME_ANCESTORS.to_owned()),
        Some(existing) if !existing.contains("frame-ancestors") => Some(format!(
            "{}; {FRAME_ANCESTORS}",
            existing.trim_end_matches([';', ' '])
        )),
        Some(_) => None,
    };
    if let Some(value) = csp.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_policy_to_a_bare_response() {
        let mut headers = HeaderMap::new();
        apply(&mut headers, false);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'none'"
        );
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }

    #[test]
    fn merges_with_an_existing_policy_and_keeps_one_that_has_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none';"),
        );
        apply(&mut headers, true);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "sandbox; default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(
            headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000"
        );

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        );
        apply(&mut headers, false);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; frame-ancestors 'none'"
        );
    }
}
