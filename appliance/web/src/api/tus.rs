//! Resumable uploads: tus 1.0 core with the creation, termination and expiration extensions,
//! over the store's staged uploads.
//!
//! The target path and mtime travel in the staged upload's label (JSON), so an upload
//! survives restarts. PATCH bodies stream through a bounded channel into a `StagedWriter` on
//! a blocking thread; whatever arrived before a connection broke is made durable
//! (`finish`), so the client resumes from `HEAD`'s offset. The thread also commits the file
//! when the offset reaches the length, so a client leaving right then loses nothing.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use percloud_store::{CommitOptions, Entry, StagedInfo, Store, StorePath, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::content::{CHUNKS_IN_FLIGHT, Fed, feed};
use super::{Ctx, parse_id};
use crate::json::{
    ApiError, ApiResult, ReqBody, Resp, blocking, from_unix, no_content, store_path,
};
use crate::router::AppInner;

/// Largest upload accepted (1 TiB): more than any disk the box has.
pub(crate) const MAX_SIZE: u64 = 1 << 40;
/// Unfinished uploads expire this long after their last PATCH.
pub const EXPIRY: Duration = Duration::from_secs(24 * 3600);
const VERSION: &str = "1.0.0";

/// What the staged upload's label holds.
#[derive(Serialize, Deserialize)]
struct Label {
    v: u8,
    path: String,
    mtime: Option<u64>,
}

/// `OPTIONS /api/tus/`: what this server speaks.
pub(crate) fn options() -> Resp {
    let mut response = no_content();
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(VERSION));
    headers.insert("tus-version", HeaderValue::from_static(VERSION));
    headers.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    headers.insert("tus-max-size", HeaderValue::from(MAX_SIZE));
    response
}

pub(crate) async fn create(app: &AppInner, ctx: &Ctx, headers: &HeaderMap) -> ApiResult {
    check_version(headers)?;
    let length = number_header(headers, "upload-length")?.ok_or_else(|| {
        ApiError::bad_request("Upload-Length is required (deferred length is not supported)")
    })?;
    if length > MAX_SIZE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload too large",
        ));
    }
    let metadata = metadata(headers)?;
    let path_text = metadata
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| ApiError::bad_request("Upload-Metadata must name the target path"))?;
    let path = store_path(&path_text)?;
    let parent = path
        .parent()
        .ok_or_else(|| ApiError::bad_request("cannot upload to the root"))?;
    let mtime = match metadata.iter().find(|(k, _)| k == "mtime") {
        Some((_, v)) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("mtime must be Unix seconds"))?,
        ),
        None => None,
    };
    let label = serde_json::to_string(&Label {
        v: 1,
        path: path.to_string(),
        mtime,
    })
    .map_err(|e| ApiError::internal("encoding the upload label", e))?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let (info, committed) = blocking(move || {
        let folder = store.stat(user, &parent)?;
        if !folder.is_dir() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the target's folder is not a folder",
            ));
        }
        let info = store.create_staged(user, Some(length), &label)?;
        // An empty file is complete at once.
        let committed = if length == 0 {
            Some(commit(&store, user, &info)?)
        } else {
            None
        };
        Ok((info, committed))
    })
    .await
    .map_err(|e| match e.status {
        // The folder is missing: tus says 409 here, whatever the store calls it.
        StatusCode::NOT_FOUND => {
            ApiError::new(StatusCode::CONFLICT, "the target's folder does not exist")
        }
        _ => e,
    })?;
    let mut response = no_content();
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/tus/{}", info.id)) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert("upload-offset", HeaderValue::from(0u64));
    answer_headers(headers, &info, committed.as_ref());
    Ok(response)
}

pub(crate) async fn head(app: &AppInner, ctx: &Ctx, headers: &HeaderMap, id: &str) -> ApiResult {
    check_version(headers)?;
    let id = parse_id(id)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let info = blocking(move || Ok(store.staged(user, id)?)).await?;
    let mut response = no_content();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(info.offset));
    if let Some(length) = info.length {
        headers.insert("upload-length", HeaderValue::from(length));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer_headers(headers, &info, None);
    Ok(response)
}

pub(crate) async fn patch(
    app: &AppInner,
    ctx: &Ctx,
    headers: &HeaderMap,
    body: ReqBody,
    id: &str,
) -> ApiResult {
    check_version(headers)?;
    let id = parse_id(id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/offset+octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let offset = number_header(headers, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("Upload-Offset is required"))?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let (info, writer) = blocking(move || {
        let info = store.staged(user, id)?;
        let writer = store.append_staged(user, id, offset)?;
        Ok((info, writer))
    })
    .await?;
    let limit = info.length.map(|length| length.saturating_sub(offset));

    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let store = app.store.clone();
    // Owns the writer: whatever happens to the request (even this task being dropped with its
    // connection), the channel closes and what arrived is kept.
    let worker = tokio::task::spawn_blocking(move || -> ApiResult<(StagedInfo, Option<Entry>)> {
        let mut writer = writer;
        let mut failed = None;
        while let Some(data) = rx.blocking_recv() {
            if let Err(err) = writer.write(&data) {
                failed = Some(err);
                break;
            }
        }
        drop(rx);
        let info = writer.finish()?;
        if let Some(err) = failed {
            return Err(err.into());
        }
        let committed = match info.length {
            Some(length) if info.offset == length => Some(commit(&store, user, &info)?),
            _ => None,
        };
        Ok((info, committed))
    });
    let fed = feed(body, &tx, limit).await;
    drop(tx);
    let outcome = worker
        .await
        .map_err(|e| ApiError::internal("an upload task", e))?;
    let (info, committed) = outcome?;
    if let Fed::Broken(why) = fed? {
        tracing::debug!(upload = id, offset = info.offset, %why, "resumable upload interrupted");
    }
    let mut response = no_content();
    let headers = response.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(info.offset));
    answer_headers(headers, &info, committed.as_ref());
    Ok(response)
}

pub(crate) async fn delete(app: &AppInner, ctx: &Ctx, headers: &HeaderMap, id: &str) -> ApiResult {
    check_version(headers)?;
    let id = parse_id(id)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    blocking(move || Ok(store.abort_staged(user, id)?)).await?;
    let mut response = no_content();
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    Ok(response)
}

/// Commits a complete staged upload to the path in its label.
fn commit(store: &Store, user: UserId, info: &StagedInfo) -> ApiResult<Entry> {
    let label: Label = serde_json::from_str(&info.label)
        .map_err(|e| ApiError::internal("reading the upload label", e))?;
    let path = StorePath::parse(&label.path)
        .map_err(|e| ApiError::internal("reading the upload label", e))?;
    let options = CommitOptions {
        mtime: label.mtime.map(from_unix),
        ..CommitOptions::default()
    };
    Ok(store.commit_staged(user, info.id, &path, &options)?.entry)
}

fn answer_headers(headers: &mut HeaderMap, info: &StagedInfo, committed: Option<&Entry>) {
    headers.insert("tus-resumable", HeaderValue::from_static(VERSION));
    match committed {
        Some(entry) => {
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", entry.etag)) {
                headers.insert("x-percloud-etag", etag);
            }
        }
        None => {
            let expires =
                httpdate::fmt_http_date(info.updated.max(SystemTime::UNIX_EPOCH) + EXPIRY);
            if let Ok(value) = HeaderValue::from_str(&expires) {
                headers.insert("upload-expires", value);
            }
        }
    }
}

/// Every request but OPTIONS must speak our version (412 otherwise, as tus says).
fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => Ok(()),
        _ => {
            let mut error = ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "Tus-Resumable: 1.0.0 is required",
            );
            error.headers.push((
                http::HeaderName::from_static("tus-version"),
                HeaderValue::from_static(VERSION),
            ));
            Err(error)
        }
    }
}

fn number_header(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid {name}"))),
    }
}

/// `Upload-Metadata: key base64, key2 base64` → decoded pairs (values must be UTF-8).
fn metadata(headers: &HeaderMap) -> ApiResult<Vec<(String, String)>> {
    let Some(value) = headers.get("upload-metadata") else {
        return Ok(Vec::new());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Upload-Metadata is not ASCII"))?;
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
            let bytes = STANDARD.decode(encoded.trim()).map_err(|_| {
                ApiError::bad_request(format!("Upload-Metadata {key} is not base64"))
            })?;
            let value = String::from_utf8(bytes).map_err(|_| {
                ApiError::bad_request(format!("Upload-Metadata {key} is not UTF-8"))
            })?;
            Ok((key.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metadata() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "upload-metadata",
            HeaderValue::from_static("path L1Bob3Rvcy9jYXQuanBn, mtime MTcwMDAwMDAwMA==,empty"),
        );
        let pairs = metadata(&headers).expect("parses");
        assert_eq!(
            pairs,
            [
                ("path".to_owned(), "/Photos/cat.jpg".to_owned()),
                ("mtime".to_owned(), "1700000000".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        headers.insert("upload-metadata", HeaderValue::from_static("path !!!"));
        assert!(metadata(&headers).is_err());
    }

    #[test]
    fn numbers_are_strict() {
        let mut headers = HeaderMap::new();
        headers.insert("upload-offset", HeaderValue::from_static("+5"));
        assert!(number_header(&headers, "upload-offset").is_err());
        headers.insert("upload-offset", HeaderValue::from_static("42"));
        assert_eq!(
            number_header(&headers, "upload-offset").ok(),
            Some(Some(42))
        );
    }
}
