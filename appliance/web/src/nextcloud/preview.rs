//! Previews for the Nextcloud apps, from the photo thumbnails the web page uses
//! (`percloud-thumbs`): `/index.php/core/preview?fileId=…&x=&y=` (by file id, as the phone apps
//! ask), `/core/preview.png?file=/path&x=&y=` and `/index.php/core/preview.png?…` (by path),
//! and the older `/index.php/apps/files/api/v1/thumbnail/<x>/<y>/<path>`.
//!
//! The answer is a JPEG whose longest side is 256 px when the client asks for that or less,
//! else 1024 px (the only sizes the cache keeps); `a`, `mode` and `forceIcon` are ignored (the
//! aspect ratio is always kept). A thumbnail not made yet is waited for, within the helper's
//! own time limit; whatever cannot be previewed (not an image, unreadable, no such file) is 404.

use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Method, Request, StatusCode};
use percloud_store::{Entry, StorePath, UserId};
use percloud_thumbs::ThumbOutcome;

use crate::api::content::{jpeg_response, thumbnail_source};
use crate::json::{ApiError, Query, ReqBody, Resp, blocking, store_path};
use crate::responses;
use crate::router::{App, AppInner, ConnInfo};

const BY_PATH: [&str; 4] = [
    "/index.php/core/preview",
    "/index.php/core/preview.png",
    "/core/preview",
    "/core/preview.png",
];
const THUMBNAIL_API: &str = "/index.php/apps/files/api/v1/thumbnail/";
/// Longest wait for a thumbnail being made (the helper is killed after 20 s).
const WAIT: Duration = Duration::from_secs(25);
/// Pause between looks at the cache while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);

pub(super) fn claims(path: &str) -> bool {
    BY_PATH.contains(&path) || path.starts_with(THUMBNAIL_API)
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let app = &app.inner;
    let (parts, _body) = req.into_parts();
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return responses::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let user = match app.auth.require_user(&parts.headers, conn.peer.ip()).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    match preview(app, user.id, &parts).await {
        Ok(response) => response,
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(detail = %error.message, "preview failed");
            }
            responses::text(error.status, &error.message)
        }
    }
}

/// What the request asks for: a file (by id or path) and the longest side wanted.
async fn preview(app: &AppInner, user: UserId, parts: &Parts) -> Result<Resp, ApiError> {
    let (target, longest) = requested(parts)?;
    let size = if longest <= 256 { 256 } else { 1024 };
    let store = app.store.clone();
    let (path, entry): (StorePath, Entry) = blocking(move || {
        let path = match target {
            Target::Id(id) => store.path_of(user, id).map_err(|_| no_preview())?,
            Target::Path(path) => path,
        };
        let entry = store.stat(user, &path).map_err(|_| no_preview())?;
        Ok((path, entry))
    })
    .await?;
    let hash = match entry.content_hash {
        Some(hash) if percloud_thumbs::is_thumbnailable(&entry.name) => hash,
        _ => return Err(no_preview()),
    };
    let thumbnailer = app.thumbnailer.as_ref().ok_or_else(no_preview)?;
    let deadline = Instant::now() + WAIT;
    loop {
        let open = thumbnail_source(app.store.clone(), user, path.clone());
        match thumbnailer.get(hash, size, open).await {
            ThumbOutcome::Ready(jpeg) => return Ok(jpeg_response(jpeg)),
            ThumbOutcome::Unsupported => return Err(no_preview()),
            ThumbOutcome::Pending if Instant::now() >= deadline => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the preview is still being made",
                ));
            }
            ThumbOutcome::Pending => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

enum Target {
    Id(u64),
    Path(StorePath),
}

/// The file and the longest side the request asks for (`x`, `y`; 256 when absent).
fn requested(parts: &Parts) -> Result<(Target, u32), ApiError> {
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix(THUMBNAIL_API) {
        // <x>/<y>/<path…>, the path percent-encoded like a URL path (`+` stays a plus).
        let mut pieces = rest.splitn(3, '/');
        let x = pieces.next().and_then(|v| v.parse().ok());
        let y = pieces.next().and_then(|v| v.parse().ok());
        let file = pieces.next().ok_or_else(no_preview)?;
        let file = percent_encoding::percent_decode_str(file)
            .decode_utf8()
            .map_err(|_| ApiError::bad_request("the path is not UTF-8"))?;
        let target = Target::Path(store_path(&format!("/{file}"))?);
        return Ok((target, longest(x, y)));
    }
    let query = Query::parse(parts.uri.query())?;
    let side = |name| query.get(name).and_then(|v| v.parse::<u32>().ok());
    let target = if let Some(id) = query.get("fileId") {
        Target::Id(id.parse().map_err(|_| no_preview())?)
    } else if let Some(file) = query.get("file") {
        Target::Path(store_path(file)?)
    } else {
        return Err(ApiError::bad_request("say which file: fileId= or file="));
    };
    Ok((target, longest(side("x"), side("y"))))
}

fn longest(x: Option<u32>, y: Option<u32>) -> u32 {
    match (x, y) {
        (None, None) => 256,
        (x, y) => x.unwrap_or(0).max(y.unwrap_or(0)),
    }
}

fn no_preview() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no preview for this file")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        Request::get(uri).body(()).expect("request").into_parts().0
    }

    #[test]
    fn requests_name_a_file_and_a_size() {
        let (target, side) =
            requested(&parts("/index.php/core/preview?fileId=42&x=64&y=32&a=1")).expect("by id");
        assert!(matches!(target, Target::Id(42)));
        assert_eq!(side, 64);
        let (target, side) =
            requested(&parts("/core/preview.png?file=/Photos/a+b%20c.jpg&x=1200")).expect("path");
        assert!(matches!(target, Target::Path(p) if p.to_string() == "/Photos/a+b c.jpg"));
        assert_eq!(side, 1200);
        let (target, side) = requested(&parts(
            "/index.php/apps/files/api/v1/thumbnail/512/512/Photos/x%20y.png",
        ))
        .expect("thumbnail api");
        assert!(matches!(target, Target::Path(p) if p.to_string() == "/Photos/x y.png"));
        assert_eq!(side, 512);
        assert!(requested(&parts("/core/preview.png?file=/../etc/passwd")).is_err());
        assert!(requested(&parts("/index.php/core/preview?x=1")).is_err());
    }
}
