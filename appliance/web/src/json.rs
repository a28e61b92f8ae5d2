//! JSON answers, the API's error type, query strings and request bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use percloud_dav::{DavBody, full_body, status_for};
use percloud_store::{Entry, StoreError, StorePath};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Request bodies as the API sees them (boxed once at the router).
pub(crate) type ReqBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Resp = Response<DavBody>;

/// Largest JSON request body read.
const MAX_JSON_BODY: usize = 64 * 1024;

/// A refused or failed API request: a status and one sentence for people.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers (`Retry-After`, `Tus-Version`); a list keeps the error small.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "sign-in required")
    }
    pub fn too_many(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts from this address; wait and try again",
        );
        error.headers.push((
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs.max(1)),
        ));
        error
    }

    /// A store error, through the one mapping (`status_for`); an existing target is 409 here
    /// (the API has no WebDAV-specific 405).
    pub fn store(err: StoreError) -> Self {
        let status = match err {
            StoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
            _ => status_for(&err),
        };
        if status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!(error = %err, "store operation failed");
            return Self::new(status, "the box failed to do that; see its log");
        }
        Self::new(status, err.to_string())
    }

    /// Our own machinery failed (a blocking task died, the session database): logged, 500.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{what} failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed"))
    }

    pub fn into_response(self) -> Resp {
        let mut response = json(self.status, &serde_json::json!({ "error": self.message }));
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::store(err)
    }
}

impl From<percloud_sessions::SessionError> for ApiError {
    fn from(err: percloud_sessions::SessionError) -> Self {
        use percloud_sessions::SessionError;
        match err {
            SessionError::TooManyAppPasswords { .. } => {
                ApiError::new(StatusCode::CONFLICT, err.to_string())
            }
            SessionError::TooManyFlows => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            }
            _ => ApiError::internal("the session database", err),
        }
    }
}

pub(crate) type ApiResult<T = Resp> = Result<T, ApiError>;

/// `value` as a JSON answer with `status`.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Resp {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full_body(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn ok(value: &impl Serialize) -> ApiResult {
    Ok(json(StatusCode::OK, value))
}

pub(crate) fn no_content() -> Resp {
    percloud_dav::status_response(StatusCode::NO_CONTENT)
}

/// Runs blocking store work on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("a background task", e))?
}

/// Whether the request says its body is JSON (a cross-site form cannot say so).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads and parses a JSON body of at most 64 KiB.
pub(crate) async fn read_json<T: DeserializeOwned>(body: ReqBody) -> ApiResult<T> {
    let buf = read_small(body).await?;
    serde_json::from_slice(&buf).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Reads an `application/x-www-form-urlencoded` body of at most 64 KiB (as the Nextcloud
/// apps send their parameters; `+` is a space there, unlike in our query strings).
pub(crate) async fn read_form(body: ReqBody) -> ApiResult<Vec<(String, String)>> {
    let buf = read_small(body).await?;
    Ok(form_urlencoded::parse(&buf)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// A whole request body of at most 64 KiB (413 beyond).
async fn read_small(mut body: ReqBody) -> ApiResult<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_JSON_BODY {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// A decoded query string (`%XX` only; `+` is a plus).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> ApiResult<Query> {
        let mut pairs = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| ApiError::bad_request("query string is not UTF-8"))
            };
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> ApiResult<&str> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {name}")))
    }

    /// `name` as a store path (hostile names are 400).
    pub fn path(&self, name: &str) -> ApiResult<StorePath> {
        store_path(self.require(name)?)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "1" || v == "true")
    }
}

/// A `/`-separated path from a client as a validated store path.
pub(crate) fn store_path(path: &str) -> ApiResult<StorePath> {
    StorePath::parse(path).map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// Extensions the thumbnailer reads.
const THUMB_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "gif"];

/// Whether `/api/thumb` can be asked for this entry.
pub(crate) fn thumbable(entry: &Entry) -> bool {
    !entry.is_dir()
        && entry
            .name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| THUMB_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The API's Entry object; `path` is what the client sees (relative to its root).
pub(crate) fn entry_json(path: &StorePath, entry: &Entry) -> serde_json::Value {
    let (kind, mime) = if entry.is_dir() {
        ("dir", "inode/directory")
    } else {
        ("file", percloud_dav::content_type(&entry.name))
    };
    serde_json::json!({
        "id": entry.id,
        "name": entry.name,
        "path": path.to_string(),
        "kind": kind,
        "size": entry.size,
        "mtime": unix(entry.mtime),
        "etag": entry.etag,
        "mime": mime,
        "thumb": thumbable(entry),
    })
}

/// A folder and its children as `{"entry", "children"}`.
pub(crate) fn listing_json(path: &StorePath, dir: &Entry, children: &[Entry]) -> serde_json::Value {
    let children: Vec<_> = children
        .iter()
        .filter_map(|c| path.join(&c.name).ok().map(|p| entry_json(&p, c)))
        .collect();
    serde_json::json!({ "entry": entry_json(path, dir), "children": children })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_strictly() {
        let q = Query::parse(Some("path=%2FPhotos%2Fa+b.jpg&download=1&x")).expect("query");
        assert_eq!(q.get("path"), Some("/Photos/a+b.jpg"));
        assert!(q.flag("download"));
        assert_eq!(q.get("x"), Some(""));
        assert!(Query::parse(Some("path=%ff")).is_err());
        assert!(q.path("path").is_ok());
        let hostile = Query::parse(Some("path=%2F..%2Fetc")).expect("query");
        assert_eq!(
            hostile.path("path").map_err(|e| e.status).err(),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn json_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&headers));
    }
}
