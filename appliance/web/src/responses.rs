//! Small builders for the responses the front door makes itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use percloud_dav::DavBody;

pub(crate) fn body(bytes: impl Into<Bytes>) -> DavBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn text(status: StatusCode, message: &str) -> Response<DavBody> {
    let mut response = Response::new(body(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn unauthorized() -> Response<DavBody> {
    let mut response = text(StatusCode::UNAUTHORIZED, "sign-in required");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"percloud\", charset=\"UTF-8\""),
    );
    response
}

pub(crate) fn too_many_attempts(retry_after_secs: u64) -> Response<DavBody> {
    let mut response = text(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed sign-ins from this address; wait and try again",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}

pub(crate) fn redirect(location: &str) -> Response<DavBody> {
    let mut response = text(StatusCode::PERMANENT_REDIRECT, "use HTTPS");
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "bad Host header"),
    }
}
