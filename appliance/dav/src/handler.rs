//! The request entry point: resolves the path, evaluates the `If` header, dispatches on the
//! method; plus the small methods (OPTIONS, MKCOL, DELETE) and the lock guard every
//! modifying method goes through.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use percloud_store::{Precondition, Store, StoreError, StorePath, UserId};

use crate::body::{DavBody, empty_body, read_limited};
use crate::conditional;
use crate::headers::{self, Depth};
use crate::href::Mount;
use crate::if_header::{IfHeader, ResourceState};
use crate::locks::{Lock, LockTable};
use crate::status::DavError;
use crate::xml::escape_text;

/// Largest XML request body we read (PROPFIND, PROPPATCH, LOCK).
pub(crate) const MAX_XML_BODY: usize = 1024 * 1024;

pub(crate) const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK";

/// Serves WebDAV for authenticated users over one [`Store`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct DavHandler {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Store,
    pub mount: Mount,
    /// Shared by every mount of the same store: locks belong to store paths.
    pub locks: Arc<LockTable>,
    /// The suffix of `oc:id` (`oc` and ten hex digits of the store's instance id).
    pub instance: String,
}

/// What every method handler needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub user: UserId,
    pub path: StorePath,
    pub method: Method,
    pub headers: HeaderMap,
    /// Lock tokens submitted in the `If` header.
    pub tokens: Vec<String>,
    pub if_header: Option<IfHeader>,
}

impl Req {
    /// The request with its `If` header parsed (400 when it is malformed).
    fn new(
        user: UserId,
        path: StorePath,
        method: Method,
        headers: HeaderMap,
    ) -> Result<Req, DavError> {
        let if_header = match headers.get("if") {
            None => None,
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| DavError::bad_request("If header is not ASCII"))?;
                Some(IfHeader::parse(text).map_err(|e| DavError::bad_request(e.to_string()))?)
            }
        };
        Ok(Req {
            user,
            path,
            method,
            headers,
            tokens: if_header
                .as_ref()
                .map(IfHeader::submitted_tokens)
                .unwrap_or_default(),
            if_header,
        })
    }

    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A resource a modifying request touches, for the lock check.
#[derive(Debug, Clone)]
pub(crate) struct LockNeed {
    pub path: StorePath,
    /// Also everything beneath (DELETE, MOVE and overwritten destinations).
    pub tree: bool,
    /// The parent's membership changes (creation, removal).
    pub membership: bool,
}

impl DavHandler {
    /// `prefix` is the URL path where a user's tree is mounted, e.g. `/dav` (no trailing slash).
    pub fn new(store: Store, prefix: impl Into<String>) -> Self {
        let instance = match store.instance_id() {
            Ok(id) => format!("oc{:010x}", id & 0xff_ffff_ffff),
            Err(error) => {
                tracing::warn!(%error, "cannot read the instance id");
                "oc0000000000".to_owned()
            }
        };
        DavHandler {
            inner: Arc::new(Inner {
                store,
                mount: Mount::new(prefix),
                locks: Arc::default(),
                instance,
            }),
        }
    }

    /// The same tree (same store, same locks) served under another URL prefix, e.g. the
    /// Nextcloud client's `/remote.php/dav/files/<user>`. Cheap: one small allocation.
    pub fn mounted_at(&self, prefix: impl Into<String>) -> Self {
        DavHandler {
            inner: Arc::new(Inner {
                store: self.inner.store.clone(),
                mount: Mount::new(prefix),
                locks: self.inner.locks.clone(),
                instance: self.inner.instance.clone(),
            }),
        }
    }

    /// The store path a `Destination`-style URL or absolute path names under this mount;
    /// `None` when it is malformed or outside the mount.
    pub fn resolve_url(&self, url: &str) -> Option<StorePath> {
        self.inner.mount.resolve_url(url).ok()
    }

    /// Evaluates a request's `If`, `If-Match` and `If-None-Match` headers against `path` as
    /// it is now (tags in `If` resolve under this mount), for a method that writes to `path`
    /// without coming through [`DavHandler::handle`] (the Nextcloud chunked upload's final
    /// MOVE). `None` when they hold; otherwise the 412 (or 400) to answer.
    pub async fn refuse_unless_preconditions(
        &self,
        user: UserId,
        path: &StorePath,
        headers: &HeaderMap,
    ) -> Option<Response<DavBody>> {
        let checked = async {
            let req = Req::new(user, path.clone(), Method::PUT, headers.clone())?;
            self.check_if_header(&req).await?;
            let (path, headers) = (path.clone(), headers.clone());
            self.blocking(move |inner| {
                conditional::require(&headers, inner.stat_opt(user, &path)?.as_ref())
            })
            .await
        };
        checked.await.err().map(DavError::into_response)
    }

    /// Whether a lock would refuse a write to `path` that carries no lock token (a lock on
    /// it or a deep one above it, or one on its parent, which guards new members), for
    /// writers that do not come through [`DavHandler::handle`] (the Nextcloud bulk upload).
    pub fn is_locked(&self, user: UserId, path: &StorePath) -> bool {
        let locks = &self.inner.locks;
        !locks.covering(user, path).is_empty()
            || path
                .parent()
                .is_some_and(|parent| !locks.covering(user, &parent).is_empty())
    }

    /// The href of `path` under this mount (folders end with `/`).
    pub fn href(&self, path: &StorePath, is_dir: bool) -> String {
        self.inner.mount.href(path, is_dir)
    }

    /// The `oc:id` of node `id`: the zero-padded id and this store's instance id.
    pub fn oc_id(&self, id: u64) -> String {
        oc_id(id, &self.inner.instance)
    }

    /// Serves one request for the already-authenticated `user`. Never panics on client input.
    pub async fn handle<B>(&self, user: UserId, req: Request<B>) -> Response<DavBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let result = self.dispatch(user, parts, body).await;
        match result {
            Ok(response) => response,
            Err(err) => {
                if err.status.is_server_error() {
                    tracing::warn!(%method, status = %err.status, detail = %err.detail, "dav request failed");
                } else {
                    tracing::debug!(%method, status = %err.status, detail = %err.detail, "dav request refused");
                }
                err.into_response()
            }
        }
    }

    async fn dispatch<B>(
        &self,
        user: UserId,
        parts: http::request::Parts,
        body: B,
    ) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = self
            .inner
            .mount
            .resolve(parts.uri.path())
            .map_err(|e| e.into_request_error())?;
        let req = Req::new(user, path, parts.method, parts.headers)?;
        if req.method != Method::OPTIONS {
            self.check_if_header(&req).await?;
        }
        match req.method.as_str() {
            "OPTIONS" => Ok(options()),
            "GET" => self.get(req, false).await,
            "HEAD" => self.get(req, true).await,
            "PUT" => self.put(req, body).await,
            "DELETE" => self.delete(req).await,
            "MKCOL" => self.mkcol(req, body).await,
            "PROPFIND" => self.propfind(req, body).await,
            "PROPPATCH" => self.proppatch(req, body).await,
            "COPY" => self.transfer(req, false).await,
            "MOVE" => self.transfer(req, true).await,
            "LOCK" => self.lock(req, body).await,
            "UNLOCK" => self.unlock(req).await,
            _ => {
                let mut response = DavError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not supported", req.method),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
                Ok(response)
            }
        }
    }

    /// Runs blocking store work on the blocking pool.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, DavError>
    where
        F: FnOnce(&Inner) -> Result<T, DavError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| DavError::internal("store task", e))?
    }

    /// RFC 4918 §10.4: the request fails with 412 unless the `If` header (when present) holds.
    async fn check_if_header(&self, req: &Req) -> Result<(), DavError> {
        let Some(if_header) = req.if_header.clone() else {
            return Ok(());
        };
        let (user, path) = (req.user, req.path.clone());
        let holds = self
            .blocking(move |inner| {
                let needs_etag = if_header.mentions_etags();
                Ok(if_header.evaluate(|tag| {
                    let target = match tag {
                        None => Ok(path.clone()),
                        Some(url) => inner.mount.resolve_url(url),
                    };
                    let Ok(target) = target else {
                        return ResourceState::default();
                    };
                    let etag = if needs_etag {
                        inner.store.stat(user, &target).ok().map(|e| e.etag)
                    } else {
                        None
                    };
                    let lock_tokens = inner
                        .locks
                        .covering(user, &target)
                        .into_iter()
                        .map(|l| l.token)
                        .collect();
                    ResourceState { etag, lock_tokens }
                }))
            })
            .await?;
        if holds {
            Ok(())
        } else {
            Err(DavError::new(
                StatusCode::PRECONDITION_FAILED,
                "If header evaluated to false",
            ))
        }
    }

    async fn mkcol<B>(&self, req: Req, body: B) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let content = read_limited(body, req.content_length(), MAX_XML_BODY).await?;
        if !content.is_empty() || req.content_length().is_some_and(|n| n > 0) {
            return Err(DavError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "MKCOL with a body is not supported",
            ));
        }
        if req.path.is_root() {
            return Err(DavError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "the root exists",
            ));
        }
        self.inner.check_locks(
            &req,
            &[LockNeed {
                path: req.path.clone(),
                tree: false,
                membership: true,
            }],
        )?;
        let (user, path) = (req.user, req.path.clone());
        let entry = self
            .blocking(move |inner| Ok(inner.store.mkdir(user, &path)?))
            .await?;
        // The Nextcloud client records the new folder's id from the answer.
        let mut response = created();
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&self.oc_id(entry.id)) {
            headers.insert("oc-fileid", id);
        }
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", entry.etag)) {
            headers.insert(header::ETAG, etag.clone());
            headers.insert("oc-etag", etag);
        }
        Ok(response)
    }

    async fn delete(&self, req: Req) -> Result<Response<DavBody>, DavError> {
        if req.path.is_root() {
            return Err(DavError::new(
                StatusCode::FORBIDDEN,
                "the root cannot be deleted",
            ));
        }
        let depth = headers::depth(&req.headers)?;
        let (user, path) = (req.user, req.path.clone());
        let req2 = req.clone();
        self.blocking(move |inner| {
            let entry = inner.store.stat(user, &path)?;
            if entry.is_dir() && !matches!(depth, None | Some(Depth::Infinity)) {
                return Err(DavError::bad_request(
                    "DELETE of a collection needs Depth: infinity",
                ));
            }
            conditional::require(&req2.headers, Some(&entry))?;
            inner.check_locks(
                &req2,
                &[LockNeed {
                    path: path.clone(),
                    tree: true,
                    membership: true,
                }],
            )?;
            let precondition = Precondition {
                if_match: Some(entry.etag.clone()),
                if_none_match_any: false,
            };
            inner.store.delete(user, &path, &precondition)?;
            inner.locks.release_tree(user, &path);
            Ok(())
        })
        .await?;
        Ok(no_content())
    }
}

impl Inner {
    /// Refuses with 423 unless the client submitted a token for the locks on what it touches:
    /// every exclusive lock, and at least one of the shared locks.
    pub(crate) fn check_locks(&self, req: &Req, needs: &[LockNeed]) -> Result<(), DavError> {
        for need in needs {
            let mut locks = self.locks.covering(req.user, &need.path);
            if need.tree {
                locks.extend(self.locks.beneath(req.user, &need.path));
            }
            if need.membership
                && let Some(parent) = need.path.parent()
            {
                locks.extend(self.locks.covering(req.user, &parent));
            }
            let held = |l: &Lock| req.tokens.contains(&l.token);
            let missing_exclusive = locks.iter().find(|l| !l.shared && !held(l));
            let shared: Vec<&Lock> = locks.iter().filter(|l| l.shared).collect();
            let missing_shared = if shared.is_empty() || shared.iter().any(|l| held(l)) {
                None
            } else {
                shared.first().copied()
            };
            if let Some(lock) = missing_exclusive.or(missing_shared) {
                let root = self.mount.href(&lock.root, false);
                return Err(
                    DavError::new(StatusCode::LOCKED, format!("{} is locked", lock.root))
                        .with_condition(format!(
                            "<D:lock-token-submitted><D:href>{}</D:href></D:lock-token-submitted>",
                            escape_text(&root)
                        )),
                );
            }
        }
        Ok(())
    }

    /// 409 unless the folder that would hold `path` exists.
    pub(crate) fn require_parent_collection(
        &self,
        user: UserId,
        path: &StorePath,
    ) -> Result<(), DavError> {
        match self.stat_opt(user, &path.parent().unwrap_or_default())? {
            Some(parent) if parent.is_dir() => Ok(()),
            _ => Err(DavError::new(
                StatusCode::CONFLICT,
                "the parent collection does not exist",
            )),
        }
    }

    /// `stat`, with "does not exist" as `None`.
    pub(crate) fn stat_opt(
        &self,
        user: UserId,
        path: &StorePath,
    ) -> Result<Option<percloud_store::Entry>, DavError> {
        match self.store.stat(user, path) {
            Ok(entry) => Ok(Some(entry)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

pub(crate) fn oc_id(id: u64, instance: &str) -> String {
    format!("{id:08}{instance}")
}

fn options() -> Response<DavBody> {
    let mut response = Response::new(empty_body());
    let headers = response.headers_mut();
    headers.insert("dav", HeaderValue::from_static("1, 2"));
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    headers.insert("ms-author-via", HeaderValue::from_static("DAV"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

pub(crate) fn created() -> Response<DavBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::CREATED;
    response
}

pub(crate) fn no_content() -> Response<DavBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
