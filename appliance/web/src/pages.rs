//! The web pages' static side: the app shell at its routes, the public share page, the
//! embedded assets (from `percloud-ui`) and the box's CA certificate.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use percloud_dav::{DavBody, full_body, status_response};

use crate::router::AppInner;

/// Routes the single-page app answers itself.
const APP_ROUTES: [&str; 5] = ["/", "/admin", "/login", "/claim", "/settings"];

/// Pages may load only their own scripts and styles, never be framed, and never send the
/// share token in a `Referer`.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
     style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The answer for a GET or HEAD outside `/api/` and `/dav/`, or `None` (404).
pub(crate) fn serve(app: &AppInner, path: &str, headers: &HeaderMap) -> Option<Response<DavBody>> {
    if APP_ROUTES.contains(&path) {
        return asset("index.html", headers);
    }
    if let Some(token) = path.strip_prefix("/s/") {
        return (!token.is_empty() && !token.contains('/'))
            .then(|| asset("share.html", headers))
            .flatten();
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        return asset(name, headers);
    }
    if path == "/ca.pem" {
        return ca_pem(app);
    }
    None
}

fn asset(name: &str, request: &HeaderMap) -> Option<Response<DavBody>> {
    let asset = percloud_ui::asset(name)?;
    let etag = format!("\"{}\"", &blake3::hash(asset.bytes).to_hex().as_str()[..32]);
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if unchanged {
        status_response(StatusCode::NOT_MODIFIED)
    } else {
        let mut response = Response::new(full_body(asset.bytes));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    // Names carry no hash: revalidate every time (a 304 costs one round trip on the LAN).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    Some(response)
}

/// Headers pages and assets carry on top of those every response gets (`headers::apply`).
pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn ca_pem(app: &AppInner) -> Option<Response<DavBody>> {
    if app.tls.ca_pem.is_empty() {
        return None;
    }
    let mut response = Response::new(full_body(app.tls.ca_pem.clone()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-x509-ca-cert"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"percloud-ca.pem\""),
    );
    Some(response)
}
