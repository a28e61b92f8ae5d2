//! File content in and out, shared by the signed-in and the public routes: downloads with
//! safe headers, streamed uploads, thumbnails.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use percloud_store::{CommitOptions, CommitOutcome, Entry, FileReader, Store, StorePath, UserId};
use serde_json::json;
use tokio::sync::mpsc;

use crate::json::{ApiError, ApiResult, ReqBody, Resp, blocking, json};
use crate::router::AppInner;

/// Body chunks buffered between a connection and the thread writing to the store.
pub(crate) const CHUNKS_IN_FLIGHT: usize = 8;

/// A stored file's content must never run as part of the app: downloads are sandboxed and
/// only media and plain text are shown inline.
const FILE_CSP: &str =
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// Thumbnail edge lengths the pages ask for.
const THUMB_SIZES: [u32; 2] = [256, 1024];

/// The GET/HEAD answer for an opened file (ranges and validators as WebDAV does them), with
/// `Content-Disposition` (`attachment` when `download` or when the type is not safe inline).
pub(crate) fn file_answer(
    reader: FileReader,
    request: &HeaderMap,
    head: bool,
    download: bool,
) -> Resp {
    let name = reader.entry().name.clone();
    let mut response = percloud_dav::file_response(request, reader, head);
    let mime = percloud_dav::content_type(&name);
    let kind = if download || !inline_safe(mime) {
        "attachment"
    } else {
        "inline"
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&disposition(kind, &name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response
}

fn inline_safe(mime: &str) -> bool {
    (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
        || mime.starts_with("text/plain")
        || mime == "application/pdf"
}

/// `kind; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266).
pub(crate) fn disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, NON_ALPHANUMERIC)
    )
}

/// Opens `path` of `user` (a file) on a blocking thread.
pub(crate) async fn open(store: &Store, user: UserId, path: StorePath) -> ApiResult<FileReader> {
    let store = store.clone();
    blocking(move || Ok(store.open_file(user, &path)?)).await
}

/// How reading a request body into a store writer ended.
#[derive(Debug)]
pub(crate) enum Fed {
    /// The whole body went through.
    Complete,
    /// The writer stopped taking data (its own error says why).
    WriterStopped,
    /// The body broke (the client went away): what arrived was sent.
    Broken(String),
}

/// Streams `body`'s data frames into `tx` (bounded, so memory stays bounded), refusing more
/// than `limit` bytes.
pub(crate) async fn feed(
    mut body: ReqBody,
    tx: &mpsc::Sender<Bytes>,
    limit: Option<u64>,
) -> ApiResult<Fed> {
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(err) => return Ok(Fed::Broken(err.to_string())),
        };
        received += data.len() as u64;
        if limit.is_some_and(|n| received > n) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body longer than announced",
            ));
        }
        if tx.send(data).await.is_err() {
            return Ok(Fed::WriterStopped);
        }
    }
    Ok(Fed::Complete)
}

/// Streams `body` into a new version of `path` and commits it only when the whole body
/// arrived (a cut body leaves nothing behind).
pub(crate) async fn put_file(
    store: &Store,
    user: UserId,
    path: StorePath,
    body: ReqBody,
    expected: Option<u64>,
    options: CommitOptions,
) -> ApiResult<CommitOutcome> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let store = store.clone();
    let worker = tokio::task::spawn_blocking(move || -> ApiResult<CommitOutcome> {
        let mut upload = store.begin_upload(user, expected)?;
        while let Some(data) = rx.blocking_recv() {
            upload.write(&data)?;
        }
        // The channel closed: commit only if the request side said the body was complete.
        match done_rx.blocking_recv() {
            Ok(()) => Ok(upload.commit(&path, &options)?),
            Err(_) => Err(ApiError::bad_request("upload cut short")),
        }
    });
    let fed = feed(body, &tx, expected).await;
    drop(tx);
    let complete = match &fed {
        Ok(Fed::Complete) => {
            let _ = done_tx.send(());
            true
        }
        _ => {
            drop(done_tx);
            false
        }
    };
    let outcome = worker
        .await
        .map_err(|e| ApiError::internal("an upload task", e))?;
    match fed? {
        Fed::Broken(why) if !complete => Err(ApiError::bad_request(format!(
            "the upload broke off: {why}"
        ))),
        _ => outcome,
    }
}

/// `/api/thumb` and the public thumbnail: a JPEG, 202 while it is made, 415 for non-images.
pub(crate) async fn thumb(
    app: &AppInner,
    user: UserId,
    path: StorePath,
    size: Option<&str>,
) -> ApiResult {
    let size: u32 = size
        .and_then(|s| s.parse().ok())
        .filter(|s| THUMB_SIZES.contains(s))
        .ok_or_else(|| ApiError::bad_request("size must be 256 or 1024"))?;
    let store = app.store.clone();
    let stat_path = path.clone();
    let entry: Entry = blocking(move || Ok(store.stat(user, &stat_path)?)).await?;
    let hash = match entry.content_hash {
        Some(hash) if percloud_thumbs::is_thumbnailable(&entry.name) => hash,
        _ => return Err(not_an_image()),
    };
    let Some(thumbnailer) = &app.thumbnailer else {
        return Ok(pending());
    };
    let open = thumbnail_source(app.store.clone(), user, path);
    match thumbnailer.get(hash, size, open).await {
        percloud_thumbs::ThumbOutcome::Ready(jpeg) => Ok(jpeg_response(jpeg)),
        percloud_thumbs::ThumbOutcome::Pending => Ok(pending()),
        percloud_thumbs::ThumbOutcome::Unsupported => Err(not_an_image()),
    }
}

/// How the thumbnailer reads the file at `path` when it has no thumbnail of it yet.
pub(crate) fn thumbnail_source(
    store: Store,
    user: UserId,
    path: StorePath,
) -> impl FnOnce() -> std::io::Result<Box<dyn Read + Send>> + Send + 'static {
    move || {
        store
            .open_file(user, &path)
            .map(|reader| Box::new(reader) as Box<dyn Read + Send>)
            .map_err(std::io::Error::other)
    }
}

/// A thumbnail: a JPEG the browser may keep for a day.
pub(crate) fn jpeg_response(jpeg: Bytes) -> Resp {
    let mut response = http::Response::new(percloud_dav::full_body(jpeg));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    response
}

fn pending() -> Resp {
    json(StatusCode::ACCEPTED, &json!({"pending": true}))
}

fn not_an_image() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no thumbnail: not an image the box can read",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_are_safe_headers() {
        assert_eq!(
            disposition("attachment", "été \"x\".jpg"),
            "attachment; filename=\"_t_ _x_.jpg\"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22%2Ejpg"
        );
        assert!(HeaderValue::from_str(&disposition("inline", "a\r\nb")).is_ok());
    }

    #[test]
    fn only_media_is_inline() {
        assert!(inline_safe("image/jpeg"));
        assert!(inline_safe("video/mp4"));
        assert!(!inline_safe("image/svg+xml"));
        assert!(!inline_safe("text/html; charset=utf-8"));
        assert!(!inline_safe("application/octet-stream"));
    }
}
