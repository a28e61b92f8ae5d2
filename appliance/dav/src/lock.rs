//! LOCK and UNLOCK (RFC 4918 §9.10, §9.11): write locks, exclusive or shared, depth 0 or
//! infinity; refresh by an empty-bodied LOCK with the token in `If`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use percloud_store::{CommitOptions, Precondition};

use crate::body::{DavBody, read_limited};
use crate::handler::{DavHandler, LockNeed, MAX_XML_BODY, Req};
use crate::headers::{self, Depth};
use crate::locks::{Lock, LockError};
use crate::props::{activelock, xml_response};
use crate::status::{DavError, Op};
use crate::xml::{self, DAV, escape_text};

/// A parsed `DAV:lockinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockInfo {
    pub shared: bool,
    /// The `DAV:owner` content as a self-contained XML fragment.
    pub owner: Option<String>,
}

/// Parses a LOCK request body (`DAV:lockinfo`); only write locks exist.
pub(crate) fn parse_lockinfo(body: &[u8]) -> Result<LockInfo, DavError> {
    let root = xml::parse(body).map_err(|e| DavError::bad_request(e.to_string()))?;
    if !root.is(DAV, "lockinfo") {
        return Err(DavError::bad_request("expected DAV:lockinfo"));
    }
    let scope = root
        .child(DAV, "lockscope")
        .and_then(|s| s.elements().next())
        .ok_or_else(|| DavError::bad_request("lockinfo without lockscope"))?;
    let shared = match (scope.ns.as_str(), scope.name.as_str()) {
        (DAV, "exclusive") => false,
        (DAV, "shared") => true,
        _ => return Err(DavError::bad_request("unknown lockscope")),
    };
    let write = root
        .child(DAV, "locktype")
        .is_some_and(|t| t.child(DAV, "write").is_some());
    if !write {
        return Err(DavError::bad_request("only write locks are supported"));
    }
    let owner = root.child(DAV, "owner").map(|o| {
        let mut fragment = String::new();
        xml::write_fragment(&mut fragment, &o.children);
        fragment
    });
    Ok(LockInfo { shared, owner })
}

impl DavHandler {
    pub(crate) async fn lock<B>(&self, req: Req, body: B) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let content = read_limited(body, req.content_length(), MAX_XML_BODY).await?;
        let timeout = headers::timeout(&req.headers);
        if content.iter().all(u8::is_ascii_whitespace) {
            if req.tokens.is_empty() {
                return Err(DavError::bad_request(
                    "LOCK refresh needs the lock token in an If header",
                ));
            }
            let lock = self
                .inner
                .locks
                .refresh(req.user, &req.path, &req.tokens, timeout)
                .ok_or_else(|| {
                    DavError::new(StatusCode::PRECONDITION_FAILED, "no such lock to refresh")
                        .with_condition("<D:lock-token-matches-request-uri/>")
                })?;
            let is_dir = lock.root != req.path || self.is_dir(&req).await;
            return Ok(self.lock_response(StatusCode::OK, &lock, is_dir));
        }
        let info = parse_lockinfo(&content)?;
        let deep = match headers::depth(&req.headers)? {
            None | Some(Depth::Infinity) => true,
            Some(Depth::Zero) => false,
            Some(Depth::One) => {
                return Err(DavError::bad_request("LOCK needs Depth: 0 or infinity"));
            }
        };
        let handler = self.clone();
        self.blocking(move |inner| {
            let existing = inner.stat_opt(req.user, &req.path)?;
            if existing.is_none() {
                inner.require_parent_collection(req.user, &req.path)?;
                inner.check_locks(
                    &req,
                    &[LockNeed {
                        path: req.path.clone(),
                        tree: false,
                        membership: true,
                    }],
                )?;
            }
            let lock = inner
                .locks
                .acquire(
                    req.user,
                    req.path.clone(),
                    info.shared,
                    deep,
                    info.owner,
                    timeout,
                )
                .map_err(|err| match err {
                    LockError::Conflict { root } => {
                        let href = inner.mount.href(&root, false);
                        DavError::new(StatusCode::LOCKED, format!("{root} is locked"))
                            .with_condition(format!(
                                "<D:no-conflicting-lock><D:href>{}</D:href></D:no-conflicting-lock>",
                                escape_text(&href)
                            ))
                    }
                    LockError::TooMany => {
                        DavError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                    }
                })?;
            if let Some(entry) = existing {
                return Ok(handler.lock_response(StatusCode::OK, &lock, entry.is_dir()));
            }
            // LOCK on an unmapped URL creates an empty resource (RFC 4918 §7.3).
            let options = CommitOptions {
                mtime: None,
                precondition: Precondition {
                    if_match: None,
                    if_none_match_any: true,
                },
                checksum: None,
            };
            let created = inner
                .store
                .begin_upload(req.user, Some(0))
                .and_then(|upload| upload.commit(&req.path, &options));
            if let Err(err) = created {
                inner.locks.release(req.user, &req.path, &lock.token);
                return Err(DavError::store(Op::Put, err));
            }
            Ok(handler.lock_response(StatusCode::CREATED, &lock, false))
        })
        .await
    }

    /// Whether the request URI is a collection (false when it is missing or unreadable).
    async fn is_dir(&self, req: &Req) -> bool {
        let (user, path) = (req.user, req.path.clone());
        self.blocking(move |inner| Ok(inner.store.stat(user, &path)?.is_dir()))
            .await
            .unwrap_or(false)
    }

    fn lock_response(
        &self,
        status: StatusCode,
        lock: &Lock,
        root_is_dir: bool,
    ) -> Response<DavBody> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\">\
             <D:lockdiscovery>{}</D:lockdiscovery></D:prop>\n",
            activelock(lock, root_is_dir, &self.inner.mount)
        );
        let mut response = xml_response(status, body);
        if let Ok(token) = HeaderValue::from_str(&format!("<{}>", lock.token)) {
            response.headers_mut().insert("lock-token", token);
        }
        response
    }

    pub(crate) async fn unlock(&self, req: Req) -> Result<Response<DavBody>, DavError> {
        let token = req
            .headers
            .get("lock-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|v| v.strip_prefix('<'))
            .and_then(|v| v.strip_suffix('>'))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DavError::bad_request("UNLOCK needs a Lock-Token header"))?;
        if self.inner.locks.release(req.user, &req.path, token) {
            Ok(crate::handler::no_content())
        } else {
            Err(DavError::new(
                StatusCode::CONFLICT,
                "no lock with that token covers this resource",
            )
            .with_condition("<D:lock-token-matches-request-uri/>"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lockinfo() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
            <D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope>
            <D:locktype><D:write/></D:locktype>
            <D:owner><D:href>mailto:a@b</D:href></D:owner></D:lockinfo>"#;
        let info = parse_lockinfo(body).expect("parse");
        assert!(info.shared);
        assert_eq!(
            info.owner.as_deref(),
            Some("<x:href xmlns:x=\"DAV:\">mailto:a@b</x:href>")
        );
        let body = br#"<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>litmus test suite</owner></lockinfo>"#;
        let info = parse_lockinfo(body).expect("parse");
        assert!(!info.shared);
        assert_eq!(info.owner.as_deref(), Some("litmus test suite"));
    }

    #[test]
    fn refuses_bad_lockinfo() {
        for bad in [
            &b"<lockinfo xmlns='DAV:'><locktype><write/></locktype></lockinfo>"[..],
            b"<lockinfo xmlns='DAV:'><lockscope><exclusive/></lockscope></lockinfo>",
            b"<lockinfo xmlns='DAV:'><lockscope><odd/></lockscope><locktype><write/></locktype></lockinfo>",
            b"<!DOCTYPE l SYSTEM 'http://evil/'><lockinfo xmlns='DAV:'/>",
            b"<lockinfo xmlns='DAV:'>",
        ] {
            let err = parse_lockinfo(bad).expect_err("must fail");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }
}
