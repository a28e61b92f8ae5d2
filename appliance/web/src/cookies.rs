//! Reading and setting the cookies this server uses.

use http::{HeaderMap, HeaderValue, header};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "percloud_session";

/// The value of cookie `name` from the request's `Cookie` headers.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for `name=value`: HttpOnly, SameSite=Strict, Path=/, Secure under TLS;
/// `max_age` seconds when given (0 clears it), else it lasts the browser session.
pub(crate) fn set(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_among_many() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; percloud_session=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(get(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(get(&headers, "b"), Some("2"));
        assert_eq!(get(&headers, "percloud"), None);
    }

    #[test]
    fn sets_strict_cookies() {
        let v = set(SESSION_COOKIE, "t", Some(60), true);
        assert_eq!(
            v,
            "percloud_session=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
        assert!(
            !set("x", "y", None, false)
                .to_str()
                .unwrap_or("")
                .contains("Secure")
        );
    }
}
