//! PUT: the request body streams through a bounded channel into a store upload owned by a
//! blocking thread. Only a body received in full is committed; anything else drops the
//! upload, leaving the previous version intact.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use percloud_store::{CommitOptions, CommitOutcome, Precondition};
use tokio::sync::mpsc;

use crate::body::{DavBody, empty_body, read_limited};
use crate::checksum::{self, Announced, Sha1};
use crate::conditional;
use crate::handler::{DavHandler, Inner, LockNeed, Req};
use crate::headers::{self, EtagList};
use crate::status::{DavError, Op};

/// Body chunks buffered between the connection and the upload thread.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Bodies of a known length up to this size are read whole before storing (one blocking
/// task per PUT); larger ones stream.
const SMALL_PUT: usize = 256 * 1024;

enum Msg {
    Data(Bytes),
    /// The whole body arrived: commit.
    End,
}

impl DavHandler {
    pub(crate) async fn put<B>(&self, req: Req, body: B) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.path.is_root() {
            return Err(DavError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "cannot PUT to the root",
            ));
        }
        if req.headers.contains_key(header::CONTENT_RANGE) {
            return Err(DavError::bad_request(
                "partial PUT (Content-Range) is not supported",
            ));
        }
        let expected = match req.headers.get(header::CONTENT_LENGTH) {
            None => None,
            Some(_) => Some(
                req.content_length()
                    .ok_or_else(|| DavError::bad_request("invalid Content-Length"))?,
            ),
        };
        let mtime = headers::oc_mtime(&req.headers);
        let announced = Announced::from_headers(&req.headers)?;
        let outcome = match expected {
            Some(n) if n <= SMALL_PUT as u64 => self.put_small(req, body, n, announced).await?,
            _ => self.put_streaming(req, body, expected, announced).await?,
        };
        let oc_id = self.oc_id(outcome.entry.id);
        Ok(upload_reply(&oc_id, &outcome, mtime.is_some()))
    }

    /// A small body (known length, at most [`SMALL_PUT`]) is read first; then one blocking
    /// task checks the preconditions, stores and commits it: one hop to a blocking thread
    /// instead of two and no channel.
    async fn put_small<B>(
        &self,
        req: Req,
        body: B,
        n: u64,
        announced: Option<Announced>,
    ) -> Result<CommitOutcome, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let data = read_limited(body, Some(n), SMALL_PUT).await?;
        if data.len() as u64 != n {
            return Err(DavError::bad_request(format!(
                "body ended after {} of {n} bytes",
                data.len()
            )));
        }
        self.blocking(move |inner| {
            let options = CommitOptions {
                mtime: headers::oc_mtime(&req.headers),
                precondition: precheck(inner, &req)?,
                checksum: checksum::verify_whole(announced.as_ref(), &data)?,
            };
            let mut upload = inner
                .store
                .begin_upload(req.user, Some(n))
                .map_err(|e| DavError::store(Op::Put, e))?;
            upload
                .write(&data)
                .map_err(|e| DavError::store(Op::Put, e))?;
            upload
                .commit(&req.path, &options)
                .map_err(|e| DavError::store(Op::Put, e))
        })
        .await
    }

    /// Any other body streams through a bounded channel into an upload on a blocking thread.
    async fn put_streaming<B>(
        &self,
        req: Req,
        mut body: B,
        expected: Option<u64>,
        announced: Option<Announced>,
    ) -> Result<CommitOutcome, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let precondition = self.put_preconditions(&req).await?;
        let mtime = headers::oc_mtime(&req.headers);
        let mut options = CommitOptions {
            mtime,
            precondition,
            checksum: None,
        };

        let (tx, mut rx) = mpsc::channel::<Msg>(CHUNKS_IN_FLIGHT);
        let (user, path) = (req.user, req.path.clone());
        let inner = self.inner.clone();
        let worker = tokio::task::spawn_blocking(move || -> Result<CommitOutcome, DavError> {
            let mut upload = inner
                .store
                .begin_upload(user, expected)
                .map_err(|e| DavError::store(Op::Put, e))?;
            let mut sha1 = announced.as_ref().map(|_| Sha1::default());
            loop {
                match rx.blocking_recv() {
                    Some(Msg::Data(data)) => {
                        if let Some(sha1) = &mut sha1 {
                            sha1.update(&data);
                        }
                        upload
                            .write(&data)
                            .map_err(|e| DavError::store(Op::Put, e))?;
                    }
                    Some(Msg::End) => break,
                    // The request side gave up: dropping `upload` abandons it.
                    None => return Err(DavError::bad_request("upload aborted")),
                }
            }
            if let (Some(sha1), Some(announced)) = (sha1, &announced) {
                options.checksum = Some(sha1.verify(announced)?);
            }
            upload
                .commit(&path, &options)
                .map_err(|e| DavError::store(Op::Put, e))
        });

        let mut received: u64 = 0;
        let mut worker_stopped = false;
        let fed: Result<(), DavError> = loop {
            let Some(frame) = body.frame().await else {
                break Ok(());
            };
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Err(err) => {
                    break Err(DavError::bad_request(format!(
                        "request body failed: {}",
                        err.into()
                    )));
                }
            };
            received += data.len() as u64;
            if expected.is_some_and(|n| received > n) {
                break Err(DavError::bad_request("body longer than Content-Length"));
            }
            if tx.send(Msg::Data(data)).await.is_err() {
                // The upload thread stopped early (quota, full disk); its error says why.
                worker_stopped = true;
                break Ok(());
            }
        };
        let fed = fed.and_then(|()| match expected {
            Some(n) if received < n => Err(DavError::bad_request(format!(
                "body ended after {received} of {n} bytes"
            ))),
            _ => Ok(()),
        });
        match &fed {
            Ok(()) => {
                let _ = tx.send(Msg::End).await;
            }
            Err(_) => drop(tx),
        }
        let outcome = worker
            .await
            .map_err(|e| DavError::internal("upload task", e))?;
        if !worker_stopped {
            fed?;
        }
        outcome
    }

    /// Checks before reading the body: the target is not a folder, its parent exists, the
    /// conditional headers hold and the locks allow it. Returns the precondition the commit
    /// re-checks atomically.
    async fn put_preconditions(&self, req: &Req) -> Result<Precondition, DavError> {
        let req = req.clone();
        self.blocking(move |inner| precheck(inner, &req)).await
    }
}

/// The answer to a committed upload (PUT, or the Nextcloud client's chunked `MOVE .file`):
/// 201 or 204 with `ETag` and `OC-ETag` (quoted), `OC-FileId` and, when the client sent
/// `X-OC-Mtime`, `X-OC-MTime: accepted`.
pub fn upload_reply(oc_id: &str, outcome: &CommitOutcome, mtime_sent: bool) -> Response<DavBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let headers = response.headers_mut();
    let etag = format!("\"{}\"", outcome.entry.etag);
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag.clone());
        headers.insert("oc-etag", etag);
    }
    if let Ok(id) = HeaderValue::from_str(oc_id) {
        headers.insert("oc-fileid", id);
    }
    if mtime_sent {
        headers.insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    response
}

/// See [`DavHandler::put_preconditions`].
fn precheck(inner: &Inner, req: &Req) -> Result<Precondition, DavError> {
    let existing = inner.stat_opt(req.user, &req.path)?;
    match &existing {
        Some(entry) if entry.is_dir() => {
            return Err(DavError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "cannot PUT to a collection",
            ));
        }
        Some(_) => {}
        None => {
            inner.require_parent_collection(req.user, &req.path)?;
        }
    }
    conditional::require(&req.headers, existing.as_ref())?;
    inner.check_locks(
        req,
        &[LockNeed {
            path: req.path.clone(),
            tree: false,
            membership: existing.is_none(),
        }],
    )?;
    let if_match =
        headers::etag_list(&req.headers, "if-match").and(existing.as_ref().map(|e| e.etag.clone()));
    let if_none_match_any = matches!(
        headers::etag_list(&req.headers, "if-none-match"),
        Some(EtagList::Any)
    );
    Ok(Precondition {
        if_match,
        if_none_match_any,
    })
}
