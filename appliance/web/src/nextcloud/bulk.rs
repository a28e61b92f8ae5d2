//! `POST /remote.php/dav/bulk`: the Nextcloud desktop client's bulk upload of small files.
//!
//! The body is `multipart/related`, one part per file: `X-File-Path` (the path in the user's
//! tree, raw UTF-8, not percent-encoded), `X-File-MD5` (hex), `X-File-Mtime` or
//! `X-OC-Mtime` (unix seconds), `Content-Length`, optionally `OC-Checksum` and `If-Match`.
//! The answer is one JSON object keyed by each part's `X-File-Path`: `{"error": false,
//! "etag", "fileid", …}` or `{"error": true, "message"}`. `docs/clients.md` has what the
//! client does with it.
//!
//! Each file is checked on its own — path, checksum, length, locks, then in the commit its
//! parent, If-Match and quota — and a file that fails stores nothing and gets its error
//! entry while the others go on. All the files that pass are committed together
//! (`percloud_store::UploadBatch`): one pack fdatasync and one metadata transaction for the
//! whole request. A body that cannot be parsed to its end (truncated, malformed, a part or
//! the whole over its cap) stores nothing and answers 400 or 413: the client then retries
//! those files one by one with PUT.
//!
//! Parts are read whole into memory (each at most [`MAX_PART`]) and handed to the store in
//! runs of about [`FLUSH_BYTES`], so a request holds a bounded amount whatever its size. The
//! parser reads ahead greedily and buffers a part's headers until they end, so it may read
//! at most [`MAX_AHEAD`] bytes (and one network read) past where the body stood when it last
//! handed something out ([`Guarded`]): it never holds much more than twice that. A parser
//! that cannot go on within that (a header block that never ends) is refused with 413
//! instead of buffering up to the request's cap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::BodyDataStream;
use md5::{Digest, Md5};
use percloud_dav::{Announced, DavHandler, Sha1, unix_mtime};
use percloud_store::{
    CommitOptions, CommitOutcome, Precondition, StorePath, UploadBatch, User, UserId,
};
use serde_json::{Map, Value, json};

use crate::json::{ApiError, ApiResult, BoxError, ReqBody, Resp, blocking};
use crate::responses;
use crate::router::{App, ConnInfo};

/// The endpoint's path.
pub(super) const PATH: &str = "/remote.php/dav/bulk";

/// Largest part (file) accepted; the client sends only small files this way.
pub(crate) const MAX_PART: u64 = 16 * 1024 * 1024;
/// Largest request body accepted.
pub(crate) const MAX_REQUEST: u64 = 256 * 1024 * 1024;
/// Most parts in one request (the client sends up to 100).
pub(crate) const MAX_FILES: usize = 1000;
/// Parts are handed to the store once this many bytes are waiting.
const FLUSH_BYTES: usize = 4 * 1024 * 1024;
/// How far the parser may read the body past what it handed out (part headers and
/// boundaries are a few hundred bytes; data is handed out as soon as it is read).
const MAX_AHEAD: u64 = 2 * 1024 * 1024;

/// `permissions` reported for an uploaded file (as in `oc:permissions`).
const FILE_PERMISSIONS: &str = "RGDNVW";

pub(super) fn claims(path: &str) -> bool {
    path == PATH
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    if req.method() != Method::POST {
        return responses::text(StatusCode::METHOD_NOT_ALLOWED, "bulk upload is POST only");
    }
    let user = match app
        .inner
        .auth
        .require_user(req.headers(), conn.peer.ip())
        .await
    {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    match receive(app, &user, req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(status = %e.status, message = %e.message, "bulk upload refused");
            e.into_response()
        }
    }
}

/// One part as received: the path it names (the answer's key), its headers and bytes.
struct Part {
    key: String,
    headers: HeaderMap,
    data: Bytes,
}

/// What became of one part.
enum Fate {
    /// Added to the batch at this index; the commit's result decides.
    Queued(usize),
    Refused(String),
}

/// The batch being filled and each part's fate so far, in arrival order.
struct Progress {
    batch: UploadBatch,
    fates: Vec<(String, Fate)>,
}

async fn receive(app: &App, user: &User, req: Request<ReqBody>) -> ApiResult {
    let boundary = boundary(req.headers())?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(MAX_REQUEST)
            .per_field(MAX_PART),
    );
    let guarded = Guarded::new(req.into_body());
    let reading = guarded.state.clone();
    let stream = BodyDataStream::new(guarded);
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let files = app.inner.dav.clone();
    let mut progress = Progress {
        batch: app.inner.store.begin_batch(),
        fates: Vec::new(),
    };
    let mut waiting: Vec<Part> = Vec::new();
    let mut waiting_bytes = 0usize;
    let mut parts = 0usize;
    while let Some(mut field) = unless_stuck(&reading, multipart.next_field()).await? {
        parts += 1;
        if parts > MAX_FILES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {MAX_FILES} files in one bulk upload"),
            ));
        }
        let headers = field.headers().clone();
        let mut data = BytesMut::new();
        while let Some(chunk) = unless_stuck(&reading, field.chunk()).await? {
            data.extend_from_slice(&chunk);
        }
        waiting_bytes += data.len();
        waiting.push(Part {
            key: path_key(&headers),
            headers,
            data: data.freeze(),
        });
        if waiting_bytes >= FLUSH_BYTES {
            let run = std::mem::take(&mut waiting);
            waiting_bytes = 0;
            let (uid, files) = (user.id, files.clone());
            progress = blocking(move || Ok(add_parts(progress, &files, uid, run))).await?;
        }
    }
    let uid = user.id;
    let answer = blocking(move || {
        let progress = add_parts(progress, &files, uid, waiting);
        Ok(commit(progress, &files))
    })
    .await?;
    Ok(crate::json::json(StatusCode::OK, &answer))
}

/// The boundary of a `multipart/related` (or any `multipart/…`) body.
fn boundary(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("Content-Type missing"))?;
    let mut params = value.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind
        .get(..10)
        .is_some_and(|k| k.eq_ignore_ascii_case("multipart/"))
    {
        return Err(ApiError::bad_request(
            "Content-Type must be multipart/related",
        ));
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| ApiError::bad_request("multipart boundary missing"))
}

/// A body that broke off or is malformed stores nothing: 413 over a cap, 400 otherwise.
fn parse_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a file over {MAX_PART} bytes in a bulk upload"),
        ),
        multer::Error::StreamSizeExceeded { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a bulk upload over {MAX_REQUEST} bytes"),
        ),
        e => ApiError::bad_request(format!("bulk upload body: {e}")),
    }
}

/// The request body, which the parser may read at most [`MAX_AHEAD`] bytes (plus one frame)
/// past where it stood when the parser last handed out a part or some data: beyond that it
/// answers `Pending` and sets `throttled` (see [`unless_stuck`]).
struct Guarded {
    inner: ReqBody,
    state: Arc<Reading>,
}

/// How far [`Guarded`] was read, shared with the loop that takes the parser's output.
#[derive(Debug, Default)]
struct Reading {
    read: AtomicU64,
    handed_out: AtomicU64,
    throttled: AtomicBool,
}

impl Guarded {
    fn new(inner: ReqBody) -> Self {
        Guarded {
            inner,
            state: Arc::default(),
        }
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let state = self.state.clone();
        let read = state.read.load(Ordering::Relaxed);
        if read > state.handed_out.load(Ordering::Relaxed) + MAX_AHEAD {
            // No waker: `unless_stuck` ends the request unless the parser goes on without.
            state.throttled.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        state.throttled.store(false, Ordering::Relaxed);
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let len = data.map_or(0, |d| d.len() as u64);
            state.read.fetch_add(len, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }
}

/// Runs one step of the parser. A parser waiting on a throttled body cannot go on with what
/// it holds (it hands out data as soon as it has it): 413. Whatever it hands out moves the
/// body's allowance forward.
async fn unless_stuck<T>(
    reading: &Reading,
    step: impl Future<Output = multer::Result<T>>,
) -> ApiResult<T> {
    let mut step = std::pin::pin!(step);
    std::future::poll_fn(|cx| match step.as_mut().poll(cx) {
        Poll::Pending if reading.throttled.load(Ordering::Relaxed) => {
            Poll::Ready(Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bulk upload part headers longer than about {MAX_AHEAD} bytes"),
            )))
        }
        Poll::Pending => Poll::Pending,
        Poll::Ready(result) => {
            let read = reading.read.load(Ordering::Relaxed);
            reading.handed_out.store(read, Ordering::Relaxed);
            Poll::Ready(result.map_err(parse_error))
        }
    })
    .await
}

/// The part's `X-File-Path` as sent (the answer is keyed by it, byte for byte).
fn path_key(headers: &HeaderMap) -> String {
    headers
        .get("x-file-path")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// Checks each part and writes those that pass into the batch (on a blocking thread).
fn add_parts(
    mut progress: Progress,
    files: &DavHandler,
    user: UserId,
    parts: Vec<Part>,
) -> Progress {
    for part in parts {
        let fate = match check(&part, files, user) {
            Ok((path, options)) => match progress.batch.add(user, &path, &options, &part.data) {
                Ok(index) => Fate::Queued(index),
                Err(e) => Fate::Refused(ApiError::store(e).message),
            },
            Err(message) => Fate::Refused(message),
        };
        if let Fate::Refused(message) = &fate {
            tracing::debug!(path = %part.key, %message, "bulk upload file refused");
        }
        progress.fates.push((part.key, fate));
    }
    progress
}

/// What a part must pass before its bytes are stored: a usable path, no lock, the announced
/// length, and the announced checksums (at least one: the client always sends its MD5).
fn check(
    part: &Part,
    files: &DavHandler,
    user: UserId,
) -> Result<(StorePath, CommitOptions), String> {
    match part.headers.get("x-file-path") {
        None => return Err("X-File-Path missing".to_owned()),
        Some(v) if std::str::from_utf8(v.as_bytes()).is_err() => {
            return Err("X-File-Path is not UTF-8".to_owned());
        }
        Some(_) => {}
    }
    let path = StorePath::parse(&part.key).map_err(|e| format!("unusable path: {e}"))?;
    if path.is_root() {
        return Err("cannot upload to the root".to_owned());
    }
    if files.is_locked(user, &path) {
        return Err(format!("{path} is locked"));
    }
    let length = header_str(&part.headers, "content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or("Content-Length missing or malformed")?;
    if length != part.data.len() as u64 {
        return Err(format!(
            "Content-Length says {length} bytes, the part has {}",
            part.data.len()
        ));
    }
    let md5 = verify_md5(&part.headers, &part.data)?;
    let announced = match header_str(&part.headers, "oc-checksum") {
        Some(value) => Announced::parse(value).map_err(|e| e.to_string())?,
        None => None,
    };
    let sha1 = match announced {
        Some(announced) => {
            let mut sha = Sha1::default();
            sha.update(&part.data);
            Some(sha.verify(&announced).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let checksum = sha1.or(md5);
    if checksum.is_none() {
        return Err("X-File-MD5 missing".to_owned());
    }
    let mtime = header_str(&part.headers, "x-file-mtime")
        .or_else(|| header_str(&part.headers, "x-oc-mtime"))
        .and_then(unix_mtime);
    let precondition = Precondition {
        if_match: header_str(&part.headers, "if-match").map(|tag| {
            tag.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        }),
        if_none_match_any: header_str(&part.headers, "if-none-match")
            .is_some_and(|v| v.trim() == "*"),
    };
    Ok((
        path,
        CommitOptions {
            mtime,
            precondition,
            checksum,
        },
    ))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies `X-File-MD5` (`<hex>` or `MD5:<hex>`) when sent; the checksum to keep.
fn verify_md5(headers: &HeaderMap, data: &[u8]) -> Result<Option<String>, String> {
    let Some(value) = header_str(headers, "x-file-md5") else {
        return Ok(None);
    };
    let value = value.trim();
    let announced = match value.split_once(':') {
        Some((kind, hex)) if kind.eq_ignore_ascii_case("md5") => hex,
        Some(_) => return Err(format!("X-File-MD5 {value:?} is not an MD5 digest")),
        None => value,
    };
    if announced.len() != 32 || !announced.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("X-File-MD5 {value:?} is not an MD5 digest"));
    }
    let actual = hex(&Md5::digest(data));
    if !announced.eq_ignore_ascii_case(&actual) {
        return Err(format!(
            "checksum mismatch: the client announced MD5:{announced}, the part has MD5:{actual}"
        ));
    }
    Ok(Some(format!("MD5:{actual}")))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Commits the batch and writes the answer: one entry per part, keyed by its path.
fn commit(progress: Progress, files: &DavHandler) -> Value {
    let Progress { batch, fates } = progress;
    let mut results: Vec<Option<percloud_store::Result<CommitOutcome>>> =
        batch.commit().into_iter().map(Some).collect();
    let mut answer = Map::with_capacity(fates.len());
    for (key, fate) in fates {
        let entry = match fate {
            Fate::Refused(message) => refused(message),
            Fate::Queued(index) => match results.get_mut(index).and_then(Option::take) {
                Some(Ok(outcome)) => stored(files, &outcome),
                Some(Err(e)) => {
                    let message = ApiError::store(e).message;
                    tracing::debug!(path = %key, %message, "bulk upload file refused");
                    refused(message)
                }
                None => refused("the file went unanswered".to_owned()),
            },
        };
        answer.insert(key, entry);
    }
    Value::Object(answer)
}

fn refused(message: String) -> Value {
    json!({ "error": true, "message": message })
}

/// A stored file's entry: the ETag and file id under the names the clients read (the
/// desktop client looks for `OC-ETag`/`ETag`/`etag` and `OC-FileID`; the server's own answer
/// has `etag` and `fileid`), and `X-OC-MTime: accepted` (the mtime is always kept).
fn stored(files: &DavHandler, outcome: &CommitOutcome) -> Value {
    let etag = format!("\"{}\"", outcome.entry.etag);
    let id = files.oc_id(outcome.entry.id);
    json!({
        "error": false,
        "etag": etag,
        "OC-ETag": etag,
        "fileid": id,
        "OC-FileID": id,
        "permissions": FILE_PERMISSIONS,
        "X-OC-MTime": "accepted",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        map
    }

    #[test]
    fn boundary_of_multipart_related() {
        let h = headers(&[("content-type", "multipart/related; boundary=\"abc\"")]);
        assert_eq!(boundary(&h).expect("boundary"), "abc");
        let h = headers(&[("content-type", "Multipart/Related;boundary=x1")]);
        assert_eq!(boundary(&h).expect("boundary"), "x1");
        let h = headers(&[("content-type", "application/json")]);
        assert!(boundary(&h).is_err());
        let h = headers(&[("content-type", "multipart/related")]);
        assert!(boundary(&h).is_err());
    }

    #[test]
    fn md5_in_either_form_and_mismatch() {
        // MD5("abc")
        let abc = "900150983cd24fb0d6963f7d28e17f72";
        let h = headers(&[("x-file-md5", abc)]);
        assert_eq!(
            verify_md5(&h, b"abc").expect("ok"),
            Some(format!("MD5:{abc}"))
        );
        let h = headers(&[("x-file-md5", &format!("MD5:{}", abc.to_uppercase()))]);
        assert!(verify_md5(&h, b"abc").is_ok());
        assert!(
            verify_md5(&h, b"abd")
                .expect_err("mismatch")
                .contains("mismatch")
        );
        let h = headers(&[("x-file-md5", "SHA1:00")]);
        assert!(verify_md5(&h, b"abc").is_err());
        assert_eq!(verify_md5(&HeaderMap::new(), b"abc").expect("absent"), None);
    }
}
